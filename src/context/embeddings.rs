//! Embeddings output (llama.cpp's `embd` / `embd_seq`): with [`ContextParams::embeddings`] on,
//! every token of a batch is an output and its embedding is the output of the final RMSNorm
//! (`result_norm`, the lm_head's input). With [`PoolingType::None`] the rows are kept per token;
//! with MEAN, CLS or LAST one vector per sequence of the batch is pooled from them.
//!
//! [`ContextParams::embeddings`]: super::ContextParams::embeddings

use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{GgufFile, Value};
use crate::kernels::KernelTable;
use crate::kv::MAX_SEQ;
use crate::types::{Pos, SeqId};

/// How embeddings are pooled per sequence (`llama_pooling_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoolingType {
    /// The model's `<arch>.pooling_type` if its file has one, else [`PoolingType::None`].
    #[default]
    Unspecified,
    /// One embedding per output token.
    None,
    /// The mean of the sequence's token embeddings.
    Mean,
    /// The embedding of the sequence's first token (lowest position).
    Cls,
    /// The embedding of the sequence's last token (highest position).
    Last,
    /// A reranking head's scores: BitNet models have no classifier head, so a context asking for
    /// it is refused.
    Rank,
}

impl PoolingType {
    /// llama.h's number for it (UNSPECIFIED -1, NONE 0, MEAN 1, CLS 2, LAST 3, RANK 4).
    pub fn to_llama(self) -> i32 {
        match self {
            PoolingType::Unspecified => -1,
            PoolingType::None => 0,
            PoolingType::Mean => 1,
            PoolingType::Cls => 2,
            PoolingType::Last => 3,
            PoolingType::Rank => 4,
        }
    }

    /// The type for llama.h's number; `None` for a number llama.h does not define.
    pub fn from_llama(v: i64) -> Option<PoolingType> {
        Some(match v {
            -1 => PoolingType::Unspecified,
            0 => PoolingType::None,
            1 => PoolingType::Mean,
            2 => PoolingType::Cls,
            3 => PoolingType::Last,
            4 => PoolingType::Rank,
            _ => return None,
        })
    }
}

/// Attention mask kind (`llama_attention_type`). Only causal attention is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionType {
    /// The model's (`<arch>.attention.causal`, causal when absent).
    #[default]
    Unspecified,
    Causal,
    /// Every token attends to every token of its sequence: not supported (refused at creation).
    NonCausal,
}

fn meta_int(gguf: &GgufFile, key: &str) -> Option<i64> {
    match gguf.get(key)? {
        Value::U8(v) => Some(*v as i64),
        Value::I8(v) => Some(*v as i64),
        Value::U16(v) => Some(*v as i64),
        Value::I16(v) => Some(*v as i64),
        Value::U32(v) => Some(*v as i64),
        Value::I32(v) => Some(*v as i64),
        Value::U64(v) => i64::try_from(*v).ok(),
        Value::I64(v) => Some(*v),
        _ => None,
    }
}

/// Resolves the pooling and attention types as llama.cpp's context creation does (UNSPECIFIED =
/// the model's), refusing what this library cannot compute: RANK (no classifier head) and
/// non-causal attention.
pub(crate) fn resolve(
    gguf: &GgufFile,
    arch: &str,
    pooling: PoolingType,
    attention: AttentionType,
) -> Result<(PoolingType, AttentionType)> {
    let pooling = match pooling {
        PoolingType::Unspecified => {
            let key = format!("{arch}.pooling_type");
            match meta_int(gguf, &key) {
                None => PoolingType::None,
                Some(v) => match PoolingType::from_llama(v) {
                    Some(PoolingType::Unspecified) => PoolingType::None,
                    Some(p) => p,
                    None => {
                        return Err(Error::unsupported(format!(
                            "the model's {key} = {v} is not a pooling type llama.h defines"
                        )))
                    }
                },
            }
        }
        p => p,
    };
    if pooling == PoolingType::Rank {
        return Err(Error::unsupported(
            "pooling_type RANK needs a classifier (reranking) head, which BitNet models do not \
             have; use NONE, MEAN, CLS or LAST",
        ));
    }
    let causal = match attention {
        AttentionType::Unspecified => {
            let key = format!("{arch}.attention.causal");
            !matches!(gguf.get(&key), Some(Value::Bool(false)))
        }
        AttentionType::Causal => true,
        AttentionType::NonCausal => false,
    };
    if !causal {
        return Err(Error::unsupported(
            "non-causal attention (attention_type NON_CAUSAL) is not supported: only causal \
             attention is implemented",
        ));
    }
    Ok((pooling, AttentionType::Causal))
}

/// The embeddings of the last decode.
#[derive(Debug, Default)]
pub(crate) struct EmbdOutput {
    n_embd: usize,
    /// `n_rows × n_embd`: the final-norm output of every output token, in batch order.
    rows: Vec<f32>,
    n_rows: usize,
    /// Whether the last decode produced `rows` (embeddings on, not since restored from state).
    valid: bool,
    /// Pooled vectors of the last decode by sequence id (empty = that sequence was not in it).
    seq: Vec<Vec<f32>>,
    /// Scratch for the mean: one embedding dimension over the batch, and one sequence's weights.
    col: Vec<f32>,
    weights: Vec<f32>,
}

fn oom(what: &str, n: usize) -> Error {
    Error::new(
        ErrorKind::OutOfMemory,
        format!(
            "decode: {what} ({} bytes) cannot be allocated",
            n as u128 * 4
        ),
    )
}

