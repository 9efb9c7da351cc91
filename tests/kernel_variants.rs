//! Every kernel variant this machine can run, chosen per context (`ContextParams::kernel`) in one
//! process, decodes the same prompts to the same logits bit for bit: a multi-token prompt (the
//! prompt-shaped matmuls and attention), then single tokens (the decode-shaped ones), on every
//! shared tiny model (all weight types: I2_S, TQ1_0, TQ2_0, F32, Q6_K and F16 embeddings).

mod common;

use bitnet::kernels::{self, Kind};
use bitnet::{Batch, Context, ContextParams, ErrorKind, Model};
use std::sync::Arc;

/// The prompt, then the greedy continuation of `steps` tokens, with every logits row of the
/// prompt and of each step (as bits).
fn run(model: &Arc<Model>, kind: Kind, prompt: &[i32], steps: usize) -> Vec<Vec<u32>> {
    let params = ContextParams {
        kernel: Some(kind),
        ..common::tracer_params()
    };
    let mut ctx = Context::new(model.clone(), params).unwrap();
    assert_eq!(ctx.kernels().kind, kind);
    assert_eq!(ctx.params().kernel, Some(kind));
    let mut batch = Batch::new(prompt.len());
    for (i, &t) in prompt.iter().enumerate() {
        batch.push(t, i as i32, &[0], true);
    }
    ctx.decode(&batch).unwrap();
    let bits = |l: &[f32]| l.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let mut rows: Vec<Vec<u32>> = (0..prompt.len() as i32)
        .map(|i| bits(ctx.logits_ith(i).unwrap()))
        .collect();
    for _ in 0..steps {
        let last = ctx.logits_ith(-1).unwrap();
        let next = bitnet::sampling::argmax(last) as i32;
        ctx.decode(&Batch::get_one(&[next])).unwrap();
        rows.push(bits(ctx.logits_ith(-1).unwrap()));
    }
    rows
}

#[test]
fn every_kernel_variant_gives_the_same_logits_per_context() {
    let available: Vec<Kind> = kernels::available().iter().map(|t| t.kind).collect();
    assert!(available.contains(&Kind::Scalar) && available.contains(&Kind::C));
    eprintln!(
        "variants: {}",
        available
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut checked = 0;
    for stem in bitnet_testdata::MODELS {
        let Some(model) = common::load(stem) else {
            continue;
        };
        let prompt = model
            .vocab()
            .tokenize("The quick brown fox jumps over the lazy dog.", true, false)
            .unwrap();
        let want = run(&model, Kind::Scalar, &prompt, 6);
        for &kind in &available[1..] {
            let got = run(&model, kind, &prompt, 6);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g == w,
                    "{stem}: kernel {} differs from scalar in logits row {i}",
                    kind.name()
                );
            }
            checked += 1;
        }
    }
    eprintln!("{checked} (model, variant) pairs equal to scalar");
}

#[test]
fn an_unavailable_kernel_is_an_error_at_context_creation() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    for kind in Kind::ALL {
        let params = ContextParams {
            kernel: Some(kind),
            ..common::tracer_params()
        };
        match kernels::table(kind) {
            Some(_) => assert!(Context::new(model.clone(), params).is_ok()),
            None => {
                let e = Context::new(model.clone(), params).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
                assert!(e.message().contains(kind.name()), "{e}");
            }
        }
    }
}
