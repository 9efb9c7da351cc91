//! Context group: params, create/free, sizes, threads, back-pointers.

use super::abort::bitnet_abort_callback;
use super::model::{bitnet_model, model_ref};
use super::sampler::bitnet_sampler;
use super::{
    bitnet_seq_id, borrow, borrow_mut, call, call_void, call_with, free_handle, into_handle,
};
use crate::context::{Batch, Context, ContextParams};
use crate::error::{Error, Result};
use std::ffi::c_void;
use std::sync::Arc;

/// ggml type id of F16, the only KV cache type (type_k / type_v).
pub const BITNET_KV_TYPE_F16: i32 = 1;

/// A sampler chain run inside bitnet_decode for one sequence (llama.h
/// `llama_sampler_seq_config`, "backend sampling"): see bitnet_context_params.samplers.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_sampler_seq_config {
    pub seq_id: bitnet_seq_id,
    /// A chain from bitnet_sampler_chain_init; the caller keeps it alive while the context
    /// lives and frees it after the context.
    pub sampler: *mut bitnet_sampler,
}

/// Called for each graph node by ggml's scheduler in llama.cpp (`ggml_backend_sched_eval_callback`;
/// the tensor is opaque here). bitnet has no graph: a non-NULL callback is refused.
pub type bitnet_sched_eval_callback =
    Option<unsafe extern "C" fn(t: *mut c_void, ask: bool, user_data: *mut c_void) -> bool>;

/// Context options: llama.h's llama_context_params, field for field in its order and with its
/// types (the enum-typed fields are int32_t holding the enum's values). Fields that select
/// something bitnet does not have are refused when set to it (bitnet_init_from_model returns
/// NULL and says why); fields that only tune devices are ignored, as in a CPU-only llama.cpp.
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
    /// Recurrent-state snapshots per sequence: BitNet models have no recurrent state (ignored;
    /// bitnet_n_rs_seq reports 0).
    pub n_rs_seq: u32,
    /// Most outputs in a ubatch (0 = n_batch): a reservation hint in llama.cpp; bitnet sizes
    /// its output buffers by the batch (ignored).
    pub n_outputs_max: u32,
    /// Most outputs per sequence that has a backend sampler (0 = n_outputs_max), default 1: a
    /// decode asking more is refused (-1), as llama.cpp does.
    pub n_outputs_max_per_seq: u32,
    /// Threads for single-token decoding (default 4, GGML_DEFAULT_N_THREADS); 0 or less = all
    /// cores; at most 512.
    pub n_threads: i32,
    /// Threads for multi-token batches (prompts), as n_threads.
    pub n_threads_batch: i32,
    /// `enum bitnet_context_type`: only BITNET_CONTEXT_TYPE_DEFAULT (MTP heads are not
    /// supported).
    pub ctx_type: i32,
    /// `enum bitnet_rope_scaling_type`: UNSPECIFIED (the model's) or NONE; others are refused.
    pub rope_scaling_type: i32,
    /// `enum bitnet_pooling_type` (-1..4); pooling applies to embeddings.
    pub pooling_type: i32,
    /// `enum bitnet_attention_type`: UNSPECIFIED or CAUSAL; NON_CAUSAL is refused.
    pub attention_type: i32,
    /// `enum bitnet_flash_attn_type`: AUTO (resolves to disabled) or DISABLED; ENABLED is
    /// refused (flash attention would change the logits' bits).
    pub flash_attn_type: i32,
    /// RoPE base frequency; 0 = the model's. Another value is refused.
    pub rope_freq_base: f32,
    /// RoPE frequency scale; 0 = the model's (1). Another value is refused.
    pub rope_freq_scale: f32,
    /// YaRN parameters: used only with YaRN scaling, which is not offered (ignored).
    pub yarn_ext_factor: f32,
    pub yarn_attn_factor: f32,
    pub yarn_beta_fast: f32,
    pub yarn_beta_slow: f32,
    pub yarn_orig_ctx: u32,
    /// Deprecated in llama.h (ignored there too).
    pub defrag_thold: f32,
    /// Per-node graph callback: bitnet has no graph; non-NULL is refused.
    pub cb_eval: bitnet_sched_eval_callback,
    pub cb_eval_user_data: *mut c_void,
    /// KV cache K type (ggml type id); only F16 (BITNET_KV_TYPE_F16 = 1) is supported.
    pub type_k: i32,
    /// KV cache V type (ggml type id); only F16 (1) is supported.
    pub type_v: i32,
    /// Installed as by bitnet_set_abort_callback.
    pub abort_callback: bitnet_abort_callback,
    pub abort_callback_data: *mut c_void,
    /// Also output embeddings (bitnet_get_embeddings*): every token of a batch is then an
    /// output. Default false; see bitnet_set_embeddings.
    pub embeddings: bool,
    /// Offload KQV to a GPU: no devices (ignored, as a CPU-only llama.cpp).
    pub offload_kqv: bool,
    /// Skip timing for bitnet_perf_context (counts are kept either way).
    pub no_perf: bool,
    /// Offload host operations to a device: no devices (ignored).
    pub op_offload: bool,
    /// Full-size SWA cache: BitNet models have no sliding-window attention (ignored).
    pub swa_full: bool,
    /// One KV buffer for all sequences. bitnet's cache is always unified (every sequence may
    /// use all n_ctx cells), whatever this says.
    pub kv_unified: bool,
    /// Backend sampler chains, one per sequence id (n_samplers of them; NULL if none): after
    /// each decode the sequence's chain samples each of its outputs (bitnet_get_sampled_*), and
    /// bitnet_sampler_sample on that chain then returns (and accepts) the sampled token.
    pub samplers: *mut bitnet_sampler_seq_config,
    pub n_samplers: usize,
    /// Source/target context for MTP and draft architectures; BitNet models use none (ignored,
    /// as llama.cpp does for them).
    pub ctx_other: *mut bitnet_context,
}

