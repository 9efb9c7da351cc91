//! `bitnet make-model`: writes a random-weight BitNet b1.58 model (see `modelgen`).

use super::args::Args;
use crate::modelgen::{self, Params, Shape};
use bitnet::tensor::GgmlType;
use bitnet::{Error, Result};

pub const HELP: &str =
    "usage: bitnet make-model --shape tiny|2b4t --weights i2_s|tq2_0|tq1_0 --out FILE
                         [--embd f16|q6_k|q8_0] [--seed N] [--vocab VOCAB.gguf]

Writes a bitnet-b1.58 GGUF with seeded random weights: linear weights ternary with one scale per
tensor, embedding ~ N(0, 0.05^2), norms 1 + N(0, 0.1^2), tokenizer copied from VOCAB (default
$BITNET_TEST_DATA/vocab/ggml-vocab-llama-bpe.gguf, i.e. ../shared/vocab/...). Shapes:
  tiny  n_embd 256, n_ff 512, 2 layers, 4 heads (2 KV), ctx 512 (the shared tiny models' shape)
  2b4t  n_embd 2560, n_ff 6912, 30 layers, 20 heads (5 KV), ctx 4096: BitNet-b1.58-2B-4T (~1.2 GB)
The file also loads in bitnet.cpp.";

pub fn parse_weight_type(s: &str) -> Result<GgmlType> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "i2_s" => GgmlType::I2_S,
        "tq2_0" => GgmlType::TQ2_0,
        "tq1_0" => GgmlType::TQ1_0,
        "f16" => GgmlType::F16,
        "q6_k" => GgmlType::Q6_K,
        "q8_0" => GgmlType::Q8_0,
        _ => return Err(Error::invalid_argument(format!("unknown type {s:?}"))),
    })
}

/// The vocabulary generated models take by default: the shared data's LLaMA-3 BPE vocab
/// (`BITNET_TEST_DATA`, else `../shared` beside the repository).
pub fn default_vocab() -> std::path::PathBuf {
    let root = match std::env::var_os("BITNET_TEST_DATA") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    root.join("vocab/ggml-vocab-llama-bpe.gguf")
}

pub fn run(mut args: Args) -> Result<()> {
    let shape_name = args.value(&["--shape"])?.unwrap_or_else(|| "tiny".into());
    let shape = Shape::by_name(&shape_name).ok_or_else(|| {
        Error::invalid_argument(format!("unknown shape {shape_name:?} (tiny or 2b4t)"))
    })?;
    let weights = parse_weight_type(&args.value(&["--weights"])?.unwrap_or_else(|| "i2_s".into()))?;
    let embedding = parse_weight_type(&args.value(&["--embd"])?.unwrap_or_else(|| "f16".into()))?;
    let seed = args.parse(&["--seed"], 2025u64)?;
    let vocab = args
        .value(&["--vocab"])?
        .map(Into::into)
        .unwrap_or_else(default_vocab);
    let out = args
        .value(&["-o", "--out"])?
        .ok_or_else(|| Error::invalid_argument(format!("--out is required\n\n{HELP}")))?;
    args.positionals()?.first().map_or(Ok(()), |p| {
        Err(Error::invalid_argument(format!(
            "unexpected argument {p:?}"
        )))
    })?;
    let t = std::time::Instant::now();
    let n = modelgen::generate(
        &Params {
            shape,
            weights,
            embedding,
            seed,
            vocab,
        },
        out.as_ref(),
    )?;
    eprintln!("wrote {out}: {n} bytes, {shape_name}, {weights} layers, {embedding} embedding, seed {seed} ({:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

/// A generated model kept next to the binary (`<exe dir>/models/<file_name>`), made on first
/// use: `generate` without `-m` and `bench` without `-m` share it.
pub fn cached_model(
    file_name: &str,
    make: impl FnOnce(std::path::PathBuf) -> modelgen::Params,
) -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io("current executable", e))?;
    // Bench and test binaries live in target/<profile>/deps: share target/<profile>/models
    // with the `bitnet` binary instead of making a second copy.
    let dir = exe
        .parent()
        .map(|d| match d.file_name() {
            Some(n) if n == "deps" => d.parent().unwrap_or(d),
            _ => d,
        })
        .map(|d| d.join("models"))
        .unwrap_or_else(|| "models".into());
    let path = dir.join(file_name);
    if path.exists() {
        return Ok(path);
    }
    let vocab = default_vocab();
    if !vocab.exists() {
        return Err(Error::invalid_argument(format!(
            "no -m given, and {file_name} cannot be made: vocab file {} is missing (set BITNET_TEST_DATA or pass -m MODEL)",
            vocab.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    eprintln!("bitnet: making {} ...", path.display());
    modelgen::generate(&make(vocab), &path)?;
    Ok(path)
}
