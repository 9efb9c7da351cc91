//! Writes `bitnet-b1.58` models with seeded random weights, the way `shared/bench/REFERENCE.md`
//! describes the reference's benchmark model: token embedding ~ N(0, 0.05²), norm weights
//! 1 + N(0, 0.1²) in F32, every linear weight already ternary (`s·t`, t uniform in {-1,0,+1},
//! one scale s ~ U(0.012, 0.025) per tensor), the tokenizer copied from a vocab GGUF. The files
//! use the metadata keys and value types the reference's loader reads, so bitnet.cpp loads
//! them too and both can be measured on the same file.

mod rng;

use bitnet::gguf::{GgufFile, GgufWriter, Value};
use bitnet::tensor::{self, blocks::as_bytes, GgmlType};
use bitnet::{Error, Result};
use rayon::prelude::*;
use rng::Rng;
use std::path::Path;

/// Hyper-parameters of a generated model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub n_ctx: usize,
    pub rope_base: f32,
}

impl Shape {
    /// The shape of the shared tiny models.
    pub const TINY: Shape = Shape {
        name: "tiny",
        n_embd: 256,
        n_ff: 512,
        n_layer: 2,
        n_head: 4,
        n_head_kv: 2,
        n_ctx: 512,
        rope_base: 500000.0,
    };
    /// BitNet-b1.58-2B-4T.
    pub const B2B4T: Shape = Shape {
        name: "2b4t",
        n_embd: 2560,
        n_ff: 6912,
        n_layer: 30,
        n_head: 20,
        n_head_kv: 5,
        n_ctx: 4096,
        rope_base: 500000.0,
    };

