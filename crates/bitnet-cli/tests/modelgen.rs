//! The model generator writes files with the reference's keys, types and tensor layout.

use bitnet::gguf::GgufFile;
use bitnet::tensor::GgmlType;
use bitnet_cli::modelgen::{generate, Params, Shape};
use bitnet_testdata as testdata;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bitnet-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn generated_tiny_models_have_the_reference_layout() {
    let Some(vocab) = testdata::path("vocab/ggml-vocab-llama-bpe.gguf") else {
        return;
    };
    let Some(reference) = testdata::path("models/tiny-b158-i2_s.gguf") else {
        return;
    };
    let reference = GgufFile::open(reference).unwrap();
    for (weights, embd) in [
        (GgmlType::I2_S, GgmlType::F16),
        (GgmlType::I2_S, GgmlType::Q6_K),
        (GgmlType::TQ2_0, GgmlType::F16),
        (GgmlType::TQ1_0, GgmlType::Q8_0),
    ] {
        let out = tmp(&format!("tiny-{weights}-{embd}.gguf"));
        let p = Params {
            shape: Shape::TINY,
            weights,
            embedding: embd,
            seed: 7,
            vocab: vocab.clone(),
        };
        generate(&p, &out).unwrap();
        let g = GgufFile::open(&out).unwrap();
        // Same keys with the same value types as the reference's own tiny model.
        let keys = |f: &GgufFile| -> Vec<(String, String)> {
            f.metadata()
                .iter()
                .map(|(k, v)| (k.clone(), format!("{:?}", v.value_type())))
                .collect()
        };
        assert_eq!(keys(&g), keys(&reference));
        for (k, v) in reference.metadata() {
            if !matches!(k.as_str(), "general.name" | "general.file_type") {
                assert_eq!(g.get(k), Some(v), "{k}");
            }
        }
        let ftype = match weights {
            GgmlType::I2_S => 40,
            GgmlType::TQ2_0 => 37,
            _ => 36,
        };
        assert_eq!(g.get_u32("general.file_type").unwrap(), ftype);
        let names: Vec<_> = g.tensors().iter().map(|t| (&t.name, &t.dims)).collect();
        let ref_names: Vec<_> = reference
            .tensors()
            .iter()
            .map(|t| (&t.name, &t.dims))
            .collect();
        assert_eq!(names, ref_names);
        for t in g.tensors() {
            let want = match t.dims.len() {
                1 => GgmlType::F32,
                _ if t.name == "token_embd.weight" => embd,
                _ => weights,
            };
            assert_eq!(t.ty, want, "{}", t.name);
        }
        // Linear weights are ternary with one scale per tensor.
        let q = g.tensor("blk.1.ffn_down.weight").unwrap();
        let w = bitnet::tensor::dequantize_tensor(q.ty, q.data, q.ne0(), q.n_elements()).unwrap();
        let s = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!((0.0119..0.0251).contains(&s), "scale {s}");
        assert!(w.iter().all(|x| *x == 0.0 || x.abs() == s));
        let zeros = w.iter().filter(|x| **x == 0.0).count() as f64 / w.len() as f64;
        assert!((0.30..0.37).contains(&zeros), "zero fraction {zeros}");
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn generation_is_deterministic() {
    let Some(vocab) = testdata::path("vocab/ggml-vocab-llama-spm.gguf") else {
        return;
    };
    let p = Params {
        shape: Shape::TINY,
        weights: GgmlType::TQ2_0,
        embedding: GgmlType::F16,
        seed: 42,
        vocab,
    };
    let (a, b) = (tmp("det-a.gguf"), tmp("det-b.gguf"));
    generate(&p, &a).unwrap();
    generate(&p, &b).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let c = tmp("det-c.gguf");
    generate(&Params { seed: 43, ..p }, &c).unwrap();
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&c).unwrap());
    for f in [a, b, c] {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn the_2b4t_shape_is_bitnet_2b_4t() {
    let s = Shape::B2B4T;
    assert_eq!(
        (s.n_embd, s.n_ff, s.n_layer, s.n_head, s.n_head_kv, s.n_ctx),
        (2560, 6912, 30, 20, 5, 4096)
    );
    assert_eq!(s.rope_base, 500000.0);
}
