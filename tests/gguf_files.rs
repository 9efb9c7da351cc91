//! The shared models and vocab files parse, and their metadata and tensor tables are what
//! `shared/models/README.md` says; quantized tensors decode to the F32 model's ternary weights;
//! the project's quantizers write the reference's bytes.

use bitnet::gguf::{GgufFile, TensorView};
use bitnet::tensor::{self, blocks::as_bytes, GgmlType};
use bitnet_testdata as testdata;

fn open(rel: &str) -> Option<GgufFile> {
    testdata::path(rel).map(|p| GgufFile::open(p).expect(rel))
}

const LINEARS: [(&str, [usize; 2]); 7] = [
    ("attn_q", [256, 256]),
    ("attn_k", [256, 128]),
    ("attn_v", [256, 128]),
    ("attn_output", [256, 256]),
    ("ffn_gate", [256, 512]),
    ("ffn_up", [256, 512]),
    ("ffn_down", [512, 256]),
];

/// (file stem, n_vocab, token_embd type, linear type, file_type, file size)
const MODELS: [(&str, usize, GgmlType, GgmlType, u32, usize); 6] = [
    (
        "tiny-b158-i2_s",
        128256,
        GgmlType::F16,
        GgmlType::I2_S,
        40,
        73_793_408,
    ),
    (
        "tiny-b158-i2_s-q6k",
        128256,
        GgmlType::Q6_K,
        GgmlType::I2_S,
        40,
        35_060_096,
    ),
    (
        "tiny-spm-f32",
        32000,
        GgmlType::F16,
        GgmlType::F32,
        1,
        21_839_232,
    ),
    (
        "tiny-spm-i2_s",
        32000,
        GgmlType::F16,
        GgmlType::I2_S,
        40,
        17_416_064,
    ),
    (
        "tiny-spm-tq2_0-q6k",
        32000,
        GgmlType::Q6_K,
        GgmlType::TQ2_0,
        37,
        7_760_832,
    ),
    (
        "tiny-spm-tq1_0-q6k",
        32000,
        GgmlType::Q6_K,
        GgmlType::TQ1_0,
        36,
        7_705_536,
    ),
];

#[test]
fn shared_models_match_their_readme() {
    for (stem, n_vocab, embd_ty, lin_ty, ftype, size) in MODELS {
        let Some(g) = open(&format!("models/{stem}.gguf")) else {
            return;
        };
        assert_eq!(g.version(), 3);
        assert_eq!(g.file_size(), size, "{stem}");
        assert_eq!(g.get_str("general.architecture").unwrap(), "bitnet-b1.58");
        assert_eq!(g.get_u32("general.file_type").unwrap(), ftype, "{stem}");
        let a = "bitnet-b1.58";
        for (k, v) in [
            ("vocab_size", n_vocab as u32),
            ("context_length", 512),
            ("embedding_length", 256),
            ("block_count", 2),
            ("feed_forward_length", 512),
            ("rope.dimension_count", 64),
            ("attention.head_count", 4),
            ("attention.head_count_kv", 2),
        ] {
            assert_eq!(g.get_u32(&format!("{a}.{k}")).unwrap(), v, "{stem} {k}");
        }
        assert_eq!(
            g.get_f32(&format!("{a}.attention.layer_norm_rms_epsilon"))
                .unwrap(),
            1e-5
        );
        assert_eq!(g.get_f32(&format!("{a}.rope.freq_base")).unwrap(), 500000.0);
        assert_eq!(
            g.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
            n_vocab
        );
        assert!(g.get("general.alignment").is_none());
        assert_eq!(g.alignment(), 32);

        // Tensor table, in file order, with byte sizes.
        let mut want: Vec<(String, Vec<usize>, GgmlType)> = vec![
            ("token_embd.weight".into(), vec![256, n_vocab], embd_ty),
            ("output_norm.weight".into(), vec![256], GgmlType::F32),
        ];
        for i in 0..2 {
            let norm = |n: &str, d: usize| (format!("blk.{i}.{n}.weight"), vec![d], GgmlType::F32);
            let lin = |j: usize| {
                let (n, d) = LINEARS[j];
                (format!("blk.{i}.{n}.weight"), d.to_vec(), lin_ty)
            };
            want.push(norm("attn_norm", 256));
            want.extend((0..3).map(lin));
            want.push(norm("attn_sub_norm", 256));
            want.push(lin(3));
            want.push(norm("ffn_norm", 256));
            want.extend((4..6).map(lin));
            want.push(norm("ffn_sub_norm", 512));
            want.push(lin(6));
        }
        let got: Vec<_> = g
            .tensors()
            .iter()
            .map(|t| (t.name.clone(), t.dims.clone(), t.ty))
            .collect();
        assert_eq!(got, want, "{stem}");
        for t in g.tensors() {
            assert_eq!(Some(t.size), t.ty.tensor_bytes(&t.dims));
        }
        let attn_q = g.tensor_info("blk.0.attn_q.weight").unwrap();
        let expect_q = match lin_ty {
            GgmlType::F32 => 262144,
            GgmlType::I2_S => 16416,
            GgmlType::TQ2_0 => 16896,
            _ => 13824,
        };
        assert_eq!(attn_q.size, expect_q);
        // The last tensor ends exactly at the end of the file.
        let end = g
            .tensors()
            .iter()
            .map(|t| g.data_offset() + t.offset + t.size)
            .max()
            .unwrap();
        assert_eq!(end, g.file_size(), "{stem}");
    }
}

