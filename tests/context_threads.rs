//! A context's threads have exited when it is dropped (`bitnet_free`) or when
//! `set_n_threads` replaces them: none is left to finish on its own later, still running the
//! library's code or holding memory (LeakSanitizer reported the exit records of such threads
//! in the `state` and `positions` fuzz targets).
//!
//! A thread has exited once its thread-local destructors have run: the tap of
//! `decode_traced`, which runs on the pool's thread, sets a thread-local there whose
//! destructor counts.

use bitnet::{Batch, Context, ContextParams, Model};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

static EXITED: AtomicUsize = AtomicUsize::new(0);

struct CountsExit(Cell<bool>);

impl Drop for CountsExit {
    fn drop(&mut self) {
        if self.0.get() {
            EXITED.fetch_add(1, Ordering::SeqCst);
        }
    }
}

thread_local! {
    static MARK: CountsExit = const { CountsExit(Cell::new(false)) };
}

/// Decodes `tokens` with a tap that marks the thread it runs on; returns that thread's name.
fn decode_marking(ctx: &mut Context, tokens: &[i32]) -> String {
    let mut name = String::new();
    let mut tap = |_: &str, _: &[f32], _: usize| {
        MARK.with(|m| m.0.set(true));
        name = std::thread::current().name().unwrap_or("").to_string();
    };
    ctx.decode_traced(&Batch::get_one(tokens), &mut tap)
        .unwrap();
    name
}

// One test function: no other test of this process runs decodes with the tap.
#[test]
fn pool_threads_have_exited_when_the_context_is_dropped() {
    let Some(path) = bitnet_testdata::path("models/tiny-spm-tq2_0-q6k.gguf") else {
        return;
    };
    let model = Arc::new(Model::load(path).unwrap());
    let mut exited = 0;
    for round in 0..10 {
        let params = ContextParams {
            n_ctx: 64,
            n_threads: 1,
            n_threads_batch: 1,
            ..Default::default()
        };
        let mut ctx = Context::new(model.clone(), params).unwrap();
        let name = decode_marking(&mut ctx, &[1, 450, 4996]);
        assert!(
            name.starts_with("bitnet-"),
            "the tap ran on thread {name:?}"
        );
        // Replacing the pool waits for its thread.
        ctx.set_n_threads(1, 1).unwrap();
        exited += 1;
        assert_eq!(
            EXITED.load(Ordering::SeqCst),
            exited,
            "round {round}: set_n_threads"
        );
        decode_marking(&mut ctx, &[17354]);
        drop(ctx);
        exited += 1;
        assert_eq!(EXITED.load(Ordering::SeqCst), exited, "round {round}: drop");
    }
}