fn grow(v: &mut Vec<f32>, n: usize, what: &str) -> Result<()> {
    if v.len() < n {
        v.try_reserve_exact(n - v.len()).map_err(|_| oom(what, n))?;
        v.resize(n, 0.0);
    }
    Ok(())
}

impl EmbdOutput {
    pub(crate) fn new(n_embd: usize) -> EmbdOutput {
        EmbdOutput {
            n_embd,
            seq: vec![Vec::new(); MAX_SEQ],
            ..Default::default()
        }
    }

    /// Forgets the last decode's embeddings (start of a decode, state restore).
    pub(crate) fn reset(&mut self) {
        self.valid = false;
        self.n_rows = 0;
        for s in &mut self.seq {
            s.clear();
        }
    }

    /// Makes room for `n_out` rows; the decode then writes them through [`EmbdOutput::rows_mut`].
    pub(crate) fn prepare(&mut self, n_out: usize) -> Result<()> {
        let n = n_out
            .checked_mul(self.n_embd)
            .ok_or_else(|| oom("the embeddings", usize::MAX / 4))?;
        grow(&mut self.rows, n, "the embeddings")?;
        self.valid = true;
        Ok(())
    }

    /// Rows `row..row + n` of the output buffer.
    pub(crate) fn rows_mut(&mut self, row: usize, n: usize) -> &mut [f32] {
        &mut self.rows[row * self.n_embd..(row + n) * self.n_embd]
    }

    /// Records how many rows the decode filled.
    pub(crate) fn set_rows(&mut self, n: usize) {
        self.n_rows = n;
    }

    /// All per-token rows of the last decode (`None` if it produced none).
    pub(crate) fn rows(&self) -> Option<&[f32]> {
        self.valid.then(|| &self.rows[..self.n_rows * self.n_embd])
    }

    /// Row `r` (an output row index, as the logits').
    pub(crate) fn row(&self, r: usize) -> Option<&[f32]> {
        (self.valid && r < self.n_rows).then(|| &self.rows[r * self.n_embd..(r + 1) * self.n_embd])
    }

    /// The pooled vector of `seq` from the last decode.
    pub(crate) fn seq(&self, seq: SeqId) -> Option<&[f32]> {
        let v = self.seq.get(usize::try_from(seq).ok()?)?;
        (!v.is_empty()).then_some(v.as_slice())
    }

    /// Pools the rows of the last decode (every token of the batch is a row, in batch order)
    /// per sequence, as llama.cpp's `build_pooling` does for one ubatch: MEAN is the product
    /// of the transposed rows with a matrix holding 1/n for each of a sequence's tokens (a
    /// float dot product over the whole batch, in tinyBLAS order when the batch length is a
    /// multiple of 8 and in `ggml_vec_dot_f32` order otherwise, as ggml's F32 mul_mat picks);
    /// CLS takes the row of the sequence's lowest position (the first such token), LAST the row
    /// of its highest (the last such token). A token in several sequences counts in each.
    pub(crate) fn pool(
        &mut self,
        kt: &KernelTable,
        pooling: PoolingType,
        pos: &[Pos],
        seq_ids: Option<&[Vec<SeqId>]>,
    ) -> Result<()> {
        let (n, e) = (pos.len(), self.n_embd);
        debug_assert_eq!(n, self.n_rows);
        let seqs_of = |i: usize| -> &[SeqId] {
            match seq_ids {
                Some(s) => &s[i],
                None => &[0],
            }
        };
        let mut count = [0usize; MAX_SEQ];
        let mut target: [Option<(Pos, usize)>; MAX_SEQ] = [None; MAX_SEQ];
        for i in 0..n {
            for &s in seqs_of(i) {
                let s = s as usize;
                count[s] += 1;
                let better = match target[s] {
                    None => true,
                    Some((p, _)) => match pooling {
                        PoolingType::Last => pos[i] >= p,
                        _ => pos[i] < p,
                    },
                };
                if better {
                    target[s] = Some((pos[i], i));
                }
            }
        }
        if pooling == PoolingType::Mean {
            grow(&mut self.col, n, "the pooling scratch")?;
            grow(&mut self.weights, n, "the pooling scratch")?;
        }
        for s in 0..MAX_SEQ {
            if count[s] == 0 {
                continue;
            }
            let mut out = std::mem::take(&mut self.seq[s]);
            out.try_reserve_exact(e)
                .map_err(|_| oom("a pooled embedding", e))?;
            match pooling {
                PoolingType::Mean => {
                    let div = 1.0f32 / count[s] as f32;
                    for i in 0..n {
                        self.weights[i] = if seqs_of(i).contains(&(s as SeqId)) {
                            div
                        } else {
                            0.0
                        };
                    }
                    let dot = if n % 8 == 0 {
                        kt.dot_f32_tinyblas
                    } else {
                        kt.dot_f32_ggml
                    };
                    for d in 0..e {
                        for i in 0..n {
                            self.col[i] = self.rows[i * e + d];
                        }
                        out.push(dot(&self.col[..n], &self.weights[..n]));
                    }
                }
                PoolingType::Cls | PoolingType::Last => {
                    let (_, i) = target[s].expect("a sequence with tokens has a target row");
                    out.extend_from_slice(&self.rows[i * e..(i + 1) * e]);
                }
                other => {
                    return Err(Error::internal(format!(
                        "pool: pooling {other:?} has no pooled output"
                    )))
                }
            }
            self.seq[s] = out;
        }
        Ok(())
    }
}
