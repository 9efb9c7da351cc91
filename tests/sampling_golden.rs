//! End-to-end golden sampling test: reproduce `golden/sampling/<model>.<prompt>.<letter>.trace`
//! token for token (chains a..h of `golden/sampling/chains.md`, 4 model/prompt pairs, 48 steps).
//!
//! Everything except running the model is here and tested now: trace/probe parsing, building the
//! eight chains, the replay loop (prompt tokens never accepted), and the divergence report.
//! The model-driving part is ONE function, [`run_reference_decode`], which the lead wires to the
//! model/context API once it lands (see the WIRE-UP note in it). Until then the golden test
//! reports "not wired" and returns.

use std::path::Path;

use bitnet::sampling::golden::{
    golden_chain, golden_model_info, parse_probe, parse_trace, replay, ProbeStep, GOLDEN_CHAINS,
    GOLDEN_RUNS,
};
use bitnet::sampling::Chain;
use bitnet::testdata;

const STEPS: usize = 48;

/// WIRE-UP (lead): decode like the reference tracer and sample with `chain`, returning the 48
/// sampled tokens, or `Ok(None)` while the model API does not exist yet.
///
/// Reference run settings (chains.md): n_ctx 512, n_batch = n_ubatch 512, 1 thread; step 0
/// samples from the last-position logits of one decode of the whole prompt; step n >= 1 samples
/// after decoding the step n-1 token alone (position prompt.len() + n - 1); no stop at EOS; the
/// chain is created before the prompt is decoded, never reset, and never sees prompt tokens.
///
/// Intended body (names as assumed in the brief; adapt when integrating):
/// ```ignore
/// let model = bitnet::Model::load(model_path)?;
/// let mut ctx = bitnet::Context::new(
///     &model,
///     bitnet::ContextParams { n_ctx: 512, n_batch: 512, n_threads: 1, ..Default::default() },
/// )?;
/// ctx.decode(&bitnet::Batch::from_tokens(prompt, 0))?;
/// let mut pos = prompt.len() as i32;
/// replay(chain, STEPS, |step, sampled| {
///     if step > 0 {
///         ctx.decode(&bitnet::Batch::from_tokens(&sampled[step - 1..step], pos))?;
///         pos += 1;
///     }
///     Ok(ctx.logits_ith(-1)?.to_vec())
/// })
/// .map(Some)
/// ```
fn run_reference_decode(
    model_path: &Path,
    prompt: &[i32],
    chain: &mut Chain,
) -> bitnet::Result<Option<Vec<i32>>> {
    let _ = (model_path, prompt, chain);
    Ok(None)
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
    for (model, prompt) in GOLDEN_RUNS {
        let Some(model_path) = testdata::path(&format!("models/{model}.gguf")) else {
            return;
        };
        let info = golden_model_info(model).expect("known golden model");
        for (letter, _) in GOLDEN_CHAINS {
            let trace_path = dir.join(format!("{model}.{prompt}.{letter}.trace"));
            let trace = parse_trace(&std::fs::read_to_string(&trace_path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", trace_path.display()));
            let probe =
                std::fs::read_to_string(dir.join(format!("probe/{model}.{prompt}.{letter}.probe")))
                    .ok()
                    .map(|t| parse_probe(&t).unwrap());
            let mut chain = golden_chain(letter, &info).unwrap();
            let got = match run_reference_decode(&model_path, &trace.prompt, &mut chain) {
                Ok(Some(tokens)) => tokens,
                Ok(None) => {
                    eprintln!(
                        "NOT WIRED: tests/sampling_golden.rs run_reference_decode needs the \
                         model/context API; golden sampling traces not checked"
                    );
                    return;
                }
                Err(e) => panic!("{model}.{prompt}.{letter}: {e}"),
            };
            checked += 1;
            if let Some(d) = first_divergence(&trace.tokens, &got, probe.as_deref()) {
                failures.push(format!("{model}.{prompt}.{letter}: {d}"));
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
