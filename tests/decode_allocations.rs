//! DESIGN.md: "No allocation on the decode path." After a warm-up step (kernel scratch grows
//! once), single-token decodes must not touch the heap. A counting global allocator measures
//! it; this test binary holds nothing else, so other tests cannot disturb the count.
//! The one exception is rayon's: handing a job to a pool from outside (`install`, once per
//! decode) pushes onto a crossbeam injector queue, which allocates a new block every 63 pushes.
//! The count is taken with one thread: with two, rayon's work-stealing deques grow (and later
//! shrink, allocating again) when the other worker is slow to steal, which happens on a loaded
//! machine (seen once in a full `cargo test` on a busy 2-core box). Those are the pool's
//! allocations, not the decode path's, and their number depends on scheduling.
//! Only the test's own thread and the context's pool threads (`bitnet-N`) are counted: the test
//! harness's main thread allocates when it prints "has been running for over 60 seconds" (seen
//! under qemu), and that is not the decode path either.

mod common;

use bitnet::Batch;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

const UNKNOWN: u8 = 0;
const COUNTED: u8 = 1;
const IGNORED: u8 = 2;
thread_local! {
    /// Whether this thread's allocations count; decided on its first allocation by its name.
    static STATE: Cell<u8> = const { Cell::new(UNKNOWN) };
}

/// Counts one allocation if it comes from a counted thread. The first allocation of a thread
/// looks up its name (which may itself allocate: the state is IGNORED meanwhile, so that
/// nested call is not counted and does not recurse).
fn count() {
    let Ok(state) = STATE.try_with(|s| s.get()) else {
        return; // thread-local storage already torn down: a thread on its way out
    };
    let state = if state == UNKNOWN {
        STATE.with(|s| s.set(IGNORED));
        let pool = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("bitnet-"));
        let st = if pool { COUNTED } else { IGNORED };
        STATE.with(|s| s.set(st));
        st
    } else {
        state
    };
    if state == COUNTED {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One test, so nothing else in this binary allocates while a count is taken (the harness
/// reports a finished test from another thread).
#[test]
fn decode_steps_do_not_allocate() {
    // This thread runs the decodes' callers: count it (the pool threads count by name).
    STATE.with(|s| s.set(COUNTED));
    let before = ALLOCS.load(Ordering::Relaxed);
    let probe = std::hint::black_box(vec![0u8; 64]);
    assert!(
        ALLOCS.load(Ordering::Relaxed) > before,
        "the counter must see this thread"
    );
    drop(probe);
    rust_decode_steps();
    c_api_decode_and_sample_steps();
}

fn rust_decode_steps() {
    for stem in ["tiny-spm-i2_s", "tiny-spm-tq1_0-q6k", "tiny-spm-f32"] {
        let Some(model) = common::load(stem) else {
            return;
        };
        let mut params = common::tracer_params();
        params.n_threads = 1;
        params.n_ctx = 1024;
        let mut ctx = bitnet::Context::new(model.clone(), params).unwrap();
        ctx.decode(&Batch::get_one(&[1, 450, 4996])).unwrap();
        let one = [17354];
        let batch = Batch::get_one(&one);
        ctx.decode(&batch).unwrap(); // warm-up: kernel scratch for 1 token
        let before = ALLOCS.load(Ordering::Relaxed);
        let steps = 200;
        for _ in 0..steps {
            ctx.decode(&batch).unwrap();
        }
        let n = ALLOCS.load(Ordering::Relaxed) - before;
        let rayon_blocks = steps / 63 + 1;
        eprintln!("{stem}: {n} allocations in {steps} steps");
        assert!(
            n <= rayon_blocks,
            "{stem}: {steps} decode steps allocated {n} times (rayon's queue accounts for {rayon_blocks})"
        );
    }
}

/// The same through the C API, as a C program decodes: a `bitnet_batch_init` batch filled per
/// step (token, position, one sequence id, logits flag), `bitnet_decode`, and
/// `bitnet_sampler_sample` on a greedy chain. After the warm-up, no step allocates (the C batch
/// is converted into the context's reused batch; the chain refills its own candidate buffer).
fn c_api_decode_and_sample_steps() {
    use bitnet::ffi::batch::{bitnet_batch_free, bitnet_batch_init};
    use bitnet::ffi::context::{
        bitnet_context_default_params, bitnet_free, bitnet_init_from_model,
    };
    use bitnet::ffi::decode::bitnet_decode;
    use bitnet::ffi::model::{
        bitnet_model_default_params, bitnet_model_free, bitnet_model_load_from_file,
    };
    use bitnet::ffi::sampler::{
        bitnet_sampler_chain_add, bitnet_sampler_chain_default_params, bitnet_sampler_chain_init,
        bitnet_sampler_free, bitnet_sampler_init_greedy, bitnet_sampler_sample,
    };

    let Some(path) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let model = bitnet_model_load_from_file(cpath.as_ptr(), bitnet_model_default_params());
    assert!(!model.is_null());
    let mut cp = bitnet_context_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    let ctx = bitnet_init_from_model(model, cp);
    assert!(!ctx.is_null());
    let chain = bitnet_sampler_chain_init(bitnet_sampler_chain_default_params());
    bitnet_sampler_chain_add(chain, bitnet_sampler_init_greedy());
    let batch = bitnet_batch_init(8, 0, 1);

    // Fills the batch with one token at `pos` in sequence 0, logits wanted.
    let set_one = |tok: i32, pos: i32| {
        let mut b = batch;
        b.n_tokens = 1;
        // SAFETY: bitnet_batch_init(8, 0, 1) allocated 8 entries of every array and one
        // sequence id per entry.
        unsafe {
            *b.token = tok;
            *b.pos = pos;
            *b.n_seq_id = 1;
            **b.seq_id = 0;
            *b.logits = 1;
        }
        b
    };
    let mut pos = 0;
    let mut tok = 1;
    let step = |pos: &mut i32, tok: &mut i32| {
        assert_eq!(bitnet_decode(ctx, set_one(*tok, *pos)), 0);
        *tok = bitnet_sampler_sample(chain, ctx, -1);
        assert!(*tok >= 0);
        *pos += 1;
    };
    for _ in 0..3 {
        step(&mut pos, &mut tok); // warm-up: scratch, the chain's candidates, the batch columns
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    let steps = 100;
    for _ in 0..steps {
        step(&mut pos, &mut tok);
    }
    let n = ALLOCS.load(Ordering::Relaxed) - before;
    let rayon_blocks = steps / 63 + 1;
    eprintln!("C API: {n} allocations in {steps} decode + sample steps");
    assert!(
        n <= rayon_blocks,
        "{steps} C decode + sample steps allocated {n} times (rayon's queue accounts for {rayon_blocks})"
    );
    bitnet_batch_free(batch);
    bitnet_sampler_free(chain);
    bitnet_free(ctx);
    bitnet_model_free(model);
}
