//! End-to-end golden sampling test: reproduce `golden/sampling/<model>.<prompt>.<letter>.trace`
//! token for token (chains a..h of `golden/sampling/chains.md`, 4 model/prompt pairs, 48 steps)
//! with the real model and context. Run with
//! `BITNET_TEST_DATA=/work/shared cargo test --release --test sampling_golden`.
//!
//! Also tested without a model: trace/probe parsing, the eight chains, the replay loop (prompt
//! tokens never accepted) and the divergence report.

mod common;
#[path = "common/golden.rs"]
mod golden;

use std::sync::Arc;

use bitnet::sampling::Chain;
use bitnet_testdata as testdata;
use golden::{
    golden_chain, golden_model_info, parse_probe, parse_trace, replay, ProbeStep, GOLDEN_CHAINS,
    GOLDEN_RUNS,
};

use bitnet::{Batch, Model};

const STEPS: usize = 48;

/// Decode like the reference tracer and sample with `chain`: n_ctx 512, n_batch = n_ubatch 512,
/// 1 thread; step 0 samples from the last-position logits of one decode of the whole prompt;
/// step n >= 1 samples after decoding the step n-1 token alone; no stop at EOS; the chain is
/// fresh, never reset, and never sees the prompt tokens (chains.md "Run settings").
fn run_reference_decode(
    model: &Arc<Model>,
    prompt: &[i32],
    chain: &mut Chain,
) -> bitnet::Result<Vec<i32>> {
    let mut ctx = common::context(model);
    ctx.decode(&Batch::get_one(prompt))?;
    replay(chain, STEPS, |step, sampled| {
        if step > 0 {
            ctx.decode(&Batch::get_one(&sampled[step - 1..step]))?;
        }
        Ok(ctx.logits_ith(-1)?.to_vec())
    })
}

/// First step where `got` differs from the trace, with the probe's margin for that step (how
/// close the reference's `u` was to a slot edge: a tiny margin means logits that are not
/// bit-exact can legitimately flip the draw, chains.md "Surprises" 5).
fn first_divergence(expected: &[i32], got: &[i32], probe: Option<&[ProbeStep]>) -> Option<String> {
    if let Some(step) = (0..expected.len().max(got.len())).find(|&i| expected.get(i) != got.get(i))
    {
        let margin = probe
            .and_then(|p| p.iter().find(|s| s.step == step))
            .map(|s| {
                format!(
                    ", reference u margin {:.3e}, {} candidates",
                    s.margin, s.n_cand
                )
            })
            .unwrap_or_default();
        return Some(format!(
            "step {step}: expected {:?}, got {:?}{margin}",
            expected.get(step),
            got.get(step)
        ));
    }
    None
}

#[test]
fn golden_sampling_traces() {
    let Some(dir) = testdata::path("golden/sampling") else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (model_name, prompt) in GOLDEN_RUNS {
        let Some(model) = common::load(model_name) else {
            return;
        };
        let info = golden_model_info(model_name).expect("known golden model");
        for (letter, _) in GOLDEN_CHAINS {
            let name = format!("{model_name}.{prompt}.{letter}");
            let trace_path = dir.join(format!("{name}.trace"));
            let trace = parse_trace(&std::fs::read_to_string(&trace_path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", trace_path.display()));
            let probe = std::fs::read_to_string(dir.join(format!("probe/{name}.probe")))
                .ok()
                .map(|t| parse_probe(&t).unwrap());
            let mut chain = golden_chain(letter, &info).unwrap();
            let got = run_reference_decode(&model, &trace.prompt, &mut chain)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            checked += 1;
            if let Some(d) = first_divergence(&trace.tokens, &got, probe.as_deref()) {
                failures.push(format!("{name}: {d}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} traces differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(checked, 32);
}

/// The harness itself, without a model: for every golden run and chain, the trace parses, the
/// chain builds, and replaying the chain over a synthetic logits source exercises the exact
/// loop the golden test uses (48 steps, previous tokens fed back, prompt never accepted).
#[test]
fn golden_harness_runs_on_synthetic_logits() {
    let Some(dir) = testdata::path("golden/sampling") else {
        return;
    };
    for (model, prompt) in GOLDEN_RUNS {
        let info = golden_model_info(model).unwrap();
        for (letter, _) in GOLDEN_CHAINS {
            let trace_path = dir.join(format!("{model}.{prompt}.{letter}.trace"));
            let trace = parse_trace(&std::fs::read_to_string(&trace_path).unwrap()).unwrap();
            assert_eq!(trace.tokens.len(), STEPS);
            assert!(!trace.prompt.is_empty());
            let mut chain = golden_chain(letter, &info).unwrap();
            // A small vocabulary keeps this fast; the logits depend on the step and on the
            // previous token so that the feedback path matters.
            let n_vocab = 500usize;
            let tokens = replay(&mut chain, STEPS, |step, prev| {
                assert_eq!(prev.len(), step);
                let last = prev.last().copied().unwrap_or(trace.prompt[0]) as usize;
                Ok((0..n_vocab)
                    .map(|i| (((i * 131 + step * 17 + last) % 257) as f32) / 32.0)
                    .collect())
            })
            .unwrap();
            assert_eq!(tokens.len(), STEPS);
            assert!(tokens.iter().all(|&t| (0..n_vocab as i32).contains(&t)));
            assert_eq!(
                chain.perf().n_sample,
                STEPS as i32,
                "only sampled tokens accepted"
            );
            // Same chain, same logits: deterministic.
            let mut again = golden_chain(letter, &info).unwrap();
            let tokens2 = replay(&mut again, STEPS, |step, prev| {
                let last = prev.last().copied().unwrap_or(trace.prompt[0]) as usize;
                Ok((0..n_vocab)
                    .map(|i| (((i * 131 + step * 17 + last) % 257) as f32) / 32.0)
                    .collect())
            })
            .unwrap();
            assert_eq!(tokens, tokens2, "{model}.{prompt}.{letter}");
        }
    }
}

#[test]
fn divergence_report_names_step_and_margin() {
    let probe = parse_probe(
        "PROBE step=0 n_cand=10 idx=1 id=5 u=0.5 margin=1e-3 slot=0.1 chosen_tied=0 tied_adjacent_pairs=0\n\
         PROBE step=1 n_cand=12 idx=2 id=6 u=0.25 margin=7.6e-9 slot=0.1 chosen_tied=0 tied_adjacent_pairs=0\n",
    )
    .unwrap();
    assert_eq!(first_divergence(&[5, 6], &[5, 6], Some(&probe)), None);
    let d = first_divergence(&[5, 6], &[5, 7], Some(&probe)).unwrap();
    assert!(
        d.starts_with("step 1: expected Some(6), got Some(7)"),
        "{d}"
    );
    assert!(d.contains("7.600e-9") && d.contains("12 candidates"), "{d}");
    let d = first_divergence(&[5, 6], &[5], None).unwrap();
    assert_eq!(d, "step 1: expected Some(6), got None");
}
