//! `bitnet::quantize::quantize_model` (`bitnet_model_quantize`): the tensor types llama.cpp's
//! rules give, tensors byte-identical to this library's quantizers applied directly, lossless
//! round trips of ternary files through F32, the options, and bad input (an error, no file).

use bitnet::gguf::GgufFile;
use bitnet::quantize::{ftype, quantize_model, QuantizeParams};
use bitnet::tensor::{self, blocks::as_bytes, GgmlType};
use bitnet::{Batch, Context, ContextParams, ErrorKind, Model};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn model(name: &str) -> Option<PathBuf> {
    bitnet_testdata::path(&format!("models/{name}.gguf"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quantize");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// The logits of every position of a short prompt.
fn logits(path: &Path) -> Vec<f32> {
    let m = Arc::new(Model::load(path).unwrap());
    let prompt = m
        .vocab()
        .tokenize("The quick brown fox", true, false)
        .unwrap();
    let params = ContextParams {
        n_ctx: 64,
        n_threads: 2,
        n_threads_batch: 2,
        ..Default::default()
    };
    let mut ctx = Context::new(m, params).unwrap();
    let mut batch = Batch::new(prompt.len());
    for (i, &t) in prompt.iter().enumerate() {
        batch.push(t, i as i32, &[0], true);
    }
    ctx.decode(&batch).unwrap();
    let mut out = Vec::new();
    for i in 0..prompt.len() as i32 {
        out.extend_from_slice(ctx.logits_ith(i).unwrap());
    }
    out
}

fn types(path: &Path) -> Vec<(String, GgmlType)> {
    let g = GgufFile::open(path).unwrap();
    g.tensors().iter().map(|t| (t.name.clone(), t.ty)).collect()
}

fn params(f: u32) -> QuantizeParams {
    QuantizeParams {
        ftype: f,
        nthread: 2,
        ..Default::default()
    }
}

/// F32 linears (and the F16 embedding) to Q8_0 and Q6_K: every converted tensor equals the
/// quantizer applied to the dequantized source, 1-D tensors are copied, metadata is copied with
/// general.file_type updated, and the result runs.
#[test]
fn float_model_to_q8_0_and_q6_k_matches_the_quantizers() {
    let Some(src) = model("tiny-spm-f32") else {
        return;
    };
    let g = GgufFile::open(&src).unwrap();
    for (f, ty) in [
        (ftype::MOSTLY_Q8_0, GgmlType::Q8_0),
        (ftype::MOSTLY_Q6_K, GgmlType::Q6_K),
    ] {
        let out = tmp(&format!("spm-{ty}.gguf"));
        let s = quantize_model(&src, &out, &params(f)).unwrap();
        assert_eq!(s.file_bytes, Some(std::fs::metadata(&out).unwrap().len()));
        let q = GgufFile::open(&out).unwrap();
        assert_eq!(q.get_u32("general.file_type").unwrap(), f);
        assert_eq!(q.get_u32("general.quantization_version").unwrap(), 2);
        assert_eq!(
            q.get_str_array("tokenizer.ggml.tokens").unwrap(),
            g.get_str_array("tokenizer.ggml.tokens").unwrap()
        );
        assert_eq!(q.tensors().len(), g.tensors().len());
        for t in g.tensors() {
            let n = t.n_elements();
            let qt = q.tensor(&t.name).unwrap();
            if t.dims.len() == 1 {
                assert_eq!(qt.ty, t.ty, "{}", t.name);
                assert_eq!(qt.data, g.view(t).data, "{}", t.name);
                continue;
            }
            // The tied embedding: Q8_0 stays Q8_0, anything else becomes Q6_K (llama.cpp).
            assert_eq!(qt.ty, ty, "{}", t.name);
            let x = tensor::dequantize_tensor(t.ty, g.view(t).data, t.dims[0], n).unwrap();
            let want: Vec<u8> = x
                .chunks(t.dims[0])
                .flat_map(|r| match ty {
                    GgmlType::Q8_0 => as_bytes(&tensor::quantize_q8_0(r)).to_vec(),
                    _ => as_bytes(&tensor::quantize_q6_k(r)).to_vec(),
                })
                .collect();
            assert!(
                qt.data == &want[..],
                "{} differs from {ty} of the source",
                t.name
            );
        }
        let l = logits(&out);
        assert!(l.iter().all(|x| x.is_finite()));
    }
}

/// Ternary files dequantized to F32 and quantized back to their own type give the original
/// logits bit for bit (TQ2_0, TQ1_0 and I2_S); requantizing needs allow_requantize.
#[test]
fn ternary_round_trips_through_f32_are_lossless() {
    for (name, f, embd) in [
        ("tiny-spm-tq2_0-q6k", ftype::MOSTLY_TQ2_0, GgmlType::Q6_K),
        ("tiny-spm-tq1_0-q6k", ftype::MOSTLY_TQ1_0, GgmlType::Q6_K),
        ("tiny-spm-i2_s", ftype::MOSTLY_I2_S, GgmlType::F16),
    ] {
        let Some(src) = model(name) else {
            return;
        };
        let f32_path = tmp(&format!("{name}-f32.gguf"));
        let mut p = params(ftype::ALL_F32);
        p.token_embedding_type = Some(embd); // the embedding as it is (same type: copied)
        let e = quantize_model(&src, &f32_path, &p).unwrap_err();
        assert!(e.message().contains("allow_requantize"), "{e}");
        assert!(!f32_path.exists());
        p.allow_requantize = true;
        quantize_model(&src, &f32_path, &p).unwrap();
        assert!(types(&f32_path)
            .iter()
            .all(|(n, t)| *t == GgmlType::F32 || n == "token_embd.weight"));

        let back = tmp(&format!("{name}-back.gguf"));
        let mut p = params(f);
        p.token_embedding_type = Some(embd);
        quantize_model(&f32_path, &back, &p).unwrap();
        assert_eq!(types(&back), {
            let mut t = types(&src);
            t.sort_by(|a, b| {
                let layer = |n: &str| {
                    n.strip_prefix("blk.")
                        .and_then(|r| r.split('.').next()?.parse::<i64>().ok())
                        .unwrap_or(-1)
                };
                (layer(&a.0), &a.0).cmp(&(layer(&b.0), &b.0))
            });
            t
        });
        assert!(logits(&back) == logits(&src), "{name}: logits differ");
    }
}

/// llama.cpp's rules for the tied embedding: F16 stays F16 for the fork's I2_S file type,
/// becomes Q6_K for TQ2_0; an explicit token_embedding_type wins; `pure` has no rules.
#[test]
fn embedding_type_rules() {
    let Some(src) = model("tiny-spm-f32") else {
        return;
    };
    let embd = |p: &QuantizeParams| {
        let s = quantize_model(&src, tmp("rules.gguf"), p).unwrap();
        s.tensors
            .iter()
            .find(|t| t.name == "token_embd.weight")
            .unwrap()
            .to
    };
    let mut p = params(ftype::MOSTLY_I2_S);
    p.dry_run = true;
    assert_eq!(embd(&p), GgmlType::F16);
    p.ftype = ftype::MOSTLY_TQ2_0;
    assert_eq!(embd(&p), GgmlType::Q6_K);
    p.pure = true;
    assert_eq!(embd(&p), GgmlType::TQ2_0);
    p.pure = false;
    p.output_tensor_type = Some(GgmlType::Q8_0);
    assert_eq!(embd(&p), GgmlType::Q8_0);
    p.token_embedding_type = Some(GgmlType::F32);
    assert_eq!(embd(&p), GgmlType::F32);
    p.ftype = ftype::MOSTLY_F16;
    p.token_embedding_type = None;
    p.output_tensor_type = None;
    assert_eq!(embd(&p), GgmlType::F16);
    assert!(!tmp("rules.gguf").exists(), "a dry run writes nothing");
}

/// only_copy, prune_layers and kv_overrides.
#[test]
fn copy_prune_and_overrides() {
    let Some(src) = model("tiny-spm-i2_s") else {
        return;
    };
    let out = tmp("copy.gguf");
    let mut p = params(ftype::MOSTLY_Q8_0);
    p.only_copy = true;
    p.kv_overrides = vec![
        (
            "general.name".into(),
            bitnet::gguf::Value::String("renamed".into()),
        ),
        (
            "bitnet-b1.58.context_length".into(),
            bitnet::gguf::Value::U32(128),
        ),
    ];
    quantize_model(&src, &out, &p).unwrap();
    let (g, q) = (GgufFile::open(&src).unwrap(), GgufFile::open(&out).unwrap());
    assert_eq!(q.get_u32("general.file_type").unwrap(), ftype::MOSTLY_I2_S);
    assert_eq!(q.get_str("general.name").unwrap(), "renamed");
    for t in g.tensors() {
        assert_eq!(q.tensor(&t.name).unwrap().data, g.view(t).data);
    }
    let m = Model::load(&out).unwrap();
    assert_eq!(m.config().n_ctx_train, 128);

    let pruned = tmp("pruned.gguf");
    let mut p = params(ftype::MOSTLY_I2_S);
    p.prune_layers = vec![0];
    quantize_model(&src, &pruned, &p).unwrap();
    let q = GgufFile::open(&pruned).unwrap();
    assert_eq!(q.get_u32("bitnet-b1.58.block_count").unwrap(), 1);
    assert_eq!(
        q.tensor("blk.0.attn_q.weight").unwrap().data,
        g.tensor("blk.1.attn_q.weight").unwrap().data
    );
    assert!(q.tensor("blk.1.attn_q.weight").is_none());
    assert_eq!(Model::load(&pruned).unwrap().config().n_layer, 1);
    p.prune_layers = vec![0, 1];
    assert!(quantize_model(&src, &pruned, &p).is_err());
    p.prune_layers = vec![7];
    assert!(quantize_model(&src, &pruned, &p).is_err());
}

/// Bad input: an error naming the problem, and no output file.
#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let out = tmp("never.gguf");
    let e = quantize_model("/nonexistent/model.gguf", &out, &params(7)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    let garbage = tmp("garbage.gguf");
    std::fs::write(&garbage, b"GGUF\x03\0\0\0garbage").unwrap();
    assert!(quantize_model(&garbage, &out, &params(7)).is_err());
    assert!(!out.exists());
    let Some(src) = model("tiny-spm-f32") else {
        return;
    };
    for f in [15, 2, 32, 1000] {
        let e = quantize_model(&src, &out, &params(f)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        assert!(e.message().contains(&format!("file type {f}")), "{e}");
    }
    let mut p = params(7);
    p.output_tensor_type = Some(GgmlType::Q8_K);
    assert!(quantize_model(&src, &out, &p).is_err());
    assert!(!out.exists());
    let e = quantize_model(&src, "/nonexistent/dir/out.gguf", &params(7)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
}
