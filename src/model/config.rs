//! Hyper-parameters of a model, read from GGUF metadata under the file's architecture prefix
//! (`spec/FORWARD.md` §1–2), with the reference's defaults and checks that fail with a message
//! naming the key.

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// The architectures this library runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `bitnet-b1.58`: bitnet.cpp's converter output (`build_bitnet_158`).
    BitnetB158,
    /// `bitnet-25`: the first 2B-4T upload; the same graph as `bitnet-b1.58`.
    Bitnet25,
    /// `bitnet`: llama.cpp's older BitNet arch (SiLU FFN, optional per-tensor `.scale`), §7.
    Bitnet,
}

impl Arch {
    /// The arch for a `general.architecture` value, or an "unsupported architecture" error.
    pub fn from_name(name: &str) -> Result<Arch> {
        match name {
            "bitnet-b1.58" => Ok(Arch::BitnetB158),
            "bitnet-25" => Ok(Arch::Bitnet25),
            "bitnet" => Ok(Arch::Bitnet),
            other => Err(Error::unsupported(format!(
                "unsupported architecture {other:?} (general.architecture): this library runs \
                 bitnet-b1.58, bitnet-25 and bitnet"
            ))),
        }
    }

    /// The metadata key prefix (the `general.architecture` value).
    pub fn name(self) -> &'static str {
        match self {
            Arch::BitnetB158 => "bitnet-b1.58",
            Arch::Bitnet25 => "bitnet-25",
            Arch::Bitnet => "bitnet",
        }
    }

    /// The FFN activation of the arch's graph.
    pub fn ffn_activation(self) -> FfnActivation {
        match self {
            Arch::BitnetB158 | Arch::Bitnet25 => FfnActivation::ReluSquared,
            Arch::Bitnet => FfnActivation::Silu,
        }
    }
}

/// How the FFN gate is activated before it multiplies the up projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FfnActivation {
    /// `relu(g)^2 * u` (bitnet-b1.58, bitnet-25).
    ReluSquared,
    /// `silu(g) * u` (bitnet).
    Silu,
}

/// The model's hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub arch: Arch,
    /// Training context length (`A.context_length`); the default context size.
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head dimension of Q and K (`A.attention.key_length`).
    pub head_dim: usize,
    /// Per-head dimension of V (`A.attention.value_length`).
    pub head_dim_v: usize,
    /// Rotated dimensions per head (`A.rope.dimension_count`); equals `head_dim` here.
    pub n_rot: usize,
    pub rms_eps: f32,
    pub rope_freq_base: f32,
    pub n_vocab: usize,
    pub ffn_activation: FfnActivation,
    /// `general.file_type`, if present (informational).
    pub file_type: Option<u32>,
}

