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

/// `bitnet_model_params.head_q8_0` reaches the same option from C: the logits of a C-loaded
/// model equal the Rust `ModelParams { head_q8_0: true }` ones bit for bit (and differ from the
/// exact head's).
#[test]
fn head_q8_0_is_reachable_from_c() {
    use bitnet::ffi::batch::bitnet_batch_get_one;
    use bitnet::ffi::context::{
        bitnet_context_default_params, bitnet_free, bitnet_init_from_model,
    };
    use bitnet::ffi::decode::{bitnet_decode, bitnet_get_logits_ith};
    use bitnet::ffi::model::{
        bitnet_model_default_params, bitnet_model_free, bitnet_model_load_from_file,
    };
    let Some(path) = bitnet_testdata::path("models/tiny-b158-i2_s.gguf") else {
        return;
    };
    let prompt = vec![128000, 791, 4062, 14198];
    let mut c_prompt = prompt.clone();
    let rust = |head_q8_0: bool| {
        let m = Model::load_with(&path, ModelParams { head_q8_0 }).unwrap();
        let mut ctx = Context::new(
            std::sync::Arc::new(m),
            ContextParams {
                n_threads: 1,
                n_threads_batch: 1,
                ..Default::default()
            },
        )
        .unwrap();
        ctx.decode(&Batch::get_one(&prompt)).unwrap();
        ctx.logits_ith(-1).unwrap().to_vec()
    };
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut mp = bitnet_model_default_params();
    assert!(!mp.head_q8_0);
    mp.head_q8_0 = true;
    let model = bitnet_model_load_from_file(cpath.as_ptr(), mp);
    assert!(!model.is_null());
    let mut cp = bitnet_context_default_params();
    cp.n_threads = 1;
    cp.n_threads_batch = 1;
    let ctx = bitnet_init_from_model(model, cp);
    assert_eq!(
        bitnet_decode(ctx, bitnet_batch_get_one(c_prompt.as_mut_ptr(), 4)),
        0
    );
    let row = bitnet_get_logits_ith(ctx, -1);
    assert!(!row.is_null());
    let want = rust(true);
    // SAFETY: a logits row holds n_vocab floats and stays valid until the next decode.
    let got = unsafe { std::slice::from_raw_parts(row, want.len()) }.to_vec();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&want));
    assert_ne!(bits(&got), bits(&rust(false)));
    bitnet_free(ctx);
    bitnet_model_free(model);
}
