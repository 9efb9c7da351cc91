//! Abort callback (llama.h `llama_set_abort_callback`): a long decode asks it between ubatches
//! and stops when it returns true; `bitnet_decode` then returns 2.

use super::call_void;
use super::context::{bitnet_context, ctx_mut};
use std::ffi::c_void;

/// Returns true to stop the running bitnet_decode (llama.h `ggml_abort_callback`).
pub type bitnet_abort_callback = Option<unsafe extern "C" fn(data: *mut c_void) -> bool>;

/// The C callback and its data, called on the thread that runs bitnet_decode.
struct CAbort {
    f: unsafe extern "C" fn(*mut c_void) -> bool,
    data: *mut c_void,
}

// SAFETY: the callback is only ever called from inside bitnet_decode, on the caller's thread,
// with the data pointer the caller registered for that context; llama.h leaves the data's
// thread-safety to the caller in the same way.
unsafe impl Send for CAbort {}
// SAFETY: a shared reference to it gives no access to the callback (it is called only through
// the context's `&mut`), so sharing one across threads cannot race.
unsafe impl Sync for CAbort {}

/// Sets the abort callback of ctx (NULL removes it). bitnet_decode calls it before every
/// ubatch; when it returns true, decode stops and returns 2. The ubatches evaluated before stay
/// in the KV cache and their logits stay readable (as llama.h documents). No-op if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_set_abort_callback(
    ctx: *mut bitnet_context,
    abort_callback: bitnet_abort_callback,
    abort_callback_data: *mut c_void,
) {
    call_void(|| {
        let c = ctx_mut(ctx)?;
        let abort = abort_callback.map(|f| {
            let mut cb = CAbort {
                f,
                data: abort_callback_data,
            };
            Box::new(move || {
                let cb = &mut cb;
                // SAFETY: the caller registered `f` with `data` for this context (llama.h
                // contract); it is called with exactly that pointer.
                unsafe { (cb.f)(cb.data) }
            }) as crate::AbortCallback
        });
        c.ctx.set_abort_callback(abort);
        Ok(())
    })
}
