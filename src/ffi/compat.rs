//! The rest of llama.h's small queries, with what they mean for a CPU-only runtime: version,
//! NUMA and device limits, more model and vocab queries, split-file names, log_get, the
//! decoder-only `encode`; and the fork's older `llama_kv_cache_*` names as thin aliases of the
//! memory functions.

use super::context::{bitnet_context, ctx_ref};
use super::memory::{self, bitnet_get_memory};
use super::model::{bitnet_model, ModelSource};
use super::vocab::bitnet_vocab;
use super::{
    bitnet_pos, bitnet_seq_id, bitnet_token, borrow, c_str, call, call_void, write_c_string,
    BITNET_TOKEN_NULL,
};
use crate::error::{Error, ErrorKind};
use crate::vocab::SpecialTokens;
use std::ffi::{c_char, CStr};

/// The library version, as `bitnet_version()` reports it (also in `bitnet.pc` and the
/// library's SONAME, `libbitnet.so.0.<MINOR>` while MAJOR is 0).
pub const BITNET_VERSION_MAJOR: u32 = 0;
pub const BITNET_VERSION_MINOR: u32 = 1;
pub const BITNET_VERSION_PATCH: u32 = 0;

/// "MAJOR.MINOR.PATCH" (a static string).
#[no_mangle]
pub extern "C" fn bitnet_version() -> *const c_char {
    call(std::ptr::null(), || {
        Ok(concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
    })
}

/// NUMA strategies (`ggml_numa_strategy`), for bitnet_numa_init (which takes them as int32_t,
/// so any value is safe to pass).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_numa_strategy {
    BITNET_NUMA_STRATEGY_DISABLED = 0,
    BITNET_NUMA_STRATEGY_DISTRIBUTE = 1,
    BITNET_NUMA_STRATEGY_ISOLATE = 2,
    BITNET_NUMA_STRATEGY_NUMACTL = 3,
    BITNET_NUMA_STRATEGY_MIRROR = 4,
    BITNET_NUMA_STRATEGY_COUNT = 5,
}

/// Accepts any strategy and changes nothing: bitnet places no threads or pages by NUMA node
/// (the OS's first-touch policy applies). An unknown strategy is logged and ignored.
#[no_mangle]
pub extern "C" fn bitnet_numa_init(numa: i32) {
    call_void(|| {
        if !(0..bitnet_numa_strategy::BITNET_NUMA_STRATEGY_COUNT as i32).contains(&numa) {
            crate::log::log_warn!("bitnet_numa_init: unknown NUMA strategy {numa} ignored");
        }
        Ok(())
    })
}

/// 16, as llama.cpp (the size of its per-device arrays); bitnet itself only uses the CPU.
#[no_mangle]
pub extern "C" fn bitnet_max_devices() -> usize {
    16
}

/// The most sequence ids a context can have (bitnet_context_params.n_seq_max).
#[no_mangle]
pub extern "C" fn bitnet_max_parallel_sequences() -> usize {
    MAX_PARALLEL_SEQUENCES
}

pub(crate) const MAX_PARALLEL_SEQUENCES: usize = 64;

/// 4096, as llama.cpp; bitnet has no tensor buffer-type overrides (all tensors are on the CPU).
#[no_mangle]
pub extern "C" fn bitnet_max_tensor_buft_overrides() -> usize {
    4096
}

/// False: CPU only (as llama.cpp built without a GPU backend).
#[no_mangle]
pub extern "C" fn bitnet_supports_gpu_offload() -> bool {
    false
}

/// False: no RPC backend.
#[no_mangle]
pub extern "C" fn bitnet_supports_rpc() -> bool {
    false
}

/// RoPE types (`llama_rope_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_rope_type {
    BITNET_ROPE_TYPE_NONE = -1,
    BITNET_ROPE_TYPE_NORM = 0,
    BITNET_ROPE_TYPE_NEOX = 2,
}
use bitnet_rope_type::*;

/// The model's RoPE type: NEOX for BitNet; for a vocab_only file, by architecture (llama
/// NORM, falcon NEOX, others NONE). BITNET_ROPE_TYPE_NONE if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_rope_type(model: *const bitnet_model) -> bitnet_rope_type {
    call(BITNET_ROPE_TYPE_NONE, || {
        Ok(match &borrow(model, "model")?.source {
            ModelSource::Full(_) => BITNET_ROPE_TYPE_NEOX,
            ModelSource::VocabOnly(m) => match m.arch() {
                "llama" => BITNET_ROPE_TYPE_NORM,
                "falcon" => BITNET_ROPE_TYPE_NEOX,
                a if a.starts_with("bitnet") => BITNET_ROPE_TYPE_NEOX,
                _ => BITNET_ROPE_TYPE_NONE,
            },
        })
    })
}

