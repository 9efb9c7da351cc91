//! Every tensor of the graph bound to the file's bytes once, at load, without copying: a
//! [`TensorRef`] is a tensor's checked type and shape, its byte range in the file, and for I2_S
//! the per-tensor scale read from its tail. Shapes and types are checked against the [`Config`],
//! weight matrices through `kernels::Weights::new` (byte length, alignment of the typed view),
//! F32 vectors for 4-byte alignment: a misaligned tensor is a load error. The forward pass then
//! slices the map by range; it never looks a tensor up again.

use super::config::{Arch, Config};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::kernels;
use crate::tensor::blocks::cast_slice;
use crate::tensor::GgmlType;
use std::cell::RefCell;
use std::collections::HashMap;

/// A checked reference to one tensor in the file: 2-D weights have `cols` = ne0 (input dim) and
/// `rows` = ne1; 1-D tensors have `rows` = 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorRef {
    /// Index into `GgufFile::tensors()`.
    pub(crate) index: usize,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Byte range of the whole tensor in the file.
    pub(crate) offset: usize,
    pub(crate) len: usize,
    /// Bytes of the rows alone (`rows * row_bytes`; I2_S's scale tail excluded).
    pub(crate) rows_len: usize,
    /// The I2_S per-tensor scale (0 for other types).
    pub(crate) scale: f32,
}

/// Types a matmul (`kernels::matmul`) takes as weights.
const MATMUL_TYPES: [GgmlType; 7] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::I2_S,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
];

/// Types the embedding table (and the unused `output.weight`) may have: the float and
/// row-quantized types the reference takes rows from. I2_S is a matmul-only format (one scale
/// per tensor, at its end): an I2_S `token_embd` is a mislabelled file.
const EMBD_TYPES: [GgmlType; 6] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
];

/// A linear layer: the weight plus the optional extras some converters write.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub weight: TensorRef,
    /// `<name>.bias`, `[rows]` F32, added to the output.
    pub bias: Option<TensorRef>,
    /// `<name>.scale`, `[1]` F32 (arch `bitnet` only), multiplies the output.
    pub scale: Option<f32>,
}

/// One transformer block.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub attn_norm: TensorRef,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub attn_sub_norm: TensorRef,
    pub wo: Linear,
    pub ffn_norm: TensorRef,
    pub ffn_gate: Linear,
    pub ffn_up: Linear,
    pub ffn_sub_norm: TensorRef,
    pub ffn_down: Linear,
}

/// All tensors the graph uses.
#[derive(Debug, Clone)]
pub struct ModelWeights {
    /// Embedding table [n_embd, n_vocab]; also the (tied) lm_head.
    pub token_embd: TensorRef,
    pub output_norm: TensorRef,
    /// `rope_freqs.weight` [n_rot/2] (llama-3 rope factors): theta_i is divided by it.
    pub rope_freqs: Option<Vec<f32>>,
    pub layers: Vec<LayerWeights>,
}

fn show_dims(d: &[usize]) -> String {
    let parts: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Binds tensors by name, checking shape and type, and remembers which ones it bound.
struct Binder<'a> {
    gguf: &'a GgufFile,
    by_name: HashMap<&'a str, usize>,
    used: RefCell<Vec<bool>>,
}

