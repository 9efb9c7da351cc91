//! The rest of llama.h that has a meaning here: enum names, the sampling-metadata key names,
//! causal attention, the vocabulary's add_sep and suppress tokens, recurrent snapshots.

use super::context::{bitnet_context, ctx_ref};
use super::vocab::bitnet_vocab;
use super::{bitnet_token, borrow, c_str, call, call_void};
use crate::error::Error;
use crate::gguf::{Array, Value};
use std::ffi::{c_char, CStr};

/// The name of a flash-attention mode: "auto", "disabled", "enabled" (llama.cpp's names);
/// "unknown" for other values (llama.cpp aborts).
#[no_mangle]
pub extern "C" fn bitnet_flash_attn_type_name(flash_attn_type: i32) -> *const c_char {
    let name: &'static CStr = match flash_attn_type {
        -1 => c"auto",
        0 => c"disabled",
        1 => c"enabled",
        _ => c"unknown",
    };
    name.as_ptr()
}

const LOAD_MODES: [(i32, &CStr); 6] = [
    (-1, c"auto"),
    (0, c"none"),
    (1, c"mmap"),
    (2, c"mlock"),
    (3, c"mmap+mlock"),
    (4, c"dio"),
];

/// The name of a load mode (`enum bitnet_load_mode`): "auto", "none", "mmap", "mlock",
/// "mmap+mlock", "dio" (llama.cpp's names); "unknown" for other values (llama.cpp aborts).
#[no_mangle]
pub extern "C" fn bitnet_load_mode_name(load_mode: i32) -> *const c_char {
    LOAD_MODES
        .iter()
        .find(|m| m.0 == load_mode)
        .map_or(c"unknown", |m| m.1)
        .as_ptr()
}

/// The load mode named `str` (bitnet_load_mode_name's names). An unknown or NULL name returns
/// -2 (no load mode) with an error recorded (llama.cpp throws std::invalid_argument).
#[no_mangle]
pub extern "C" fn bitnet_load_mode_from_str(str: *const c_char) -> i32 {
    call(-2, || {
        let s = c_str(str, "str")?;
        LOAD_MODES
            .iter()
            .find(|m| m.1.to_str() == Ok(s))
            .map(|m| m.0)
            .ok_or_else(|| Error::invalid_argument(format!("unknown load mode: {s}")))
    })
}

/// Sampling-metadata keys (`llama_model_meta_key`), for bitnet_model_meta_key_str.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_model_meta_key {
    BITNET_MODEL_META_KEY_SAMPLING_SEQUENCE = 0,
    BITNET_MODEL_META_KEY_SAMPLING_TOP_K = 1,
    BITNET_MODEL_META_KEY_SAMPLING_TOP_P = 2,
    BITNET_MODEL_META_KEY_SAMPLING_MIN_P = 3,
    BITNET_MODEL_META_KEY_SAMPLING_XTC_PROBABILITY = 4,
    BITNET_MODEL_META_KEY_SAMPLING_XTC_THRESHOLD = 5,
    BITNET_MODEL_META_KEY_SAMPLING_TEMP = 6,
    BITNET_MODEL_META_KEY_SAMPLING_PENALTY_LAST_N = 7,
    BITNET_MODEL_META_KEY_SAMPLING_PENALTY_REPEAT = 8,
    BITNET_MODEL_META_KEY_SAMPLING_MIROSTAT = 9,
    BITNET_MODEL_META_KEY_SAMPLING_MIROSTAT_TAU = 10,
    BITNET_MODEL_META_KEY_SAMPLING_MIROSTAT_ETA = 11,
}

/// The GGUF key of a sampling-metadata key (`enum bitnet_model_meta_key`), e.g.
/// "general.sampling.top_k"; NULL for other values (as llama.cpp).
#[no_mangle]
pub extern "C" fn bitnet_model_meta_key_str(key: i32) -> *const c_char {
    let name: &'static CStr = match key {
        0 => c"general.sampling.sequence",
        1 => c"general.sampling.top_k",
        2 => c"general.sampling.top_p",
        3 => c"general.sampling.min_p",
        4 => c"general.sampling.xtc_probability",
        5 => c"general.sampling.xtc_threshold",
        6 => c"general.sampling.temp",
        7 => c"general.sampling.penalty_last_n",
        8 => c"general.sampling.penalty_repeat",
        9 => c"general.sampling.mirostat",
        10 => c"general.sampling.mirostat_tau",
        11 => c"general.sampling.mirostat_eta",
        _ => return std::ptr::null(),
    };
    name.as_ptr()
}