fn n_embd(model: *const bitnet_model) -> i32 {
    super::model::bitnet_model_n_embd(model)
}

/// Width of the input embeddings (= n_embd). -1 if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_n_embd_inp(model: *const bitnet_model) -> i32 {
    n_embd(model)
}

/// Width of the output embeddings (= n_embd: no projection after the last norm). -1 if model
/// is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_n_embd_out(model: *const bitnet_model) -> i32 {
    n_embd(model)
}

fn model_const<T>(model: *const bitnet_model, fallback: T, value: T) -> T {
    call(fallback, || borrow(model, "model").map(|_| value))
}

/// 0: no next-token-prediction (MTP) layers. -1 if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_n_layer_nextn(model: *const bitnet_model) -> i32 {
    model_const(model, -1, 0)
}

/// 0: no sliding-window attention. -1 if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_n_swa(model: *const bitnet_model) -> i32 {
    model_const(model, -1, 0)
}

/// 1.0: no RoPE frequency scaling. 0.0 if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_rope_freq_scale_train(model: *const bitnet_model) -> f32 {
    model_const(model, 0.0, 1.0)
}

/// 0: not a classifier.
#[no_mangle]
pub extern "C" fn bitnet_model_n_cls_out(model: *const bitnet_model) -> u32 {
    model_const(model, 0, 0)
}

/// NULL: no classifier labels.
#[no_mangle]
pub extern "C" fn bitnet_model_cls_label(model: *const bitnet_model, i: u32) -> *const c_char {
    let _ = i;
    model_const(model, std::ptr::null(), std::ptr::null())
}

/// True: BitNet models are decoders.
#[no_mangle]
pub extern "C" fn bitnet_model_has_decoder(model: *const bitnet_model) -> bool {
    model_const(model, false, true)
}

/// False: not a recurrent (Mamba/RWKV-style) model.
#[no_mangle]
pub extern "C" fn bitnet_model_is_recurrent(model: *const bitnet_model) -> bool {
    model_const(model, false, false)
}

/// False: not a hybrid attention/recurrent model.
#[no_mangle]
pub extern "C" fn bitnet_model_is_hybrid(model: *const bitnet_model) -> bool {
    model_const(model, false, false)
}

/// False: not a diffusion model.
#[no_mangle]
pub extern "C" fn bitnet_model_is_diffusion(model: *const bitnet_model) -> bool {
    model_const(model, false, false)
}

/// The file type (`general.file_type`, llama_ftype numbering), or -1 when the file does not
/// say (or model is NULL).
#[no_mangle]
pub extern "C" fn bitnet_model_ftype(model: *const bitnet_model) -> i32 {
    call(-1, || {
        let m = borrow(model, "model")?;
        let meta = m.source.meta_strings();
        Ok(meta
            .iter()
            .find(|(k, _)| *k == "general.file_type")
            .and_then(|(_, v)| v.parse::<i32>().ok())
            .unwrap_or(-1))
    })
}

/// The name of a file type (llama_ftype numbering) for the types bitnet reads, e.g. 40 ->
/// "I2_S - 2 bpw ternary"; "unknown" otherwise.
#[no_mangle]
pub extern "C" fn bitnet_ftype_name(ftype: i32) -> *const c_char {
    let name: &'static CStr = match ftype {
        0 => c"all F32",
        1 => c"F16",
        7 => c"Q8_0",
        18 => c"Q6_K",
        32 => c"BF16",
        36 => c"TQ1_0 - 1.69 bpw ternary",
        37 => c"TQ2_0 - 2.06 bpw ternary",
        40 => c"I2_S - 2 bpw ternary",
        _ => c"unknown",
    };
    name.as_ptr()
}

fn special(
    vocab: *const bitnet_vocab,
    f: impl FnOnce(&SpecialTokens) -> Option<bitnet_token>,
) -> bitnet_token {
    call(BITNET_TOKEN_NULL, || {
        let v = borrow(vocab, "vocab")?.vocab();
        Ok(f(&v.special_tokens()).unwrap_or(BITNET_TOKEN_NULL))
    })
}

/// Mask token, BITNET_TOKEN_NULL if none (or vocab is NULL); likewise the FIM tokens below.
#[no_mangle]
pub extern "C" fn bitnet_vocab_mask(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.mask)
}

/// Fill-in-the-middle: prefix token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_pre(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_pre)
}

