//! `ModelParams::head_q8_0`: the F16 lm_head re-quantized to Q8_0 at load. Not bit-exact by
//! design; this pins how far it moves the reference's step-0 logits (short_en, full vector).

use bitnet::{Batch, Context, ContextParams, Model, ModelParams};
use std::sync::Arc;

fn read_logits(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[test]
fn q8_0_head_stays_close_to_the_reference_logits() {
    for m in ["tiny-b158-i2_s", "tiny-spm-i2_s", "tiny-spm-f32"] {
        let Some(path) = bitnet_testdata::path(&format!("models/{m}.gguf")) else {
            return;
        };
        let Some(dump) = bitnet_testdata::path(&format!("golden/{m}/short_en.logits.f32")) else {
            return;
        };
        let golden = read_logits(&dump);
        let model = Arc::new(Model::load_with(&path, ModelParams { head_q8_0: true }).unwrap());
        let prompt = model
            .vocab()
            .tokenize(
                std::fs::read(dump.with_file_name("short_en.txt")).unwrap(),
                true,
                false,
            )
            .unwrap();
        let params = ContextParams {
            n_ctx: 512,
            n_threads: 1,
            n_threads_batch: 1,
            ..Default::default()
        };
        let mut ctx = Context::new(model, params).unwrap();
        ctx.decode(&Batch::get_one(&prompt)).unwrap();
        let ours = ctx.logits_ith(-1).unwrap();
        assert_eq!(ours.len(), golden.len());
        let max = ours
            .iter()
            .zip(&golden)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let dot: f64 = ours
            .iter()
            .zip(&golden)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum();
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (norm(ours) * norm(&golden));
        eprintln!("{m}: head_q8_0 short_en step-0 logits max |diff| {max:.4}, cosine {cos:.6}");
        assert!(max < 0.05, "{m}: max |diff| {max}");
        assert!(cos > 0.9995, "{m}: cosine {cos}");
        assert_eq!(
            bitnet::sampling::argmax(ours),
            bitnet::sampling::argmax(&golden),
            "{m}: argmax"
        );
    }
}