/// Context types (`llama_context_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_context_type {
    BITNET_CONTEXT_TYPE_DEFAULT = 0,
    BITNET_CONTEXT_TYPE_MTP = 1,
}

/// RoPE scaling types (`llama_rope_scaling_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_rope_scaling_type {
    BITNET_ROPE_SCALING_TYPE_UNSPECIFIED = -1,
    BITNET_ROPE_SCALING_TYPE_NONE = 0,
    BITNET_ROPE_SCALING_TYPE_LINEAR = 1,
    BITNET_ROPE_SCALING_TYPE_YARN = 2,
    BITNET_ROPE_SCALING_TYPE_LONGROPE = 3,
}

/// Attention types (`llama_attention_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_attention_type {
    BITNET_ATTENTION_TYPE_UNSPECIFIED = -1,
    BITNET_ATTENTION_TYPE_CAUSAL = 0,
    BITNET_ATTENTION_TYPE_NON_CAUSAL = 1,
}

/// Flash attention modes (`llama_flash_attn_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_flash_attn_type {
    BITNET_FLASH_ATTN_TYPE_AUTO = -1,
    BITNET_FLASH_ATTN_TYPE_DISABLED = 0,
    BITNET_FLASH_ATTN_TYPE_ENABLED = 1,
}

/// An evaluation context (opaque): KV cache, logits of the last decode, thread pools.
pub struct bitnet_context {
    pub(crate) ctx: Context,
    /// The model handle it was made from (returned by bitnet_get_model).
    model: *const bitnet_model,
    /// Reused by bitnet_decode to convert C batches without reallocating each call.
    pub(crate) batch: Batch,
    /// Backend sampling: the chains by sequence id and what they sampled in the last decode.
    pub(crate) backend: super::backend_sampling::BackendSampling,
}

