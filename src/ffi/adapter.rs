//! LoRA adapters and control vectors (`llama_adapter_lora_*`, `llama_set_adapters_lora`,
//! `llama_set_adapter_cvec`). bitnet does not apply adapters: the functions exist so llama.h
//! programs link, and loading one fails with a clear message. Calls that clear adapters (none
//! given) succeed, since there is nothing to clear.

use super::context::{bitnet_context, ctx_ref};
use super::model::bitnet_model;
use super::{borrow, c_str, call, call_void};
use crate::error::{Error, ErrorKind};
use std::ffi::{c_char, c_void};

/// A LoRA adapter (opaque). bitnet never makes one: bitnet_adapter_lora_init always fails.
pub struct bitnet_adapter_lora {
    _private: (),
}

fn unsupported(what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{what}: LoRA adapters and control vectors are not supported by bitnet"),
    )
}

/// Loads a LoRA adapter: always NULL (not supported; bitnet_last_error says so).
#[no_mangle]
pub extern "C" fn bitnet_adapter_lora_init(
    model: *mut bitnet_model,
    path_lora: *const c_char,
) -> *mut bitnet_adapter_lora {
    call(std::ptr::null_mut(), || {
        borrow(model, "model")?;
        let path = c_str(path_lora, "path_lora")?;
        Err(unsupported(&format!("bitnet_adapter_lora_init({path:?})")))
    })
}

/// Loads a LoRA adapter from an open FILE: always NULL (not supported).
#[no_mangle]
pub extern "C" fn bitnet_adapter_lora_init_from_file_ptr(
    model: *mut bitnet_model,
    file: *mut c_void,
) -> *mut bitnet_adapter_lora {
    let _ = file;
    call(std::ptr::null_mut(), || {
        borrow(model, "model")?;
        Err(unsupported("bitnet_adapter_lora_init_from_file_ptr"))
    })
}

/// Adapter metadata: -1 (there are no adapters).
#[no_mangle]
pub extern "C" fn bitnet_adapter_meta_val_str(
    adapter: *const bitnet_adapter_lora,
    key: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    let _ = (adapter, key, buf, buf_size);
    call(-1, || Err(unsupported("bitnet_adapter_meta_val_str")))
}

/// Adapter metadata count: -1 (there are no adapters).
#[no_mangle]
pub extern "C" fn bitnet_adapter_meta_count(adapter: *const bitnet_adapter_lora) -> i32 {
    let _ = adapter;
    call(-1, || Err(unsupported("bitnet_adapter_meta_count")))
}

/// Adapter metadata key: -1 (there are no adapters).
#[no_mangle]
pub extern "C" fn bitnet_adapter_meta_key_by_index(
    adapter: *const bitnet_adapter_lora,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    let _ = (adapter, i, buf, buf_size);
    call(-1, || Err(unsupported("bitnet_adapter_meta_key_by_index")))
}

/// Adapter metadata value: -1 (there are no adapters).
#[no_mangle]
pub extern "C" fn bitnet_adapter_meta_val_str_by_index(
    adapter: *const bitnet_adapter_lora,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    let _ = (adapter, i, buf, buf_size);
    call(-1, || {
        Err(unsupported("bitnet_adapter_meta_val_str_by_index"))
    })
}

/// Frees an adapter: a no-op (none can exist; NULL is fine).
#[no_mangle]
pub extern "C" fn bitnet_adapter_lora_free(adapter: *mut bitnet_adapter_lora) {
    let _ = adapter;
    call_void(|| Ok(()))
}

/// aLoRA invocation token count: 0.
#[no_mangle]
pub extern "C" fn bitnet_adapter_get_alora_n_invocation_tokens(
    adapter: *const bitnet_adapter_lora,
) -> u64 {
    let _ = adapter;
    0
}

/// aLoRA invocation tokens: NULL.
#[no_mangle]
pub extern "C" fn bitnet_adapter_get_alora_invocation_tokens(
    adapter: *const bitnet_adapter_lora,
) -> *const super::bitnet_token {
    let _ = adapter;
    std::ptr::null()
}

/// Sets the context's adapters: 0 when none are given (nothing to do), -1 otherwise.
#[no_mangle]
pub extern "C" fn bitnet_set_adapters_lora(
    ctx: *mut bitnet_context,
    adapters: *mut *mut bitnet_adapter_lora,
    n_adapters: usize,
    scales: *mut f32,
) -> i32 {
    let _ = (adapters, scales);
    call(-1, || {
        ctx_ref(ctx)?;
        if n_adapters == 0 {
            Ok(0)
        } else {
            Err(unsupported("bitnet_set_adapters_lora"))
        }
    })
}

/// Applies a control vector: 0 when `data` is NULL (clearing: nothing to clear), -1 otherwise.
#[no_mangle]
pub extern "C" fn bitnet_set_adapter_cvec(
    ctx: *mut bitnet_context,
    data: *const f32,
    len: usize,
    n_embd: i32,
    il_start: i32,
    il_end: i32,
) -> i32 {
    let _ = (len, n_embd, il_start, il_end);
    call(-1, || {
        ctx_ref(ctx)?;
        if data.is_null() {
            Ok(0)
        } else {
            Err(unsupported("bitnet_set_adapter_cvec"))
        }
    })
}
