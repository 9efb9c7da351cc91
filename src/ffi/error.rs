//! The last error of the calling thread (`bitnet_last_error`) and the status codes.

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// Status codes: 0 success, negative errors, positive the two non-fatal outcomes of
/// `bitnet_decode`. The same numbers as the Rust `ErrorKind`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_status {
    BITNET_OK = 0,
    /// A NULL or out-of-range argument (handle, token, sequence id, length).
    BITNET_ERR_INVALID_ARG = -1,
    /// The operating system refused a file operation.
    BITNET_ERR_IO = -2,
    /// A malformed file (bad magic, truncated, inconsistent).
    BITNET_ERR_FORMAT = -3,
    /// Well-formed, but uses something this library does not implement.
    BITNET_ERR_UNSUPPORTED = -4,
    /// An allocation failed.
    BITNET_ERR_OOM = -5,
    /// A metadata key is missing or has the wrong type or value.
    BITNET_ERR_METADATA = -6,
    /// A token id outside the vocabulary.
    BITNET_ERR_INVALID_TOKEN = -7,
    /// The caller's buffer is too small.
    BITNET_ERR_BUFFER_TOO_SMALL = -8,
    /// An internal invariant failed (a bug in bitnet).
    BITNET_ERR_INTERNAL = -9,
    /// A Rust panic was caught at the C boundary (a bug in bitnet).
    BITNET_ERR_PANIC = -10,
    /// No KV-cache slot for the batch (`bitnet_decode` returns 1).
    BITNET_ERR_KV_FULL = 1,
    /// Aborted by the abort callback (`bitnet_decode` returns 2).
    BITNET_ERR_ABORTED = 2,
}

impl bitnet_status {
    fn from_kind(kind: ErrorKind) -> bitnet_status {
        use bitnet_status::*;
        match kind {
            ErrorKind::InvalidArgument => BITNET_ERR_INVALID_ARG,
            ErrorKind::Io => BITNET_ERR_IO,
            ErrorKind::Format => BITNET_ERR_FORMAT,
            ErrorKind::Unsupported => BITNET_ERR_UNSUPPORTED,
            ErrorKind::OutOfMemory => BITNET_ERR_OOM,
            ErrorKind::Metadata => BITNET_ERR_METADATA,
            ErrorKind::InvalidToken => BITNET_ERR_INVALID_TOKEN,
            ErrorKind::BufferTooSmall => BITNET_ERR_BUFFER_TOO_SMALL,
            ErrorKind::Internal => BITNET_ERR_INTERNAL,
            ErrorKind::Panic => BITNET_ERR_PANIC,
            ErrorKind::ContextFull => BITNET_ERR_KV_FULL,
            ErrorKind::Aborted => BITNET_ERR_ABORTED,
        }
    }
}

struct LastError {
    kind: ErrorKind,
    #[cfg_attr(not(test), allow(dead_code))]
    message: String,
    /// The message as handed to C: "<kind name>: <message>".
    c_message: CString,
}

thread_local! {
    static LAST: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// Records `err` as this thread's last error.
pub(crate) fn set(err: Error) {
    let text = format!("{}: {}", err.kind().name(), err.message());
    // Interior NULs cannot cross as a C string; show them instead of truncating silently.
    let c_message = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
    LAST.with(|l| {
        *l.borrow_mut() = Some(LastError {
            kind: err.kind(),
            message: err.message().to_string(),
            c_message,
        })
    });
}

/// This thread's last error (kind, message), for tests.
#[cfg(test)]
pub(crate) fn last() -> Option<(ErrorKind, String)> {
    LAST.with(|l| l.borrow().as_ref().map(|e| (e.kind, e.message.clone())))
}

pub(crate) fn clear() {
    LAST.with(|l| *l.borrow_mut() = None);
}

// The three functions below are the error channel itself, so they do not run inside `call`
// (which reports through it); they only read or reset a thread-local and cannot panic.

/// The message of the last failed bitnet_* call on this thread ("<kind>: <what was wrong>"),
/// or NULL if none failed since the last `bitnet_clear_error`. Successful calls do not clear
/// it. The string stays valid until the next failing call or `bitnet_clear_error` on this
/// thread.
#[no_mangle]
pub extern "C" fn bitnet_last_error() -> *const c_char {
    LAST.with(|l| match &*l.borrow() {
        Some(e) => e.c_message.as_ptr(),
        None => std::ptr::null(),
    })
}

/// The status code of the last failed bitnet_* call on this thread, BITNET_OK if none.
#[no_mangle]
pub extern "C" fn bitnet_last_status() -> bitnet_status {
    LAST.with(|l| match &*l.borrow() {
        Some(e) => bitnet_status::from_kind(e.kind),
        None => bitnet_status::BITNET_OK,
    })
}

/// Forgets this thread's last error (`bitnet_last_error` returns NULL afterwards).
#[no_mangle]
pub extern "C" fn bitnet_clear_error() {
    clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_equal_error_kind_codes() {
        use ErrorKind::*;
        for k in [
            InvalidArgument,
            Io,
            Format,
            Unsupported,
            OutOfMemory,
            Metadata,
            InvalidToken,
            BufferTooSmall,
            Internal,
            Panic,
            ContextFull,
            Aborted,
        ] {
            assert_eq!(bitnet_status::from_kind(k) as i32, k.code(), "{k:?}");
        }
    }

    #[test]
    fn last_error_is_per_thread_and_cleared() {
        set(Error::metadata("key general.name missing"));
        let msg = unsafe { std::ffi::CStr::from_ptr(bitnet_last_error()) };
        assert_eq!(
            msg.to_str().unwrap(),
            "metadata error: key general.name missing"
        );
        assert_eq!(bitnet_last_status(), bitnet_status::BITNET_ERR_METADATA);
        std::thread::spawn(|| assert!(bitnet_last_error().is_null()))
            .join()
            .unwrap();
        bitnet_clear_error();
        assert!(bitnet_last_error().is_null());
        assert_eq!(bitnet_last_status(), bitnet_status::BITNET_OK);
    }
}
