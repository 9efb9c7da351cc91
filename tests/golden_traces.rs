//! The forward pass against the reference bitnet.cpp: the golden traces of every shared tiny
//! model (`shared/golden/README.md`), the full step-0 logits, and logit hashes from the numpy
//! oracle (`shared/tools/pyref`, bit-exact with the reference) for batch splits the traces do not
//! cover. Run with `BITNET_TEST_DATA=/work/shared cargo test --release --test golden_traces`.

mod common;

use bitnet::sampling::{argmax, top_k};
use bitnet::{Batch, Context};
use common::{fnv1a64, parse_trace};
use std::sync::Arc;

/// TOPK logits are printed `%.6f`, so ±5e-7 is print rounding; the project's tolerance is 1e-5.
const ATOL: f32 = 1e-5;

struct Worst {
    topk: f32,
    full: f32,
    cosine: f64,
}

/// Replays every `.trace` of `stem` the way the golden tracer produced it: the prompt as one
/// batch, then each step's greedy token alone. Asserts the greedy id, the top-8 ids and their
/// logits at every step, and the full `short_en` step-0 logits.
fn check_model(stem: &str) {
    let Some(model) = common::load(stem) else {
        return;
    };
    let Some(dir) = bitnet_testdata::path(&format!("golden/{stem}")) else {
        return;
    };
    let mut traces: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    traces.sort();
    assert_eq!(traces.len(), 6, "{stem}: expected six traces");
    let golden_full = common::golden_logits(stem).unwrap();
    let mut worst = Worst {
        topk: 0.0,
        full: 0.0,
        cosine: 1.0,
    };
    let mut ctx = common::context(&model);
    for path in &traces {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let trace = parse_trace(path);
        assert_eq!(trace.tokens.len(), 32, "{stem}/{name}");
        ctx.kv_mut().clear();
        ctx.decode(&Batch::get_one(&trace.prompt)).unwrap();
        for step in 0..32 {
            if step > 0 {
                ctx.decode(&Batch::get_one(&[trace.tokens[step - 1]]))
                    .unwrap();
            }
            let logits = ctx.logits_ith(-1).unwrap();
            if step == 0 && name == "short_en" {
                let (diff, cos) = compare_full(logits, &golden_full);
                worst.full = diff;
                worst.cosine = cos;
                assert!(
                    diff <= ATOL,
                    "{stem}: short_en full logits differ by {diff}"
                );
            }
            let ours = top_k(logits, 8);
            let want = &trace.topk[step];
            let ids: Vec<i32> = ours.iter().map(|e| e.0).collect();
            let want_ids: Vec<i32> = want.iter().map(|e| e.0).collect();
            assert_eq!(
                argmax(logits) as i32,
                trace.tokens[step],
                "{stem}/{name} step {step}: greedy token"
            );
            assert_eq!(ids, want_ids, "{stem}/{name} step {step}: top-8 ids");
            for &(id, l) in want {
                let d = (logits[id as usize] - l).abs();
                worst.topk = worst.topk.max(d);
                assert!(
                    d <= ATOL,
                    "{stem}/{name} step {step}: logit of {id} is {}, golden {l}",
                    logits[id as usize]
                );
            }
        }
    }
    println!(
        "{stem}: 6 traces x 32 steps match; worst TOPK |diff| {:.3e} (print rounding 5e-7), \
         short_en full logits max |diff| {:.3e}, cosine {:.9}",
        worst.topk, worst.full, worst.cosine
    );
}

fn compare_full(ours: &[f32], golden: &[f32]) -> (f32, f64) {
    assert_eq!(ours.len(), golden.len());
    let mut max = 0f32;
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&a, &b) in ours.iter().zip(golden) {
        max = max.max((a - b).abs());
        dot += a as f64 * b as f64;
        na += a as f64 * a as f64;
        nb += b as f64 * b as f64;
    }
    (max, dot / (na.sqrt() * nb.sqrt()))
}

#[test]
fn golden_tiny_b158_i2_s() {
    check_model("tiny-b158-i2_s");
}
#[test]
fn golden_tiny_b158_i2_s_q6k() {
    check_model("tiny-b158-i2_s-q6k");
}
#[test]
fn golden_tiny_spm_f32() {
    check_model("tiny-spm-f32");
}
#[test]
fn golden_tiny_spm_i2_s() {
    check_model("tiny-spm-i2_s");
}
#[test]
fn golden_tiny_spm_tq2_0_q6k() {
    check_model("tiny-spm-tq2_0-q6k");
}
#[test]
fn golden_tiny_spm_tq1_0_q6k() {
    check_model("tiny-spm-tq1_0-q6k");
}

