//! The C API (`include/bitnet.h`, generated from this module by cbindgen): `llama.h`'s names and
//! signatures with `llama_` → `bitnet_`, as `spec/CAPI.md` maps them.
//!
//! This layer only converts pointers, checks arguments and maps errors; all behaviour lives in
//! the Rust API. Every `extern "C"` body runs inside `call` (or one of its variants), which
//! catches panics, turns an [`Error`] into the function's documented failure value and stores
//! the message for `bitnet_last_error`. Handles are opaque pointers made by `Box::into_raw` and
//! null-checked on every use; freeing NULL is a no-op.
//!
//! The functions are plain `extern "C" fn`, not `unsafe fn`: they are entry points for C, where
//! `unsafe` means nothing; their pointer contracts are documented in the header, every pointer
//! is null-checked, and the remaining trust (a non-null pointer is valid) is taken inside one
//! `unsafe` helper per conversion below.
#![allow(clippy::not_unsafe_ptr_arg_deref, non_camel_case_types)]

pub mod abort;
pub mod adapter;
pub mod backend_sampling;
pub mod batch;
pub mod batch_ext;
pub mod chat;
pub mod compat;
pub mod context;
pub mod decode;
pub mod embeddings;
pub mod error;
pub mod gguf_builder;
pub mod log;
pub mod memory;
pub mod misc;
pub mod model;
pub mod model_io;
pub mod opt;
pub mod perf;
pub mod quantize;
pub mod sampler;
pub mod sampler_ext;
pub mod sampler_iface;
pub mod state;
pub mod system;
pub mod threadpool;
pub mod vocab;

use crate::error::{Error, ErrorKind, Result};
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use error::{bitnet_clear_error, bitnet_last_error, bitnet_last_status};

/// A token id.
pub type bitnet_token = i32;
/// A position in a sequence.
pub type bitnet_pos = i32;
/// A sequence id.
pub type bitnet_seq_id = i32;

/// "No token": returned by the special-token getters when the vocabulary has none.
pub const BITNET_TOKEN_NULL: bitnet_token = -1;
/// Seed value that asks a random sampler for a random seed.
pub const BITNET_DEFAULT_SEED: u32 = 0xFFFF_FFFF;

/// Runs one C entry point's body: returns its value, or on error (or panic) records the message
/// for `bitnet_last_error` and returns `fallback`, the function's documented failure value.
pub(crate) fn call<T>(fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    call_with(|_| fallback, body)
}

/// [`call`] for functions that return nothing (failures are only visible through
/// `bitnet_last_error`).
pub(crate) fn call_void(body: impl FnOnce() -> Result<()>) {
    call_with(|_| (), body)
}

/// The one panic boundary: every other entry helper ends here.
pub(crate) fn call_with<T>(
    fallback: impl FnOnce(ErrorKind) -> T,
    body: impl FnOnce() -> Result<T>,
) -> T {
    // AssertUnwindSafe: after a caught panic the handles the body touched may hold a half-done
    // update; the caller is told (status PANIC, message) and the handle stays memory-safe.
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic payload".to_string());
            Error::new(
                ErrorKind::Panic,
                format!("internal panic (a bug in bitnet): {what}"),
            )
        }
    };
    let kind = err.kind();
    error::set(err);
    fallback(kind)
}

/// Moves `value` to the heap and hands ownership to C.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back ownership of a handle made by [`into_handle`] and drops it; NULL is a no-op.
pub(crate) fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: non-null handles of type T are only ever made by `into_handle::<T>`, and the
        // header's contract is that each is freed once.
        drop(unsafe { Box::from_raw(handle) });
    }
}

/// Borrows a handle, or an INVALID_ARG error naming the parameter when it is NULL.
pub(crate) fn borrow<'a, T>(handle: *const T, name: &str) -> Result<&'a T> {
    // SAFETY: a non-null handle comes from `into_handle` (or is a borrowed pointer derived from
    // one) and is still alive: the header's contract.
    unsafe { handle.as_ref() }.ok_or_else(|| null_arg(name))
}

/// Mutably borrows a handle, or an INVALID_ARG error naming the parameter when it is NULL.
pub(crate) fn borrow_mut<'a, T>(handle: *mut T, name: &str) -> Result<&'a mut T> {
    // SAFETY: as `borrow`; C callers must not use one handle from two threads at once
    // (llama.h's rule too).
    unsafe { handle.as_mut() }.ok_or_else(|| null_arg(name))
}