/// Fill-in-the-middle: suffix token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_suf(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_suf)
}

/// Fill-in-the-middle: middle token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_mid(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_mid)
}

/// Fill-in-the-middle: padding token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_pad(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_pad)
}

/// Fill-in-the-middle: repository token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_rep(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_rep)
}

/// Fill-in-the-middle: file separator token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_fim_sep(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, |s| s.fim_sep)
}

/// Tokens per sequence the KV cache can hold: the whole n_ctx (one cache shared by all
/// sequences, as llama.cpp's unified cache). 0 if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_n_ctx_seq(ctx: *const bitnet_context) -> u32 {
    call(0, || Ok(ctx_ref(ctx)?.ctx.params().n_ctx))
}

/// Pooling types (`llama_pooling_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_pooling_type {
    BITNET_POOLING_TYPE_UNSPECIFIED = -1,
    BITNET_POOLING_TYPE_NONE = 0,
    BITNET_POOLING_TYPE_MEAN = 1,
    BITNET_POOLING_TYPE_CLS = 2,
    BITNET_POOLING_TYPE_LAST = 3,
    BITNET_POOLING_TYPE_RANK = 4,
}
use bitnet_pooling_type::*;

/// The context's pooling as resolved at creation (NONE, MEAN, CLS or LAST; never UNSPECIFIED).
/// UNSPECIFIED if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_pooling_type(ctx: *const bitnet_context) -> bitnet_pooling_type {
    call(BITNET_POOLING_TYPE_UNSPECIFIED, || {
        use crate::context::PoolingType as P;
        Ok(match ctx_ref(ctx)?.ctx.pooling_type() {
            P::Unspecified => BITNET_POOLING_TYPE_UNSPECIFIED,
            P::None => BITNET_POOLING_TYPE_NONE,
            P::Mean => BITNET_POOLING_TYPE_MEAN,
            P::Cls => BITNET_POOLING_TYPE_CLS,
            P::Last => BITNET_POOLING_TYPE_LAST,
            P::Rank => BITNET_POOLING_TYPE_RANK,
        })
    })
}

/// Runs an encoder. BitNet models are decoder-only (bitnet_model_has_encoder is false), so
/// this always fails: returns -1 and bitnet_last_error says to use bitnet_decode.
#[no_mangle]
pub extern "C" fn bitnet_encode(
    ctx: *mut bitnet_context,
    batch: super::batch::bitnet_batch,
) -> i32 {
    let _ = batch;
    call(-1, || {
        ctx_ref(ctx)?;
        Err(Error::new(
            ErrorKind::Unsupported,
            "bitnet_encode: the model is decoder-only (it has no encoder); use bitnet_decode",
        ))
    })
}

/// Writes "<path_prefix>-<split_no+1>-of-<split_count>.gguf" (5-digit numbers) with snprintf
/// semantics and returns its length; 0 on bad arguments (as llama.cpp).
#[no_mangle]
pub extern "C" fn bitnet_split_path(
    split_path: *mut c_char,
    maxlen: usize,
    path_prefix: *const c_char,
    split_no: i32,
    split_count: i32,
) -> i32 {
    call(0, || {
        let prefix = c_str(path_prefix, "path_prefix")?;
        let s = format!("{prefix}-{:05}-of-{split_count:05}.gguf", split_no + 1);
        write_c_string(split_path, maxlen, s.as_bytes(), "split_path")
    })
}

/// The inverse of bitnet_split_path: when `split_path` ends with
/// "-<split_no+1>-of-<split_count>.gguf", writes the part before it (snprintf semantics) and
/// returns its length; otherwise returns 0.
#[no_mangle]
pub extern "C" fn bitnet_split_prefix(
    split_prefix: *mut c_char,
    maxlen: usize,
    split_path: *const c_char,
    split_no: i32,
    split_count: i32,
) -> i32 {
    call(0, || {
        let path = c_str(split_path, "split_path")?;
        let postfix = format!("-{:05}-of-{split_count:05}.gguf", split_no + 1);
        match path.strip_suffix(&postfix) {
            Some(prefix) => write_c_string(split_prefix, maxlen, prefix.as_bytes(), "split_prefix"),
            None => Ok(0),
        }
    })
}

// The fork's (2024 llama.h) KV-cache names, which bitnet.cpp's own clients call: thin
// aliases of the memory functions on the context's memory.

/// Old name of bitnet_memory_clear(bitnet_get_memory(ctx), true).
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_clear(ctx: *mut bitnet_context) {
    memory::bitnet_memory_clear(bitnet_get_memory(ctx), true)
}