    pub fn by_name(name: &str) -> Option<Shape> {
        [Shape::TINY, Shape::B2B4T]
            .into_iter()
            .find(|s| s.name == name)
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Params {
    pub shape: Shape,
    /// Type of the 7 linear weights per layer: I2_S, TQ2_0 or TQ1_0.
    pub weights: GgmlType,
    /// Type of the tied token embedding / lm_head: F16, Q6_K or Q8_0.
    pub embedding: GgmlType,
    pub seed: u64,
    /// A GGUF file whose `tokenizer.*` keys are copied (e.g. `ggml-vocab-llama-bpe.gguf`).
    pub vocab: std::path::PathBuf,
}

/// `general.file_type` the reference's quantizer writes for each weight type.
fn file_type(weights: GgmlType) -> u32 {
    match weights {
        GgmlType::I2_S => 40,
        GgmlType::TQ2_0 => 37,
        GgmlType::TQ1_0 => 36,
        _ => 0,
    }
}

/// Writes the model to `out`. Returns the file size.
pub fn generate(p: &Params, out: &Path) -> Result<u64> {
    if !p.weights.is_ternary() {
        return Err(Error::invalid_argument(format!(
            "linear weights must be I2_S, TQ2_0 or TQ1_0, not {}",
            p.weights
        )));
    }
    if !matches!(p.embedding, GgmlType::F16 | GgmlType::Q6_K | GgmlType::Q8_0) {
        return Err(Error::invalid_argument(format!(
            "embedding must be F16, Q6_K or Q8_0, not {}",
            p.embedding
        )));
    }
    let vocab = GgufFile::open(&p.vocab)?;
    let n_vocab = vocab.get_str_array("tokenizer.ggml.tokens")?.len();
    let s = p.shape;
    let head_dim = s.n_embd / s.n_head;

    let mut w = GgufWriter::new();
    let a = "bitnet-b1.58";
    w.set_str("general.architecture", a);
    w.set_str("general.name", &format!("bitnet-random-{}", s.name));
    w.set_u32("general.file_type", file_type(p.weights));
    w.set_u32(&format!("{a}.vocab_size"), n_vocab as u32);
    w.set_u32(&format!("{a}.context_length"), s.n_ctx as u32);
    w.set_u32(&format!("{a}.embedding_length"), s.n_embd as u32);
    w.set_u32(&format!("{a}.block_count"), s.n_layer as u32);
    w.set_u32(&format!("{a}.feed_forward_length"), s.n_ff as u32);
    w.set_u32(&format!("{a}.rope.dimension_count"), head_dim as u32);
    w.set_u32(&format!("{a}.attention.head_count"), s.n_head as u32);
    w.set_u32(&format!("{a}.attention.head_count_kv"), s.n_head_kv as u32);
    w.set_f32(&format!("{a}.attention.layer_norm_rms_epsilon"), 1e-5);
    w.set_f32(&format!("{a}.rope.freq_base"), s.rope_base);
    for (k, v) in vocab
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
    {
        w.set(k.clone(), v.clone());
    }
    if vocab.get("tokenizer.ggml.add_bos_token").is_none() {
        // As the 2B-4T converter writes it (and the shared tiny models carry it).
        w.set("tokenizer.ggml.add_bos_token", Value::Bool(true));
    }
    w.set_u32("general.quantization_version", 2);

    // Tensors in the reference's file order; each draws from its own stream of the seed.
    let mut stream = 0u64;
    let mut next_stream = || {
        stream += 1;
        stream
    };
    let seed = p.seed;
    let (n_embd, n_ff) = (s.n_embd, s.n_ff);
    let embd_ty = p.embedding;
    let st = next_stream();
    w.add_tensor_lazy(
        "token_embd.weight",
        &[n_embd, n_vocab],
        embd_ty,
        move || Ok(embedding(seed, st, n_embd * n_vocab, embd_ty)),
    )?;
    let norm = |w: &mut GgufWriter, name: &str, n: usize, st: u64| {
        w.add_tensor_lazy(name, &[n], GgmlType::F32, move || {
            Ok(norm_weights(seed, st, n))
        })
    };
    norm(&mut w, "output_norm.weight", n_embd, next_stream())?;
    let q_dim = s.n_head * head_dim;
    let kv_dim = s.n_head_kv * head_dim;
    for l in 0..s.n_layer {
        let lin = |w: &mut GgufWriter, name: &str, k: usize, m: usize, st: u64| {
            let ty = p.weights;
            w.add_tensor_lazy(&format!("blk.{l}.{name}.weight"), &[k, m], ty, move || {
                Ok(ternary(seed, st, k * m, ty))
            })
        };
        norm(
            &mut w,
            &format!("blk.{l}.attn_norm.weight"),
            n_embd,
            next_stream(),
        )?;
        lin(&mut w, "attn_q", n_embd, q_dim, next_stream())?;
        lin(&mut w, "attn_k", n_embd, kv_dim, next_stream())?;
        lin(&mut w, "attn_v", n_embd, kv_dim, next_stream())?;
        norm(
            &mut w,
            &format!("blk.{l}.attn_sub_norm.weight"),
            q_dim,
            next_stream(),
        )?;
        lin(&mut w, "attn_output", q_dim, n_embd, next_stream())?;
        norm(
            &mut w,
            &format!("blk.{l}.ffn_norm.weight"),
            n_embd,
            next_stream(),
        )?;
        lin(&mut w, "ffn_gate", n_embd, n_ff, next_stream())?;
        lin(&mut w, "ffn_up", n_embd, n_ff, next_stream())?;
        norm(
            &mut w,
            &format!("blk.{l}.ffn_sub_norm.weight"),
            n_ff,
            next_stream(),
        )?;
        lin(&mut w, "ffn_down", n_ff, n_embd, next_stream())?;
    }

    let tmp = out.with_extension("gguf.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
    let mut buf = std::io::BufWriter::with_capacity(8 << 20, file);
    let n = w.write(&mut buf)?;
    use std::io::Write;
    buf.flush().map_err(|e| Error::io(tmp.display(), e))?;
    drop(buf);
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out.display(), e))?;
    Ok(n)
}

/// Values produced in parallel chunks, each chunk from its own sub-stream, so the result does
/// not depend on the thread count.
fn par_values(seed: u64, stream: u64, n: usize, f: impl Fn(&mut Rng) -> f32 + Sync) -> Vec<f32> {
    const CHUNK: usize = 1 << 16;
    let mut v = vec![0f32; n];
    v.par_chunks_mut(CHUNK).enumerate().for_each(|(i, c)| {
        let mut r = Rng::new(seed, (stream << 24) + i as u64);
        c.iter_mut().for_each(|x| *x = f(&mut r));
    });
    v
}

fn embedding(seed: u64, stream: u64, n: usize, ty: GgmlType) -> Vec<u8> {
    let v = par_values(seed, stream, n, |r| (0.05 * r.normal()) as f32);
    match ty {
        GgmlType::Q6_K => as_bytes(&tensor::quantize_q6_k(&v)).to_vec(),
        GgmlType::Q8_0 => as_bytes(&tensor::quantize_q8_0(&v)).to_vec(),
        _ => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
    }
}

fn norm_weights(seed: u64, stream: u64, n: usize) -> Vec<u8> {
    let v = par_values(seed, stream, n, |r| (1.0 + 0.1 * r.normal()) as f32);
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn ternary(seed: u64, stream: u64, n: usize, ty: GgmlType) -> Vec<u8> {
    let scale = (0.012 + 0.013 * Rng::new(seed, stream).uniform()) as f32;
    let v = par_values(seed, stream + (1 << 40), n, |r| r.trit() as f32 * scale);
    match ty {
        GgmlType::I2_S => tensor::quantize_i2_s(&v),
        GgmlType::TQ2_0 => as_bytes(&tensor::quantize_tq2_0(&v)).to_vec(),
        _ => as_bytes(&tensor::quantize_tq1_0(&v)).to_vec(),
    }
}