impl<'a> Binder<'a> {
    fn new(gguf: &'a GgufFile) -> Binder<'a> {
        let mut by_name = HashMap::with_capacity(gguf.tensors().len());
        for (i, t) in gguf.tensors().iter().enumerate() {
            by_name.entry(t.name.as_str()).or_insert(i); // the first of a repeated name
        }
        Binder {
            gguf,
            by_name,
            used: RefCell::new(vec![false; gguf.tensors().len()]),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        let i = *self.by_name.get(name)?;
        self.used.borrow_mut()[i] = true;
        Some(i)
    }

    /// Fails on the first tensor of the directory that no part of the graph bound, as the
    /// reference does ("wrong number of tensors"): a file whose metadata and tensors disagree
    /// (say `block_count = 1` with `blk.1.*` present) is not what it claims to be.
    fn all_used(&self, cfg: &Config) -> Result<()> {
        let used = self.used.borrow();
        let Some(i) = used.iter().position(|&u| !u) else {
            return Ok(());
        };
        let name = &self.gguf.tensors()[i].name;
        let p = cfg.arch.name();
        let layer = name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|n| n.parse::<u64>().ok());
        Err(Error::format(match layer {
            Some(l) if l >= cfg.n_layer as u64 => format!(
                "tensor {name}: the file holds layer {l} but metadata key {p}.block_count = {} \
                 (layers 0..{}): metadata and tensor directory disagree",
                cfg.n_layer, cfg.n_layer
            ),
            _ => format!(
                "tensor {name}: not used by a {p} model (the file holds {} tensors, {} of them \
                 unknown to this architecture)",
                used.len(),
                used.iter().filter(|&&u| !u).count()
            ),
        }))
    }

    /// Binds `name` if present, checking dims equal `want` (trailing 1s ignored) and the type is
    /// one of `types`.
    fn optional(
        &self,
        name: &str,
        want: &[usize],
        types: &[GgmlType],
    ) -> Result<Option<TensorRef>> {
        let Some(index) = self.find(name) else {
            return Ok(None);
        };
        let info = &self.gguf.tensors()[index];
        let mut dims: Vec<usize> = info.dims.clone();
        while dims.len() > want.len() && dims.last() == Some(&1) {
            dims.pop();
        }
        if dims != want {
            return Err(Error::format(format!(
                "tensor {name}: expected {}, file has {}",
                show_dims(want),
                show_dims(&info.dims)
            )));
        }
        if !types.contains(&info.ty) {
            let allowed: Vec<&str> = types.iter().map(|t| t.name()).collect();
            return Err(Error::unsupported(format!(
                "tensor {name}: type {} ({}) is not supported here (expected {})",
                info.ty.id(),
                info.ty.name(),
                allowed.join(", ")
            )));
        }
        if info.ty.row_bytes(want[0]).is_none() {
            return Err(Error::format(format!(
                "tensor {name}: {} rows of {} elements are not whole {}-element blocks",
                info.ty.name(),
                want[0],
                info.ty.block_size()
            )));
        }
        let (rows, cols) = (want.get(1).copied().unwrap_or(1), want[0]);
        let data = self.gguf.view(info).data;
        let scale = if MATMUL_TYPES.contains(&info.ty) {
            let w = kernels::Weights::new(info.ty, data, rows, cols)
                .map_err(|e| e.context(format!("tensor {name}")))?;
            w.scale()
        } else {
            0.0
        };
        let rows_len = info.ty.row_bytes(cols).unwrap_or(0) * rows;
        Ok(Some(TensorRef {
            index,
            ty: info.ty,
            rows,
            cols,
            offset: self.gguf.data_offset() + info.offset,
            len: info.size,
            rows_len,
            scale,
        }))
    }

    fn required(&self, name: &str, want: &[usize], types: &[GgmlType]) -> Result<TensorRef> {
        self.optional(name, want, types)?
            .ok_or_else(|| Error::format(format!("tensor {name}: missing from the file")))
    }

    /// A 1-D F32 vector of length `n` (norm weights), checked to be readable as `&[f32]`.
    fn vector(&self, name: &str, n: usize) -> Result<TensorRef> {
        let t = self.required(name, &[n], &[GgmlType::F32])?;
        self.f32s(name, t)?;
        Ok(t)
    }

    fn f32s(&self, name: &str, t: TensorRef) -> Result<&[f32]> {
        let data = self.gguf.view(&self.gguf.tensors()[t.index]).data;
        cast_slice::<f32>(data)
            .ok_or_else(|| Error::format(format!("tensor {name}: F32 data is not 4-byte aligned")))
    }

    fn linear(&self, arch: Arch, base: &str, n_in: usize, n_out: usize) -> Result<Linear> {
        let weight = self.required(&format!("{base}.weight"), &[n_in, n_out], &MATMUL_TYPES)?;
        let bias_name = format!("{base}.bias");
        let bias = self.optional(&bias_name, &[n_out], &[GgmlType::F32])?;
        if let Some(b) = bias {
            self.f32s(&bias_name, b)?;
        }
        let scale = if arch == Arch::Bitnet {
            let name = format!("{base}.scale");
            match self.optional(&name, &[1], &[GgmlType::F32])? {
                Some(t) => Some(self.f32s(&name, t)?[0]),
                None => None,
            }
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            scale,
        })
    }
}

impl ModelWeights {
    /// Binds and checks every tensor the graph of `cfg.arch` uses.
    pub fn bind(gguf: &GgufFile, cfg: &Config) -> Result<ModelWeights> {
        let b = Binder::new(gguf);
        let (e, q, kv, ff) = (cfg.n_embd, cfg.n_embd_q(), cfg.n_embd_kv(), cfg.n_ff);
        let token_embd = b.required("token_embd.weight", &[e, cfg.n_vocab], &EMBD_TYPES)?;
        let output_norm = b.vector("output_norm.weight", e)?;
        // `output.weight`, if the file has one, is checked but not used by these archs' graphs
        // (the lm_head is `token_embd`, FORWARD.md §3).
        b.optional("output.weight", &[e, cfg.n_vocab], &EMBD_TYPES)?;
        let rope_freqs =
            match b.optional("rope_freqs.weight", &[cfg.n_rot / 2], &[GgmlType::F32])? {
                Some(t) => Some(b.f32s("rope_freqs.weight", t)?.to_vec()),
                None => None,
            };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            layers.push(LayerWeights {
                attn_norm: b.vector(&n("attn_norm.weight"), e)?,
                wq: b.linear(cfg.arch, &n("attn_q"), e, q)?,
                wk: b.linear(cfg.arch, &n("attn_k"), e, kv)?,
                wv: b.linear(cfg.arch, &n("attn_v"), e, kv)?,
                attn_sub_norm: b.vector(&n("attn_sub_norm.weight"), q)?,
                wo: b.linear(cfg.arch, &n("attn_output"), q, e)?,
                ffn_norm: b.vector(&n("ffn_norm.weight"), e)?,
                ffn_gate: b.linear(cfg.arch, &n("ffn_gate"), e, ff)?,
                ffn_up: b.linear(cfg.arch, &n("ffn_up"), e, ff)?,
                ffn_sub_norm: b.vector(&n("ffn_sub_norm.weight"), ff)?,
                ffn_down: b.linear(cfg.arch, &n("ffn_down"), ff, e)?,
            });
        }
        b.all_used(cfg)?;
        Ok(ModelWeights {
            token_embd,
            output_norm,
            rope_freqs,
            layers,
        })
    }
}