/// Recurrent-state snapshots per sequence: 0 (BitNet models have no recurrent state; 0 if ctx
/// is NULL).
#[no_mangle]
pub extern "C" fn bitnet_n_rs_seq(ctx: *const bitnet_context) -> u32 {
    call(0, || ctx_ref(ctx).map(|_| 0))
}

/// Causal attention on (true, the only mode: no change) or off (false: not supported for these
/// decoder models; nothing changes and an error is recorded).
#[no_mangle]
pub extern "C" fn bitnet_set_causal_attn(ctx: *mut bitnet_context, causal_attn: bool) {
    call_void(|| {
        ctx_ref(ctx)?;
        if !causal_attn {
            return Err(Error::unsupported(
                "non-causal attention is not supported (attention stays causal)",
            ));
        }
        Ok(())
    })
}

/// Whether attention is causal: always true (false if ctx is NULL).
#[no_mangle]
pub extern "C" fn bitnet_get_causal_attn(ctx: *const bitnet_context) -> bool {
    call(false, || ctx_ref(ctx).map(|_| true))
}

/// Whether tokenizing with add_special appends a separator: `tokenizer.ggml.add_sep_token` if
/// present, else true for the pre-tokenizers llama.cpp sets it for (jina-v1-en, jina-v2-code,
/// roberta-bpe; WPM vocabs, which bitnet does not read), else false. False if vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_add_sep(vocab: *const bitnet_vocab) -> bool {
    call(false, || {
        let g = borrow(vocab, "vocab")?.gguf();
        if let Some(Value::Bool(b)) = g.get("tokenizer.ggml.add_sep_token") {
            return Ok(*b);
        }
        Ok(matches!(
            g.get("tokenizer.ggml.pre"),
            Some(Value::String(p)) if ["jina-v1-en", "jina-v2-code", "roberta-bpe"].contains(&p.as_str())
        ))
    })
}

/// The model's suppress tokens (`tokenizer.ggml.suppress_tokens`, ids outside the vocabulary
/// dropped, as llama.cpp) and their count in *n_suppress_tokens (if not NULL). The array lives
/// as long as the vocab; NULL with count 0 when there are none or vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_suppress_tokens(
    vocab: *const bitnet_vocab,
    n_suppress_tokens: *mut i32,
) -> *const bitnet_token {
    let (ptr, n) = call((std::ptr::null(), 0), || {
        let v = borrow(vocab, "vocab")?;
        let list = v.suppress.get_or_init(|| {
            let n_vocab = v.vocab().n_tokens() as i64;
            match v.gguf().get("tokenizer.ggml.suppress_tokens") {
                Some(Value::Array(Array::I32(ids))) => ids
                    .iter()
                    .copied()
                    .filter(|&id| (0..n_vocab).contains(&(id as i64)))
                    .collect(),
                _ => Vec::new(),
            }
        });
        if list.is_empty() {
            return Ok((std::ptr::null(), 0));
        }
        Ok((list.as_ptr(), list.len() as i32))
    });
    // SAFETY: a non-NULL count pointer is the caller's writable int32_t (llama.h contract).
    if let Some(out) = unsafe { n_suppress_tokens.as_mut() } {
        *out = n;
    }
    ptr
}

/// Loads a model given as a list of split files (llama.h `llama_model_load_from_splits`). One
/// path loads as bitnet_model_load_from_file; several (a model split across GGUF files) are
/// refused with an UNSUPPORTED error (merge them first, e.g. `llama-gguf-split --merge`).
/// NULL on failure.
#[no_mangle]
pub extern "C" fn bitnet_model_load_from_splits(
    paths: *const *const c_char,
    n_paths: usize,
    params: super::model::bitnet_model_params,
) -> *mut super::model::bitnet_model {
    let first = call(None, || {
        let list = super::slice(paths, i64::try_from(n_paths).unwrap_or(i64::MAX), "paths")?;
        match list {
            [] => Err(Error::invalid_argument("n_paths is 0")),
            [one] => Ok(Some(*one)),
            _ => Err(Error::unsupported(format!(
                "models split across {n_paths} GGUF files are not supported (merge them first)"
            ))),
        }
    });
    match first {
        Some(path) => super::model::bitnet_model_load_from_file(path, params),
        None => std::ptr::null_mut(),
    }
}
