//! DESIGN.md: "No allocation on the decode path." After a warm-up step (kernel scratch grows
//! once), single-token decodes must not touch the heap. A counting global allocator measures
//! it; this test binary holds nothing else, so other tests cannot disturb the count.
//! The one exception is rayon's: handing a job to a pool from outside (`install`, once per
//! decode) pushes onto a crossbeam injector queue, which allocates a new block every 63 pushes.
//! The count is taken with one thread: with two, rayon's work-stealing deques grow (and later
//! shrink, allocating again) when the other worker is slow to steal, which happens on a loaded
//! machine (seen once in a full `cargo test` on a busy 2-core box). Those are the pool's
//! allocations, not the decode path's, and their number depends on scheduling.

mod common;

use bitnet::Batch;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn decode_step_does_not_allocate() {
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