pub(crate) fn null_arg(name: &str) -> Error {
    Error::invalid_argument(format!("{name} is NULL"))
}

/// A NUL-terminated UTF-8 string argument.
pub(crate) fn c_str<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-null, and the contract is a NUL-terminated string that outlives the call.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|e| Error::invalid_argument(format!("{name} is not valid UTF-8: {e}")))
}

/// `n` elements at `p` (NULL is accepted only when `n` is 0). A negative length is an error.
pub(crate) fn slice<'a, T>(p: *const T, n: i64, name: &str) -> Result<&'a [T]> {
    let n = checked_len(n, name)?;
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-null, and the contract is that `p` points to `n` initialised elements that
    // stay valid and unaliased by writes for the call.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// `n` writable elements at `p` (NULL is accepted only when `n` is 0).
pub(crate) fn slice_mut<'a, T>(p: *mut T, n: i64, name: &str) -> Result<&'a mut [T]> {
    let n = checked_len(n, name)?;
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-null, and the contract is that `p` points to `n` writable elements that
    // nothing else accesses during the call.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
}

fn checked_len(n: i64, name: &str) -> Result<usize> {
    usize::try_from(n)
        .map_err(|_| Error::invalid_argument(format!("length of {name} is negative ({n})")))
}

/// Copies `bytes` into a C buffer of `size` bytes with `snprintf` semantics: writes at most
/// `size - 1` bytes plus a NUL (nothing when `size` is 0) and returns the full length.
pub(crate) fn write_c_string(
    buf: *mut c_char,
    size: usize,
    bytes: &[u8],
    name: &str,
) -> Result<i32> {
    let full = i32::try_from(bytes.len())
        .map_err(|_| Error::internal(format!("{name}: string of {} bytes", bytes.len())))?;
    if size == 0 {
        return Ok(full);
    }
    let out = slice_mut(buf.cast::<u8>(), size as i64, name)?;
    let n = bytes.len().min(size - 1);
    out[..n].copy_from_slice(&bytes[..n]);
    out[n] = 0;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_maps_errors_and_panics_to_fallback_and_message() {
        assert_eq!(call(-1, || Ok(5)), 5);
        assert_eq!(
            call(-1, || Err(Error::invalid_token("token 99 out of range"))),
            -1
        );
        assert_eq!(
            error::last(),
            Some((ErrorKind::InvalidToken, "token 99 out of range".into()))
        );
        assert_eq!(
            call_with(ErrorKind::code, || Err(Error::format("bad magic"))),
            -3
        );
        let r: i32 = call_with(ErrorKind::code, || panic!("boom {}", 7));
        assert_eq!(r, ErrorKind::Panic.code());
        let (kind, msg) = error::last().unwrap();
        assert_eq!(kind, ErrorKind::Panic);
        assert!(msg.contains("boom 7"), "{msg}");
        error::clear();
        assert_eq!(error::last(), None);
    }

    #[test]
    fn pointer_helpers_reject_null_and_negative_lengths() {
        let e = borrow::<u8>(std::ptr::null(), "model").unwrap_err();
        assert_eq!(e.message(), "model is NULL");
        assert!(slice::<i32>(std::ptr::null(), 0, "tokens")
            .unwrap()
            .is_empty());
        assert!(slice::<i32>(std::ptr::null(), 3, "tokens").is_err());
        let x = [1, 2];
        assert!(slice(x.as_ptr(), -1, "tokens").is_err());
        assert_eq!(slice(x.as_ptr(), 2, "tokens").unwrap(), &[1, 2]);
        free_handle::<u32>(std::ptr::null_mut());
        free_handle(into_handle(5u32));
    }

    #[test]
    fn write_c_string_has_snprintf_semantics() {
        let mut buf = [0x7f as c_char; 4];
        assert_eq!(
            write_c_string(buf.as_mut_ptr(), 4, b"hello", "buf").unwrap(),
            5
        );
        assert_eq!(&buf, &[b'h' as c_char, b'e' as c_char, b'l' as c_char, 0]);
        assert_eq!(
            write_c_string(std::ptr::null_mut(), 0, b"hello", "buf").unwrap(),
            5
        );
        assert!(write_c_string(std::ptr::null_mut(), 3, b"hello", "buf").is_err());
    }
}
