#![allow(clippy::needless_range_loop)]
//! `ContextParams::batch_invariant`: a sequence's logits are the same bits whether it is decoded
//! alone, beside other sequences in the same batches, after other cells were used, or with its
//! prompt split differently; and they equal the default single-token decoding of a lone sequence.

use bitnet::{Batch, Context, ContextParams, Model, ModelParams};
use std::sync::Arc;

const STEPS: usize = 5;

fn ctx(model: &Arc<Model>, invariant: bool, n_seq: u32) -> Context {
    let params = ContextParams {
        n_ctx: 256,
        n_batch: 64,
        n_ubatch: 64,
        n_seq_max: n_seq,
        n_threads: 2,
        n_threads_batch: 2,
        batch_invariant: invariant,
        ..Default::default()
    };
    Context::new(model.clone(), params).unwrap()
}

/// Greedy continuation of each prompt (one sequence each, ids 1..), all in the same batches:
/// prompts in one batch (or token by token with `split`), then one token per sequence per step.
/// Sequence 0 first gets `junk` tokens, which moves the others' cells. Returns per sequence the
/// logits of every step.
fn run(ctx: &mut Context, prompts: &[&[i32]], junk: &[i32], split: bool) -> Vec<Vec<Vec<f32>>> {
    if !junk.is_empty() {
        let mut b = Batch::new(junk.len());
        for (i, &t) in junk.iter().enumerate() {
            b.push(t, i as i32, &[0], false);
        }
        ctx.decode(&b).unwrap();
    }
    let n = prompts.len();
    let mut out = vec![Vec::new(); n];
    let mut last_row = vec![0usize; n];
    let mut b = Batch::new(256);
    if split {
        let longest = prompts.iter().map(|p| p.len()).max().unwrap();
        for i in 0..longest {
            b.clear();
            let mut rows = Vec::new();
            for (s, p) in prompts.iter().enumerate() {
                if let Some(&t) = p.get(i) {
                    rows.push((s, b.len()));
                    b.push(t, i as i32, &[s as i32 + 1], i + 1 == p.len());
                }
            }
            ctx.decode(&b).unwrap();
            for (s, r) in rows {
                if i + 1 == prompts[s].len() {
                    out[s].push(ctx.logits_ith(r as i32).unwrap().to_vec());
                }
            }
        }
    } else {
        for (s, p) in prompts.iter().enumerate() {
            for (i, &t) in p.iter().enumerate() {
                b.push(t, i as i32, &[s as i32 + 1], i + 1 == p.len());
            }
            last_row[s] = b.len() - 1;
        }
        ctx.decode(&b).unwrap();
        for s in 0..n {
            out[s].push(ctx.logits_ith(last_row[s] as i32).unwrap().to_vec());
        }
    }
    for step in 0..STEPS {
        b.clear();
        for (s, p) in prompts.iter().enumerate() {
            let next = bitnet::sampling::argmax(out[s].last().unwrap()) as i32;
            b.push(next, (p.len() + step) as i32, &[s as i32 + 1], true);
        }
        ctx.decode(&b).unwrap();
        for s in 0..n {
            out[s].push(ctx.logits_ith(s as i32).unwrap().to_vec());
        }
    }
    out
}

/// Default mode, one lone sequence from an empty cache, one token per decode.
fn default_token_by_token(model: &Arc<Model>, prompt: &[i32]) -> Vec<Vec<f32>> {
    let mut c = ctx(model, false, 1);
    let mut out = Vec::new();
    for &t in prompt {
        c.decode(&Batch::get_one(&[t])).unwrap();
    }
    out.push(c.logits_ith(-1).unwrap().to_vec());
    for _ in 0..STEPS {
        let next = bitnet::sampling::argmax(out.last().unwrap()) as i32;
        c.decode(&Batch::get_one(&[next])).unwrap();
        out.push(c.logits_ith(-1).unwrap().to_vec());
    }
    out
}

fn same_bits(a: &[Vec<f32>], b: &[Vec<f32>], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: step count");
    for (step, (x, y)) in a.iter().zip(b).enumerate() {
        let diff = x
            .iter()
            .zip(y)
            .position(|(p, q)| p.to_bits() != q.to_bits());
        assert!(
            diff.is_none(),
            "{what}: step {step}, logit {diff:?} differs"
        );
    }
}

fn check(model: Arc<Model>, name: &str) {
    let v = model.vocab();
    let a = v
        .tokenize("The quick brown fox jumps over", true, false)
        .unwrap();
    let b = v
        .tokenize(
            "Once upon a time, in a land far away, there lived",
            true,
            false,
        )
        .unwrap();
    let c = v.tokenize("1 2 3", true, false).unwrap();

    let alone_a = run(&mut ctx(&model, true, 4), &[&a], &[], false).remove(0);
    let alone_b = run(&mut ctx(&model, true, 4), &[&b], &[], false).remove(0);
    // Beside others, after 37 junk cells, prompts in one multi-sequence batch.
    let mut together = run(&mut ctx(&model, true, 4), &[&c, &a, &b], &[7; 37], false);
    same_bits(&together[1], &alone_a, &format!("{name}: a beside others"));
    same_bits(&together[2], &alone_b, &format!("{name}: b beside others"));
    // Prompts token by token, interleaved in the cache.
    together = run(&mut ctx(&model, true, 4), &[&b, &a], &[], true);
    same_bits(&together[1], &alone_a, &format!("{name}: a split"));
    same_bits(&together[0], &alone_b, &format!("{name}: b split"));
    // The default single-token bits of a lone sequence.
    same_bits(
        &default_token_by_token(&model, &a),
        &alone_a,
        &format!("{name}: default"),
    );
}

#[test]
fn batch_invariant_logits_on_every_shared_model() {
    for m in bitnet_testdata::MODELS {
        let Some(path) = bitnet_testdata::path(&format!("models/{m}.gguf")) else {
            return;
        };
        check(Arc::new(Model::load(path).unwrap()), m);
    }
}

#[test]
fn batch_invariant_logits_with_q8_0_head() {
    let Some(path) = bitnet_testdata::path("models/tiny-b158-i2_s.gguf") else {
        return;
    };
    let model = Model::load_with(path, ModelParams { head_q8_0: true }).unwrap();
    check(Arc::new(model), "tiny-b158-i2_s --head-q8");
}