/// Logits of the last `short_en` id after feeding the first `prompt_len` ids as one batch and the
/// rest one token at a time.
fn logits_after(ctx: &mut Context, ids: &[i32], prompt_len: usize) -> Vec<f32> {
    ctx.kv_mut().clear();
    ctx.decode(&Batch::get_one(&ids[..prompt_len])).unwrap();
    for &t in &ids[prompt_len..] {
        ctx.decode(&Batch::get_one(&[t])).unwrap();
    }
    ctx.logits_ith(-1).unwrap().to_vec()
}

/// Batch splits change the kernels (1-row vs many-row matmuls, P·V in F16 or F32), so the bits
/// of the final logits depend on them. Expected hashes come from the numpy oracle, e.g.
/// `python3 oracle.py dump ../../models/tiny-spm-f32.gguf --prompt-len 5 \
///    --ids 1,450,4996,17354,1701,29916,432,17204,975,278,17366,11203,29889`
/// (the `logits ... fnv=` line; the ids are each model's `short_en` PROMPT).
#[test]
fn batch_splits_match_the_oracle() {
    let cases: [(&str, usize, u64); 8] = [
        ("tiny-spm-f32", 1, 0x7f32efd8ffffccd9),
        ("tiny-spm-f32", 5, 0x40c76384473acb6a),
        ("tiny-spm-f32", 13, 0xe62cae74b929531d),
        ("tiny-b158-i2_s-q6k", 1, 0xa6f822cd616e0cae),
        ("tiny-b158-i2_s-q6k", 5, 0xe0a1c07b0f6801ab),
        ("tiny-spm-tq1_0-q6k", 1, 0x41ddeaeab846972d),
        ("tiny-spm-tq1_0-q6k", 5, 0xc24c7cf488e37eb1),
        ("tiny-spm-tq1_0-q6k", 13, 0xd3ca541a886ee3e2),
    ];
    let mut loaded: Vec<(&str, Arc<bitnet::Model>)> = Vec::new();
    for (stem, prompt_len, want) in cases {
        let model = match loaded.iter().find(|(s, _)| *s == stem) {
            Some((_, m)) => m.clone(),
            None => {
                let Some(m) = common::load(stem) else {
                    return;
                };
                loaded.push((stem, m.clone()));
                m
            }
        };
        let path = bitnet_testdata::path(&format!("golden/{stem}/short_en.trace")).unwrap();
        let ids = parse_trace(&path).prompt;
        let mut ctx = common::context(&model);
        let got = fnv1a64(&logits_after(&mut ctx, &ids, prompt_len));
        assert_eq!(
            got, want,
            "{stem}: prompt split {prompt_len} + singles: logits hash {got:016x}, oracle {want:016x}"
        );
    }
}

/// The n_ubatch split must not change results when it coincides with a split the caller makes:
/// a 13-token batch with n_ubatch 5 evaluates ubatches of 5, 5 and 3 tokens (none single), so it
/// must equal feeding those three batches by hand.
#[test]
fn ubatch_split_equals_manual_split() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let path = bitnet_testdata::path("golden/tiny-spm-f32/short_en.trace").unwrap();
    let ids = parse_trace(&path).prompt;
    let mut params = common::tracer_params();
    params.n_ubatch = 5;
    let mut split = Context::new(model.clone(), params).unwrap();
    split.decode(&Batch::get_one(&ids)).unwrap();
    let mut manual = common::context(&model);
    for chunk in ids.chunks(5) {
        manual.decode(&Batch::get_one(chunk)).unwrap();
    }
    assert_eq!(
        fnv1a64(split.logits_ith(-1).unwrap()),
        fnv1a64(manual.logits_ith(-1).unwrap())
    );
}

/// Work is split by output rows and attention heads, never inside a sum, so the thread count
/// must not change a bit (DESIGN.md, Determinism): prompt and decode with 2 threads equal the
/// 1-thread golden logits.
#[test]
fn thread_count_does_not_change_bits() {
    for stem in ["tiny-spm-f32", "tiny-spm-i2_s"] {
        let Some(model) = common::load(stem) else {
            return;
        };
        let path = bitnet_testdata::path(&format!("golden/{stem}/short_en.trace")).unwrap();
        let ids = parse_trace(&path).prompt;
        let mut params = common::tracer_params();
        params.n_threads = 2;
        params.n_threads_batch = 2;
        let mut two = Context::new(model.clone(), params).unwrap();
        let mut one = common::context(&model);
        for prompt_len in [ids.len(), 4] {
            assert_eq!(
                logits_after(&mut two, &ids, prompt_len),
                logits_after(&mut one, &ids, prompt_len),
                "{stem}: 2 threads differ from 1 (prompt split {prompt_len})"
            );
        }
        two.kv_mut().clear();
        two.decode(&Batch::get_one(&ids)).unwrap();
        assert_eq!(
            two.logits_ith(-1).unwrap(),
            &common::golden_logits(stem).unwrap()[..]
        );
    }
}
