//! The last error of the calling thread (`bitnet_last_error`, `bitnet_last_status`). The status
//! codes are `crate::error::ErrorKind`, exported to C as `enum bitnet_status`.

use crate::error::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CString};

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

/// The message of the last failed bitnet_* call on this thread (`"<kind>: <what was wrong>"`),
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
pub extern "C" fn bitnet_last_status() -> ErrorKind {
    LAST.with(|l| match &*l.borrow() {
        Some(e) => e.kind,
        None => ErrorKind::BITNET_OK,
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
    fn last_error_is_per_thread_and_cleared() {
        set(Error::metadata("key general.name missing"));
        let msg = unsafe { std::ffi::CStr::from_ptr(bitnet_last_error()) };
        assert_eq!(
            msg.to_str().unwrap(),
            "metadata error: key general.name missing"
        );
        assert_eq!(bitnet_last_status(), ErrorKind::Metadata);
        std::thread::spawn(|| assert!(bitnet_last_error().is_null()))
            .join()
            .unwrap();
        bitnet_clear_error();
        assert!(bitnet_last_error().is_null());
        assert_eq!(bitnet_last_status(), ErrorKind::BITNET_OK);
    }
}
