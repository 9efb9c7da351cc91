//! `bitnet_log_set`: route the library's log messages to a C callback.

use super::call_void;
use crate::log::{self, Level};
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

/// What bitnet_log_set last installed, for bitnet_log_get (the pointers as integers).
static CURRENT: Mutex<(usize, usize)> = Mutex::new((0, 0));

/// Log levels, numbered as `ggml_log_level`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_log_level {
    BITNET_LOG_LEVEL_NONE = 0,
    BITNET_LOG_LEVEL_DEBUG = 1,
    BITNET_LOG_LEVEL_INFO = 2,
    BITNET_LOG_LEVEL_WARN = 3,
    BITNET_LOG_LEVEL_ERROR = 4,
    /// Continues the previous message (never emitted by bitnet; kept for llama.h parity).
    BITNET_LOG_LEVEL_CONT = 5,
}

/// Receives each log message: `text` is one NUL-terminated line ending in '\n', valid only
/// during the call. Called from whichever thread logs.
pub type bitnet_log_callback = Option<
    unsafe extern "C" fn(level: bitnet_log_level, text: *const c_char, user_data: *mut c_void),
>;

/// The C callback and its user data, moved into the Rust sink.
struct CSink {
    callback: unsafe extern "C" fn(bitnet_log_level, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the pointer is only passed back to the caller's callback; making that safe from any
// thread is the caller's contract (as with llama_log_set).
unsafe impl Send for CSink {}
// SAFETY: as above; the sink never dereferences user_data itself.
unsafe impl Sync for CSink {}

impl CSink {
    fn send(&self, level: Level, text: &str) {
        let level = match level {
            Level::Debug => bitnet_log_level::BITNET_LOG_LEVEL_DEBUG,
            Level::Info => bitnet_log_level::BITNET_LOG_LEVEL_INFO,
            Level::Warn => bitnet_log_level::BITNET_LOG_LEVEL_WARN,
            Level::Error => bitnet_log_level::BITNET_LOG_LEVEL_ERROR,
        };
        let text = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
        // SAFETY: the callback was given by the caller for exactly this use; text is a valid
        // NUL-terminated string for the duration of the call.
        unsafe { (self.callback)(level, text.as_ptr(), self.user_data) }
    }
}

/// Sends every later log message to `log_callback(level, text, user_data)`; NULL restores the
/// default logger, which writes to stderr. Process-wide: set it before other threads use the
/// library. The callback runs on whichever thread logs, possibly several at once, so it must be
/// thread-safe.
#[no_mangle]
pub extern "C" fn bitnet_log_set(log_callback: bitnet_log_callback, user_data: *mut c_void) {
    call_void(|| {
        let sink = log_callback.map(|callback| {
            let c = CSink {
                callback,
                user_data,
            };
            Arc::new(move |level: Level, text: &str| c.send(level, text)) as log::Sink
        });
        log::set_sink(sink);
        let mut cur = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        *cur = (log_callback.map_or(0, |f| f as usize), user_data as usize);
        Ok(())
    })
}

/// The callback and user data bitnet_log_set last installed (NULL, NULL for the default stderr
/// logger). Either output pointer may be NULL.
#[no_mangle]
pub extern "C" fn bitnet_log_get(
    log_callback: *mut bitnet_log_callback,
    user_data: *mut *mut c_void,
) {
    call_void(|| {
        let (cb, ud) = *CURRENT.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `cb` is 0 or the address of the `extern "C" fn` bitnet_log_set received,
        // which has exactly this type.
        let cb: bitnet_log_callback = if cb == 0 {
            None
        } else {
            Some(unsafe {
                std::mem::transmute::<
                    usize,
                    unsafe extern "C" fn(bitnet_log_level, *const c_char, *mut c_void),
                >(cb)
            })
        };
        if !log_callback.is_null() {
            // SAFETY: non-null, and the contract is a writable bitnet_log_callback.
            unsafe { *log_callback = cb };
        }
        if !user_data.is_null() {
            // SAFETY: non-null, and the contract is a writable void *.
            unsafe { *user_data = ud as *mut c_void };
        }
        Ok(())
    })
}
