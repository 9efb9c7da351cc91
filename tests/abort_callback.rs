//! `bitnet_set_abort_callback` / `Context::set_abort_callback` (llama.h
//! `llama_set_abort_callback`): a long prompt stops between ubatches, decode returns 2 (Rust:
//! `ErrorKind::Aborted`), and the ubatches evaluated before stay in the cache.

mod common;

use bitnet::{Batch, Context, ErrorKind};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn rust_abort_stops_between_ubatches() {
    let Some(model) = common::load("tiny-spm-i2_s") else {
        return;
    };
    let mut params = common::tracer_params();
    params.n_ubatch = 8;
    let mut ctx = Context::new(model.clone(), params).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    // Stop before the third ubatch.
    ctx.set_abort_callback(Some(Box::new(move || {
        c.fetch_add(1, Ordering::Relaxed) == 2
    })));
    let prompt: Vec<i32> = (0..40).map(|i| 100 + i).collect();
    let e = ctx.decode(&Batch::get_one(&prompt)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Aborted, "{e}");
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(ctx.kv().used(), 16, "two ubatches of 8 stay in the cache");
    assert_eq!(ctx.kv().seq_pos_max(0), 15);
    // Removed: the rest of the prompt decodes and continues the sequence.
    ctx.set_abort_callback(None);
    ctx.decode(&Batch::get_one(&prompt[16..])).unwrap();
    assert_eq!(ctx.kv().seq_pos_max(0), 39);
}

unsafe extern "C" fn stop_at_two(data: *mut c_void) -> bool {
    // SAFETY: the test passes a pointer to its AtomicUsize, alive for the whole decode.
    let n = unsafe { &*(data as *const AtomicUsize) };
    n.fetch_add(1, Ordering::Relaxed) == 1
}

#[test]
fn c_decode_returns_2_when_aborted() {
    use bitnet::ffi::abort::bitnet_set_abort_callback;
    use bitnet::ffi::batch::bitnet_batch_get_one;
    use bitnet::ffi::context::{
        bitnet_context_default_params, bitnet_free, bitnet_init_from_model,
    };
    use bitnet::ffi::decode::bitnet_decode;
    use bitnet::ffi::memory::{bitnet_get_memory, bitnet_memory_seq_pos_max};
    use bitnet::ffi::model::{
        bitnet_model_default_params, bitnet_model_free, bitnet_model_load_from_file,
    };

    let Some(path) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let model = bitnet_model_load_from_file(cpath.as_ptr(), bitnet_model_default_params());
    assert!(!model.is_null());
    let mut cp = bitnet_context_default_params();
    cp.n_ctx = 256;
    cp.n_ubatch = 8;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    let ctx = bitnet_init_from_model(model, cp);
    assert!(!ctx.is_null());
    let calls = AtomicUsize::new(0);
    bitnet_set_abort_callback(
        ctx,
        Some(stop_at_two),
        &calls as *const AtomicUsize as *mut c_void,
    );
    let mut prompt: Vec<i32> = (0..30).map(|i| 200 + i).collect();
    let rc = bitnet_decode(ctx, bitnet_batch_get_one(prompt.as_mut_ptr(), 30));
    assert_eq!(rc, 2);
    assert_eq!(calls.load(Ordering::Relaxed), 2);
    assert_eq!(bitnet_memory_seq_pos_max(bitnet_get_memory(ctx), 0), 7);
    // NULL removes it.
    bitnet_set_abort_callback(ctx, None, std::ptr::null_mut());
    let rc = bitnet_decode(ctx, bitnet_batch_get_one(prompt[8..].as_mut_ptr(), 22));
    assert_eq!(rc, 0);
    assert_eq!(bitnet_memory_seq_pos_max(bitnet_get_memory(ctx), 0), 29);
    // NULL ctx: no crash.
    bitnet_set_abort_callback(
        std::ptr::null_mut(),
        Some(stop_at_two),
        std::ptr::null_mut(),
    );
    bitnet_free(ctx);
    bitnet_model_free(model);
}
