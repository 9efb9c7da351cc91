//! Context group: params, create/free, sizes, threads, back-pointers.

use super::model::{bitnet_model, model_ref};
use super::{borrow, borrow_mut, call, call_void, call_with, free_handle, into_handle};
use crate::context::{Batch, Context, ContextParams};
use crate::error::{Error, Result};
use std::sync::Arc;

/// ggml type id of F16, the only KV cache type (type_k / type_v).
pub const BITNET_KV_TYPE_F16: i32 = 1;

/// Context options: the llama_context_params fields that mean something here, in llama.h's
/// order.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_context_params {
    /// KV cache size in tokens; 0 = the model's training context. Rounded up to a multiple of 32.
    pub n_ctx: u32,
    /// Most tokens one bitnet_decode call accepts (at least 32).
    pub n_batch: u32,
    /// Most tokens evaluated in one pass; 0 = n_batch.
    pub n_ubatch: u32,
    /// Number of distinct sequence ids batches may use (ids 0..n_seq_max-1, at most 64).
    pub n_seq_max: u32,
    /// Threads for single-token decoding; 0 or less = all cores.
    pub n_threads: i32,
    /// Threads for multi-token batches (prompts); 0 or less = all cores.
    pub n_threads_batch: i32,
    /// How embeddings are pooled (a `bitnet_pooling_type`): UNSPECIFIED (default) = the model's
    /// `<arch>.pooling_type`, else NONE; NONE, MEAN, CLS, LAST; RANK is refused (no classifier
    /// head).
    pub pooling_type: i32,
    /// A `bitnet_attention_type`: UNSPECIFIED (default) or CAUSAL; NON_CAUSAL is refused.
    pub attention_type: i32,
    /// KV cache K type (ggml type id); only F16 (1) is supported.
    pub type_k: i32,
    /// KV cache V type (ggml type id); only F16 (1) is supported.
    pub type_v: i32,
    /// Also output embeddings (bitnet_get_embeddings*): every token of a batch is then an
    /// output. Default false; see bitnet_set_embeddings.
    pub embeddings: bool,
    /// Flash attention: not supported (must be false; it would change the logits' bits).
    pub flash_attn: bool,
    /// Skip timing for bitnet_perf_context (counts are kept either way).
    pub no_perf: bool,
}

/// An evaluation context (opaque): KV cache, logits of the last decode, thread pools.
pub struct bitnet_context {
    pub(crate) ctx: Context,
    /// The model handle it was made from (returned by bitnet_get_model).
    model: *const bitnet_model,
    /// Reused by bitnet_decode to convert C batches without reallocating each call.
    pub(crate) batch: Batch,
}

/// llama.cpp's defaults: n_ctx 512, n_batch 2048, n_ubatch 512, one sequence, all cores, F16
/// cache, pooling and attention UNSPECIFIED, embeddings off.
#[no_mangle]
pub extern "C" fn bitnet_context_default_params() -> bitnet_context_params {
    call_with(|_| default_params(), || Ok(default_params()))
}

fn default_params() -> bitnet_context_params {
    let d = ContextParams::default();
    bitnet_context_params {
        n_ctx: d.n_ctx,
        n_batch: d.n_batch,
        n_ubatch: d.n_ubatch,
        n_seq_max: d.n_seq_max,
        n_threads: d.n_threads,
        n_threads_batch: d.n_threads_batch,
        pooling_type: d.pooling_type.to_llama(),
        attention_type: -1,
        type_k: BITNET_KV_TYPE_F16,
        type_v: BITNET_KV_TYPE_F16,
        embeddings: false,
        flash_attn: false,
        no_perf: true,
    }
}

