//! Training (llama.h's `llama_opt_*`): not part of bitnet, as LoRA adapters are not. The
//! functions exist with llama.h's signatures so that a renamed client links; `opt_init` and
//! `opt_epoch` log an error, record it for bitnet_last_error (status UNSUPPORTED) and change
//! nothing. docs/c-api.md says so.

use super::call_void;
use super::context::bitnet_context;
use super::model::bitnet_model;
use crate::error::Error;
use std::ffi::c_void;

/// The filter's tensor (bitnet has no training, so the filter is never called).
pub use super::gguf_builder::bitnet_tensor;

/// An optimizer dataset (`ggml_opt_dataset_t`, opaque).
pub type bitnet_opt_dataset_t = *mut c_void;
/// An optimizer result (`ggml_opt_result_t`, opaque).
pub type bitnet_opt_result_t = *mut c_void;

/// Returns whether a tensor holds trainable parameters (`llama_opt_param_filter`).
pub type bitnet_opt_param_filter =
    Option<unsafe extern "C" fn(tensor: *const bitnet_tensor, userdata: *mut c_void) -> bool>;

/// Computes optimizer parameters (`ggml_opt_get_optimizer_params`; its result type is opaque
/// here, never called).
pub type bitnet_opt_get_optimizer_params =
    Option<unsafe extern "C" fn(userdata: *mut c_void) -> *mut c_void>;

/// Called after each batch of an epoch (`ggml_opt_epoch_callback`; never called).
pub type bitnet_opt_epoch_callback = Option<
    unsafe extern "C" fn(
        train: bool,
        opt_ctx: *mut c_void,
        dataset: bitnet_opt_dataset_t,
        result: bitnet_opt_result_t,
        ibatch: i64,
        ibatch_max: i64,
        t_start_us: i64,
    ),
>;

/// Optimizer types (`ggml_opt_optimizer_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_opt_optimizer_type {
    BITNET_OPT_OPTIMIZER_TYPE_ADAMW = 0,
    BITNET_OPT_OPTIMIZER_TYPE_SGD = 1,
    BITNET_OPT_OPTIMIZER_TYPE_COUNT = 2,
}

/// Training parameters (`llama_opt_params`, same fields in the same order).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_opt_params {
    /// Context size assumed after training; 0 = the context's.
    pub n_ctx_train: u32,
    pub param_filter: bitnet_opt_param_filter,
    pub param_filter_ud: *mut c_void,
    pub get_opt_pars: bitnet_opt_get_optimizer_params,
    pub get_opt_pars_ud: *mut c_void,
    /// `enum bitnet_opt_optimizer_type`.
    pub optimizer_type: i32,
}

const NO_TRAINING: &str = "training is not supported by bitnet (an inference runtime for \
     ternary models); nothing was done";

fn unsupported(what: &str) -> crate::error::Result<()> {
    let e = Error::unsupported(format!("{what}: {NO_TRAINING}"));
    crate::log::log(crate::log::Level::Error, e.message());
    Err(e)
}

/// Always true, as llama.cpp's (every tensor is trainable).
#[no_mangle]
pub extern "C" fn bitnet_opt_param_filter_all(
    tensor: *const bitnet_tensor,
    userdata: *mut c_void,
) -> bool {
    let _ = (tensor, userdata);
    true
}

/// Not supported: logs an error, sets bitnet_last_error (BITNET_ERR_UNSUPPORTED), does nothing.
#[no_mangle]
pub extern "C" fn bitnet_opt_init(
    lctx: *mut bitnet_context,
    model: *mut bitnet_model,
    lopt_params: bitnet_opt_params,
) {
    let _ = (lctx, model, lopt_params);
    call_void(|| unsupported("bitnet_opt_init"))
}

/// Not supported: logs an error, sets bitnet_last_error (BITNET_ERR_UNSUPPORTED), does nothing
/// (no callback is called).
#[no_mangle]
pub extern "C" fn bitnet_opt_epoch(
    lctx: *mut bitnet_context,
    dataset: bitnet_opt_dataset_t,
    result_train: bitnet_opt_result_t,
    result_eval: bitnet_opt_result_t,
    idata_split: i64,
    callback_train: bitnet_opt_epoch_callback,
    callback_eval: bitnet_opt_epoch_callback,
) {
    let _ = (
        lctx,
        dataset,
        result_train,
        result_eval,
        idata_split,
        callback_train,
        callback_eval,
    );
    call_void(|| unsupported("bitnet_opt_epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_is_refused_with_a_message() {
        assert!(bitnet_opt_param_filter_all(
            std::ptr::null(),
            std::ptr::null_mut()
        ));
        let p = bitnet_opt_params {
            n_ctx_train: 0,
            param_filter: Some(bitnet_opt_param_filter_all),
            param_filter_ud: std::ptr::null_mut(),
            get_opt_pars: None,
            get_opt_pars_ud: std::ptr::null_mut(),
            optimizer_type: 0,
        };
        crate::ffi::error::clear();
        bitnet_opt_init(std::ptr::null_mut(), std::ptr::null_mut(), p);
        let (kind, msg) = crate::ffi::error::last().unwrap();
        assert_eq!(kind, crate::ErrorKind::Unsupported);
        assert!(
            msg.contains("bitnet_opt_init") && msg.contains("training"),
            "{msg}"
        );
        crate::ffi::error::clear();
        bitnet_opt_epoch(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
            None,
            None,
        );
        assert!(crate::ffi::error::last()
            .unwrap()
            .1
            .contains("bitnet_opt_epoch"));
    }
}