/// Old name of bitnet_memory_seq_rm on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_rm(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
) -> bool {
    memory::bitnet_memory_seq_rm(bitnet_get_memory(ctx), seq_id, p0, p1)
}

/// Old name of bitnet_memory_seq_cp on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_cp(
    ctx: *mut bitnet_context,
    seq_id_src: bitnet_seq_id,
    seq_id_dst: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
) {
    memory::bitnet_memory_seq_cp(bitnet_get_memory(ctx), seq_id_src, seq_id_dst, p0, p1)
}

/// Old name of bitnet_memory_seq_keep on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_keep(ctx: *mut bitnet_context, seq_id: bitnet_seq_id) {
    memory::bitnet_memory_seq_keep(bitnet_get_memory(ctx), seq_id)
}

/// Old name of bitnet_memory_seq_add on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_add(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
    delta: bitnet_pos,
) {
    memory::bitnet_memory_seq_add(bitnet_get_memory(ctx), seq_id, p0, p1, delta)
}

/// Old name of bitnet_memory_seq_div on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_div(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
    d: i32,
) {
    memory::bitnet_memory_seq_div(bitnet_get_memory(ctx), seq_id, p0, p1, d)
}

/// Old name of bitnet_memory_seq_pos_max on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_seq_pos_max(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
) -> bitnet_pos {
    memory::bitnet_memory_seq_pos_max(bitnet_get_memory(ctx), seq_id)
}

/// Old name of bitnet_memory_can_shift on the context's memory.
#[no_mangle]
pub extern "C" fn bitnet_kv_cache_can_shift(ctx: *mut bitnet_context) -> bool {
    memory::bitnet_memory_can_shift(bitnet_get_memory(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_constants_match_the_crate() {
        let v = format!("{BITNET_VERSION_MAJOR}.{BITNET_VERSION_MINOR}.{BITNET_VERSION_PATCH}");
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(bitnet_version()) };
        assert_eq!(s.to_str().unwrap(), v);
    }

    #[test]
    fn split_path_and_prefix_round_trip() {
        let mut buf = [0 as c_char; 64];
        let n = bitnet_split_path(buf.as_mut_ptr(), 64, c"/m/model".as_ptr(), 1, 4);
        // SAFETY: NUL-terminated by write_c_string.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(s, "/m/model-00002-of-00004.gguf");
        assert_eq!(n as usize, s.len());
        let path = std::ffi::CString::new(s).unwrap();
        let mut pre = [0 as c_char; 64];
        assert_eq!(
            bitnet_split_prefix(pre.as_mut_ptr(), 64, path.as_ptr(), 1, 4),
            8
        );
        // SAFETY: as above.
        assert_eq!(
            unsafe { CStr::from_ptr(pre.as_ptr()) }.to_str().unwrap(),
            "/m/model"
        );
        assert_eq!(
            bitnet_split_prefix(pre.as_mut_ptr(), 64, path.as_ptr(), 0, 4),
            0
        );
    }

    #[test]
    fn null_handles_give_documented_fallbacks() {
        assert_eq!(
            bitnet_model_rope_type(std::ptr::null()),
            BITNET_ROPE_TYPE_NONE
        );
        assert_eq!(bitnet_model_n_embd_out(std::ptr::null()), -1);
        assert!(!bitnet_model_has_decoder(std::ptr::null()));
        assert_eq!(bitnet_vocab_fim_pre(std::ptr::null()), BITNET_TOKEN_NULL);
        assert_eq!(bitnet_n_ctx_seq(std::ptr::null()), 0);
        assert_eq!(
            bitnet_pooling_type(std::ptr::null()),
            BITNET_POOLING_TYPE_UNSPECIFIED
        );
        assert_eq!(
            bitnet_encode(
                std::ptr::null_mut(),
                super::super::batch::bitnet_batch_get_one(std::ptr::null_mut(), 0)
            ),
            -1
        );
        assert!(!bitnet_kv_cache_seq_rm(std::ptr::null_mut(), 0, 0, -1));
        bitnet_numa_init(bitnet_numa_strategy::BITNET_NUMA_STRATEGY_DISTRIBUTE as i32);
        bitnet_numa_init(99);
        // SAFETY: static strings.
        assert_eq!(
            unsafe { CStr::from_ptr(bitnet_ftype_name(40)) }
                .to_str()
                .unwrap(),
            "I2_S - 2 bpw ternary"
        );
        assert_eq!(
            unsafe { CStr::from_ptr(bitnet_ftype_name(-5)) }
                .to_str()
                .unwrap(),
            "unknown"
        );
    }
}