fn rust_params(p: &bitnet_context_params) -> Result<ContextParams> {
    if p.type_k != BITNET_KV_TYPE_F16 || p.type_v != BITNET_KV_TYPE_F16 {
        return Err(Error::unsupported(format!(
            "KV cache types type_k {} / type_v {}: only F16 (1) is supported",
            p.type_k, p.type_v
        )));
    }
    if p.flash_attn {
        return Err(Error::unsupported("flash attention is not supported"));
    }
    Ok(ContextParams {
        n_ctx: p.n_ctx,
        n_batch: p.n_batch,
        n_ubatch: p.n_ubatch,
        n_seq_max: p.n_seq_max,
        n_threads: p.n_threads,
        n_threads_batch: p.n_threads_batch,
        batch_invariant: false,
        embeddings: p.embeddings,
        pooling_type: super::embeddings::pooling_from_c(p.pooling_type)?,
        attention_type: super::embeddings::attention_from_c(p.attention_type)?,
        ..Default::default()
    })
}

/// Creates a context for `model` (which must outlive it). NULL on failure: NULL model,
/// unsupported options, n_seq_max outside 1..64, sizes too large for memory.
#[no_mangle]
pub extern "C" fn bitnet_init_from_model(
    model: *mut bitnet_model,
    params: bitnet_context_params,
) -> *mut bitnet_context {
    call(std::ptr::null_mut(), || {
        let m = model_ref(model)?;
        let ctx = Context::new(Arc::clone(m.source.full()?), rust_params(&params)?)?;
        Ok(into_handle(bitnet_context {
            ctx,
            model,
            batch: Batch::default(),
        }))
    })
}

/// Frees a context. NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_free(ctx: *mut bitnet_context) {
    call_void(|| {
        free_handle(ctx);
        Ok(())
    })
}

pub(crate) fn ctx_ref<'a>(ctx: *const bitnet_context) -> Result<&'a bitnet_context> {
    borrow(ctx, "ctx")
}

pub(crate) fn ctx_mut<'a>(ctx: *mut bitnet_context) -> Result<&'a mut bitnet_context> {
    borrow_mut(ctx, "ctx")
}

fn param(ctx: *const bitnet_context, f: impl FnOnce(&ContextParams) -> u32) -> u32 {
    call(0, || Ok(f(ctx_ref(ctx)?.ctx.params())))
}

/// KV cache size in tokens, as resolved at creation. 0 if ctx is NULL (as the three below).
#[no_mangle]
pub extern "C" fn bitnet_n_ctx(ctx: *const bitnet_context) -> u32 {
    param(ctx, |p| p.n_ctx)
}

/// Most tokens per bitnet_decode call.
#[no_mangle]
pub extern "C" fn bitnet_n_batch(ctx: *const bitnet_context) -> u32 {
    param(ctx, |p| p.n_batch)
}

/// Most tokens per forward pass.
#[no_mangle]
pub extern "C" fn bitnet_n_ubatch(ctx: *const bitnet_context) -> u32 {
    param(ctx, |p| p.n_ubatch)
}

/// Number of sequence ids.
#[no_mangle]
pub extern "C" fn bitnet_n_seq_max(ctx: *const bitnet_context) -> u32 {
    param(ctx, |p| p.n_seq_max)
}

/// Threads used for single-token decoding. -1 if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_n_threads(ctx: *mut bitnet_context) -> i32 {
    call(-1, || Ok(ctx_ref(ctx)?.ctx.params().n_threads))
}

/// Threads used for multi-token batches. -1 if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_n_threads_batch(ctx: *mut bitnet_context) -> i32 {
    call(-1, || Ok(ctx_ref(ctx)?.ctx.params().n_threads_batch))
}

/// Changes the thread counts (0 or less = all cores) for later decodes. Results do not depend
/// on the thread count.
#[no_mangle]
pub extern "C" fn bitnet_set_n_threads(
    ctx: *mut bitnet_context,
    n_threads: i32,
    n_threads_batch: i32,
) {
    call_void(|| ctx_mut(ctx)?.ctx.set_n_threads(n_threads, n_threads_batch))
}

/// The model the context was made from. NULL if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_get_model(ctx: *const bitnet_context) -> *const bitnet_model {
    call(std::ptr::null(), || Ok(ctx_ref(ctx)?.model))
}

/// Waits for pending work: decoding is synchronous here, so this returns at once.
#[no_mangle]
pub extern "C" fn bitnet_synchronize(ctx: *mut bitnet_context) {
    call_void(|| ctx_ref(ctx).map(|_| ()))
}