/// llama.cpp's defaults (llama_context_default_params), field for field: n_ctx 512, n_batch
/// 2048, n_ubatch 512, one sequence, 4 threads, F16 cache, flash attention AUTO, no_perf,
/// pooling and attention UNSPECIFIED, embeddings off.
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
        n_rs_seq: 0,
        n_outputs_max: 0,
        n_outputs_max_per_seq: 1,
        n_threads: 4,
        n_threads_batch: 4,
        ctx_type: bitnet_context_type::BITNET_CONTEXT_TYPE_DEFAULT as i32,
        rope_scaling_type: bitnet_rope_scaling_type::BITNET_ROPE_SCALING_TYPE_UNSPECIFIED as i32,
        pooling_type: -1,
        attention_type: bitnet_attention_type::BITNET_ATTENTION_TYPE_UNSPECIFIED as i32,
        flash_attn_type: bitnet_flash_attn_type::BITNET_FLASH_ATTN_TYPE_AUTO as i32,
        rope_freq_base: 0.0,
        rope_freq_scale: 0.0,
        yarn_ext_factor: -1.0,
        yarn_attn_factor: -1.0,
        yarn_beta_fast: -1.0,
        yarn_beta_slow: -1.0,
        yarn_orig_ctx: 0,
        defrag_thold: -1.0,
        cb_eval: None,
        cb_eval_user_data: std::ptr::null_mut(),
        type_k: BITNET_KV_TYPE_F16,
        type_v: BITNET_KV_TYPE_F16,
        abort_callback: None,
        abort_callback_data: std::ptr::null_mut(),
        embeddings: false,
        offload_kqv: true,
        no_perf: true,
        op_offload: true,
        swa_full: true,
        kv_unified: false,
        samplers: std::ptr::null_mut(),
        n_samplers: 0,
        ctx_other: std::ptr::null_mut(),
    }
}

fn rust_params(p: &bitnet_context_params, model: &crate::model::Model) -> Result<ContextParams> {
    if p.type_k != BITNET_KV_TYPE_F16 || p.type_v != BITNET_KV_TYPE_F16 {
        return Err(Error::unsupported(format!(
            "KV cache types type_k {} / type_v {}: only F16 (1) is supported",
            p.type_k, p.type_v
        )));
    }
    let unsupported = |what: &str, v: String| {
        Err(Error::unsupported(format!(
            "context parameter {what} = {v} is not supported"
        )))
    };
    match p.ctx_type {
        0 => {}
        1 => return unsupported("ctx_type", "MTP".into()),
        v => return Err(Error::invalid_argument(format!("ctx_type {v} is unknown"))),
    }
    match p.rope_scaling_type {
        -1 | 0 => {}
        1..=3 => return unsupported("rope_scaling_type", p.rope_scaling_type.to_string()),
        v => {
            return Err(Error::invalid_argument(format!(
                "rope_scaling_type {v} is unknown"
            )))
        }
    }
    if !(-1..=4).contains(&p.pooling_type) {
        return Err(Error::invalid_argument(format!(
            "pooling_type {} is unknown",
            p.pooling_type
        )));
    }
    match p.attention_type {
        -1 | 0 => {}
        1 => return unsupported("attention_type", "NON_CAUSAL".into()),
        v => {
            return Err(Error::invalid_argument(format!(
                "attention_type {v} is unknown"
            )))
        }
    }
    match p.flash_attn_type {
        -1 | 0 => {}
        1 => {
            return unsupported(
                "flash_attn_type",
                "ENABLED (it would change the logits' bits)".into(),
            )
        }
        v => {
            return Err(Error::invalid_argument(format!(
                "flash_attn_type {v} is unknown"
            )))
        }
    }
    let base = model.config().rope_freq_base;
    if p.rope_freq_base != 0.0 && p.rope_freq_base != base {
        return unsupported(
            "rope_freq_base",
            format!("{} (the model's is {base})", p.rope_freq_base),
        );
    }
    if p.rope_freq_scale != 0.0 && p.rope_freq_scale != 1.0 {
        return unsupported("rope_freq_scale", p.rope_freq_scale.to_string());
    }
    if p.cb_eval.is_some() {
        return unsupported(
            "cb_eval",
            "a callback (bitnet evaluates no ggml graph)".into(),
        );
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
        let full = m.source.full()?;
        let rp = rust_params(&params, full)?;
        let backend = super::backend_sampling::BackendSampling::new(
            params.samplers,
            params.n_samplers,
            rp.n_seq_max,
            params.n_outputs_max_per_seq,
        )?;
        let ctx = Context::new(Arc::clone(full), rp)?;
        let handle = into_handle(bitnet_context {
            ctx,
            model,
            batch: Batch::default(),
            backend,
        });
        if params.abort_callback.is_some() {
            super::abort::bitnet_set_abort_callback(
                handle,
                params.abort_callback,
                params.abort_callback_data,
            );
        }
        Ok(handle)
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