impl Config {
    /// Reads and checks the hyper-parameters of `gguf`.
    pub fn from_gguf(gguf: &GgufFile) -> Result<Config> {
        let arch = Arch::from_name(gguf.get_str("general.architecture")?)?;
        let p = arch.name();
        let key = |k: &str| format!("{p}.{k}");
        let req = |k: &str| -> Result<usize> { Ok(gguf.get_u32(&key(k))? as usize) };
        let opt = |k: &str| -> Result<Option<usize>> {
            Ok(gguf.opt(&key(k), GgufFile::get_u32)?.map(|v| v as usize))
        };

        let n_embd = req("embedding_length")?;
        let n_head = req("attention.head_count")?;
        if n_head == 0 {
            return Err(Error::metadata(format!(
                "metadata key {}: must be at least 1",
                key("attention.head_count")
            )));
        }
        let n_head_kv = opt("attention.head_count_kv")?.unwrap_or(n_head);
        let default_head_dim = n_embd / n_head;
        let head_dim = opt("attention.key_length")?.unwrap_or(default_head_dim);
        let head_dim_v = opt("attention.value_length")?.unwrap_or(default_head_dim);
        let n_rot = opt("rope.dimension_count")?.unwrap_or(default_head_dim);

        let n_vocab = match opt("vocab_size")? {
            Some(v) => v,
            None => match gguf.get("tokenizer.ggml.tokens") {
                Some(_) => gguf.get_str_array("tokenizer.ggml.tokens")?.len(),
                // Neither key: the embedding table's row count decides (checked in weights.rs).
                None => gguf
                    .tensor_info("token_embd.weight")
                    .and_then(|t| t.dims.get(1).copied())
                    .unwrap_or(0),
            },
        };

        let cfg = Config {
            arch,
            n_ctx_train: req("context_length")?,
            n_embd,
            n_layer: req("block_count")?,
            n_ff: req("feed_forward_length")?,
            n_head,
            n_head_kv,
            head_dim,
            head_dim_v,
            n_rot,
            rms_eps: gguf.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
            rope_freq_base: gguf
                .opt(&key("rope.freq_base"), GgufFile::get_f32)?
                .unwrap_or(10000.0),
            n_vocab,
            ffn_activation: arch.ffn_activation(),
            file_type: gguf.opt("general.file_type", GgufFile::get_u32)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the relations the graph relies on; errors name the offending key.
    pub fn validate(&self) -> Result<()> {
        let p = self.arch.name();
        let bad =
            |k: &str, why: String| Err(Error::metadata(format!("metadata key {p}.{k}: {why}")));
        for (k, v) in [
            ("embedding_length", self.n_embd),
            ("block_count", self.n_layer),
            ("feed_forward_length", self.n_ff),
            ("attention.head_count_kv", self.n_head_kv),
            ("attention.key_length", self.head_dim),
            ("attention.value_length", self.head_dim_v),
            ("context_length", self.n_ctx_train),
            ("vocab_size", self.n_vocab),
        ] {
            if v == 0 {
                return bad(k, "must be at least 1".into());
            }
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return bad(
                "attention.head_count_kv",
                format!(
                    "{} does not divide head_count {} (GQA groups must be whole)",
                    self.n_head_kv, self.n_head
                ),
            );
        }
        if self.n_rot != self.head_dim {
            // build_bitnet_158 asserts n_rot == n_embd_head_k.
            return bad(
                "rope.dimension_count",
                format!(
                    "{} must equal the head dimension {}",
                    self.n_rot, self.head_dim
                ),
            );
        }
        if !self.n_rot.is_multiple_of(2) {
            return bad(
                "rope.dimension_count",
                format!("{} must be even", self.n_rot),
            );
        }
        if self.head_dim != self.head_dim_v {
            return bad(
                "attention.value_length",
                format!(
                    "{} must equal key_length {}",
                    self.head_dim_v, self.head_dim
                ),
            );
        }
        // Guard the products used to size buffers against absurd metadata.
        let limit = 1usize << 31;
        for (k, v) in [
            (
                "attention.head_count",
                self.n_head.checked_mul(self.head_dim),
            ),
            ("feed_forward_length", Some(self.n_ff)),
            // The C API reports it as an int32_t (bitnet_model_n_ctx_train).
            ("context_length", Some(self.n_ctx_train)),
            ("block_count", Some(self.n_layer << 16)),
            ("vocab_size", self.n_vocab.checked_mul(self.n_embd)),
        ] {
            if v.is_none_or(|v| v >= limit) {
                return bad(k, "implausibly large".into());
            }
        }
        if !(self.rms_eps.is_finite() && self.rms_eps >= 0.0) {
            return bad(
                "attention.layer_norm_rms_epsilon",
                format!("{} is not a non-negative number", self.rms_eps),
            );
        }
        if !(self.rope_freq_base.is_finite() && self.rope_freq_base > 0.0) {
            return bad(
                "rope.freq_base",
                format!("{} is not positive", self.rope_freq_base),
            );
        }
        Ok(())
    }

    /// Width of all Q heads together.
    pub fn n_embd_q(&self) -> usize {
        self.n_head * self.head_dim
    }
    /// Width of all K (or V) heads together.
    pub fn n_embd_kv(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}