#[test]
fn shared_vocab_files_parse() {
    for (name, model, n) in [
        ("llama-bpe", "gpt2", 128256),
        ("llama-spm", "llama", 32000),
        ("gpt-2", "gpt2", 50257),
        ("falcon", "gpt2", 65024),
    ] {
        let Some(g) = open(&format!("vocab/ggml-vocab-{name}.gguf")) else {
            return;
        };
        assert_eq!(g.get_str("tokenizer.ggml.model").unwrap(), model, "{name}");
        assert_eq!(
            g.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
            n,
            "{name}"
        );
        assert_eq!(
            g.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
            n,
            "{name}"
        );
        assert!(g.tensors().is_empty());
    }
}

fn dequant(v: &TensorView) -> Vec<f32> {
    tensor::dequantize_tensor(v.ty, v.data, v.ne0(), v.n_elements()).unwrap()
}

/// The per-tensor scale of a ternary F32 tensor (all non-zero |w| are equal).
fn ternary_scale(w: &[f32]) -> f32 {
    let s = w.iter().find(|x| **x != 0.0).unwrap().abs();
    assert!(w.iter().all(|x| *x == 0.0 || x.abs() == s), "not ternary");
    s
}

#[test]
fn quantized_tensors_decode_to_the_f32_ternary_weights() {
    let Some(f32m) = open("models/tiny-spm-f32.gguf") else {
        return;
    };
    for (stem, ty) in [
        ("tiny-spm-i2_s", GgmlType::I2_S),
        ("tiny-spm-tq2_0-q6k", GgmlType::TQ2_0),
        ("tiny-spm-tq1_0-q6k", GgmlType::TQ1_0),
    ] {
        let Some(q) = open(&format!("models/{stem}.gguf")) else {
            return;
        };
        for t in f32m
            .tensors()
            .iter()
            .filter(|t| t.dims.len() == 2 && t.name.starts_with("blk."))
        {
            let w = dequant(&f32m.view(t));
            let qv = q.tensor(&t.name).unwrap();
            assert_eq!(qv.ty, ty);
            let d = dequant(&qv);
            let s = ternary_scale(&w);
            // I2_S keeps the f32 scale exactly; TQ stores it per block as f16.
            let s_q = if ty == GgmlType::I2_S {
                s
            } else {
                half::f16::from_f32(s).to_f32()
            };
            for (i, (a, b)) in w.iter().zip(&d).enumerate() {
                assert_eq!(
                    a.signum() * (*a != 0.0) as i32 as f32 * s_q,
                    *b,
                    "{stem} {} [{i}]",
                    t.name
                );
            }
        }
        // Norms are byte-identical to the float source.
        for t in f32m.tensors().iter().filter(|t| t.dims.len() == 1) {
            assert_eq!(
                f32m.view(t).data,
                q.tensor(&t.name).unwrap().data,
                "{stem} {}",
                t.name
            );
        }
    }
}

