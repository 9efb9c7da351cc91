//! Two contexts on one model, used from two threads at once, give the same logits as the same
//! work done one after the other: a `Model` is shared read-only (`Arc<Model>`, `Send + Sync`),
//! each `Context` is owned by one thread at a time.

use bitnet::{Batch, Context, ContextParams, Model};
use std::sync::Arc;

fn run(model: &Arc<Model>, prompt: &[i32], steps: usize, threads: i32) -> Vec<Vec<f32>> {
    let params = ContextParams {
        n_ctx: 256,
        n_threads: threads,
        n_threads_batch: threads,
        ..Default::default()
    };
    let mut ctx = Context::new(model.clone(), params).unwrap();
    let mut out = Vec::new();
    ctx.decode(&Batch::get_one(prompt)).unwrap();
    for _ in 0..steps {
        let logits = ctx.logits_ith(-1).unwrap().to_vec();
        let next = bitnet::sampling::argmax(&logits) as i32;
        out.push(logits);
        ctx.decode(&Batch::get_one(&[next])).unwrap();
    }
    out
}

#[test]
fn two_contexts_on_two_threads_match_sequential_runs() {
    let Some(path) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let model = Arc::new(Model::load(path).unwrap());
    let a: Vec<i32> = vec![1, 450, 4996, 17354, 1701, 29916];
    let b: Vec<i32> = vec![1, 822, 18755, 265, 21566, 29898, 29876];
    let seq_a = run(&model, &a, 8, 1);
    let seq_b = run(&model, &b, 8, 2);
    let (par_a, par_b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(&model, &a, 8, 2));
        let hb = s.spawn(|| run(&model, &b, 8, 1));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    // Bit-identical, whatever the thread counts.
    assert_eq!(seq_a, par_a);
    assert_eq!(seq_b, par_b);
}