#[test]
fn embeddings_agree_within_their_format_error() {
    let Some(f16m) = open("models/tiny-spm-f32.gguf") else {
        return;
    };
    let Some(q6m) = open("models/tiny-spm-tq2_0-q6k.gguf") else {
        return;
    };
    let a = dequant(&f16m.tensor("token_embd.weight").unwrap());
    let b = dequant(&q6m.tensor("token_embd.weight").unwrap());
    assert_eq!(a.len(), b.len());
    // Q6_K: each 16-value sub-block has its own step d*sc; a value is off by at most half a
    // step, or one step where the 6-bit range [-32, 31] clamps the block's extreme.
    let q6 = q6m.tensor("token_embd.weight").unwrap();
    let blocks: &[bitnet::tensor::blocks::BlockQ6K] =
        bitnet::tensor::blocks::cast_slice(q6.data).unwrap();
    let mut worst_in_steps = 0f32;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let blk = &blocks[i / 256];
        let step = (half::f16::from_bits(blk.d).to_f32() * blk.scales[(i % 256) / 16] as f32).abs();
        worst_in_steps = worst_in_steps.max((x - y).abs() / step);
    }
    assert!(
        worst_in_steps <= 1.0,
        "Q6_K embedding off by {worst_in_steps} steps"
    );
    let Some(b158) = open("models/tiny-b158-i2_s.gguf") else {
        return;
    };
    let Some(b158q) = open("models/tiny-b158-i2_s-q6k.gguf") else {
        return;
    };
    let a = dequant(&b158.tensor("token_embd.weight").unwrap());
    let b = dequant(&b158q.tensor("token_embd.weight").unwrap());
    let max = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(max < 0.01, "Q6_K vs F16 embedding max diff {max}");
}

fn same_bytes(a: &[u8], b: &[u8], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let diffs: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert!(
        diffs.is_empty(),
        "{what}: {} bytes differ, first at {:?} of {}",
        diffs.len(),
        &diffs[..diffs.len().min(8)],
        a.len()
    );
}

#[test]
fn project_quantizers_write_the_reference_bytes() {
    let Some(f32m) = open("models/tiny-spm-f32.gguf") else {
        return;
    };
    let Some(i2) = open("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let Some(tq2) = open("models/tiny-spm-tq2_0-q6k.gguf") else {
        return;
    };
    let Some(tq1) = open("models/tiny-spm-tq1_0-q6k.gguf") else {
        return;
    };
    let mut n = 0;
    for t in f32m
        .tensors()
        .iter()
        .filter(|t| t.dims.len() == 2 && t.name.starts_with("blk."))
    {
        let w = dequant(&f32m.view(t));
        // The reference leaves the 28 padding bytes after the I2_S scale uninitialised (they
        // hold heap garbage in the shared files); the project writes zeros. Codes and scale
        // must match exactly.
        let ours = tensor::quantize_i2_s(&w);
        let theirs = i2.tensor(&t.name).unwrap().data;
        assert_eq!(ours.len(), theirs.len());
        let used = w.len() / 4 + 4;
        same_bytes(&ours[..used], &theirs[..used], &format!("I2_S {}", t.name));
        assert!(ours[used..].iter().all(|&b| b == 0));
        same_bytes(
            as_bytes(&tensor::quantize_tq2_0(&w)),
            tq2.tensor(&t.name).unwrap().data,
            &format!("TQ2_0 {}", t.name),
        );
        same_bytes(
            as_bytes(&tensor::quantize_tq1_0(&w)),
            tq1.tensor(&t.name).unwrap().data,
            &format!("TQ1_0 {}", t.name),
        );
        n += 1;
    }
    assert_eq!(n, 14);
}
