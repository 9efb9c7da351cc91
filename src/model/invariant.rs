//! Batch-invariant evaluation ([`crate::ContextParams::batch_invariant`]): every token of a
//! ubatch computed with the arithmetic it would get alone, so a sequence's logits do not depend
//! on what else is in the batch or where its cells lie in the cache.
//!
//! Two things make the default path depend on the batch (as the reference does):
//! - F16 / F32 matmuls take tinyBLAS order for 2+ tokens and ggml's for one (FORWARD.md §8);
//!   here every token takes ggml's single-token order ([`kernels::matmul_per_token`], which
//!   still reads each weight tile once for the whole ubatch). The quantized types (I2_S, TQ1_0, TQ2_0, Q6_K, Q8_0)
//!   already give each token the same bits whatever the token count.
//! - Attention sums (softmax, P·V) run over the cache's cells, so the lane a value lands in
//!   depends on its cell index, and a multi-token ubatch takes the tinyBLAS P·V. Here each token
//!   takes the single-token path over its own visible cells gathered in position order into a
//!   compact K / V copy (padded to [`KV_PAD`] as the cache is). A lone sequence stored from
//!   cell 0 in position order gets exactly the default single-token bits.
//!
//! Cost: the gather copies a token's visible K and V rows once per layer (2 · n_vis · n_embd_kv
//! halves), and prompt tokens lose the tinyBLAS P·V and tinyBLAS's F16/F32 matmul (the
//! per-token order does about the same work per weight row, without tinyBLAS's register tiling).

use crate::error::Result;
use crate::kernels::{self, KernelTable, Weights};
use crate::kv::{KvCache, KvLayer, KV_PAD};
use half::f16;
use rayon::prelude::*;

/// `kernels::matmul`, or with `inv` [`kernels::matmul_per_token`]: every token in the
/// single-token order.
pub(crate) fn matmul(
    kt: &KernelTable,
    w: &Weights,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    ks: &mut kernels::Scratch,
    inv: bool,
) -> Result<()> {
    if inv {
        kernels::matmul_per_token(kt, w, x, n, y, ks)
    } else {
        kt.matmul(w, x, n, y, ks)
    }
}

/// The per-token gather buffers (empty unless the context is batch-invariant).
#[derive(Default)]
pub(crate) struct Gather {
    /// For each token of the ubatch, its visible cells in position order:
    /// `cells[off[t]..off[t + 1]]`.
    cells: Vec<usize>,
    off: Vec<usize>,
    /// `[n][n_embd_kv]`: the K rows of those cells, zero rows as padding.
    k: Vec<f16>,
    /// `[n_embd_kv][n]`: their V, transposed like the cache.
    v: Vec<f16>,
    /// `[n]`: 0 for the gathered cells, -inf for the padding.
    mask: Vec<f32>,
}

impl Gather {
    pub(super) fn new(n_ctx: usize, n_embd_kv: usize) -> Gather {
        Gather {
            cells: Vec::with_capacity(n_ctx),
            off: Vec::new(),
            k: vec![f16::ZERO; n_ctx * n_embd_kv],
            v: vec![f16::ZERO; n_ctx * n_embd_kv],
            mask: vec![0.0; n_ctx],
        }
    }

    /// Lists each token's visible cells (mask 0) sorted by position (ties by cell).
    pub(super) fn visible_cells(&mut self, kv: &KvCache, step: &super::forward::Step) {
        let (nt, n_kv) = (step.tokens.len(), step.n_kv);
        let cells = kv.cells();
        self.cells.clear();
        self.off.clear();
        self.off.push(0);
        for t in 0..nt {
            let start = self.cells.len();
            let row = &step.mask[t * n_kv..(t + 1) * n_kv];
            self.cells
                .extend((0..n_kv).filter(|&j| row[j] != f32::NEG_INFINITY));
            self.cells[start..].sort_by_key(|&j| (cells[j].pos, j));
            self.off.push(self.cells.len());
        }
    }

    /// Gathers token `t`'s visible K rows and V columns of one layer; returns them as a compact
    /// layer (K rows in position order, V transposed with the mask's length as its stride) and
    /// the mask.
    pub(super) fn gather(&mut self, layer: KvLayer, t: usize) -> (KvLayer<'_>, &[f32]) {
        let n_embd_kv = layer.k_stride;
        let cells = &self.cells[self.off[t]..self.off[t + 1]];
        let n_vis = cells.len();
        let n = (n_vis.div_ceil(KV_PAD) * KV_PAD)
            .max(KV_PAD)
            .min(self.mask.len());
        let k = &mut self.k[..n * n_embd_kv];
        k.par_chunks_mut(n_embd_kv)
            .enumerate()
            .for_each(|(i, row)| match cells.get(i) {
                Some(&c) => row.copy_from_slice(&layer.k_rows(c, 0)[..n_embd_kv]),
                None => row.fill(f16::ZERO),
            });
        let v = &mut self.v[..n_embd_kv * n];
        v.par_chunks_mut(n).enumerate().for_each(|(d, row)| {
            let src = layer.v_rows(d);
            for (dst, &c) in row.iter_mut().zip(cells) {
                *dst = src[c];
            }
            row[n_vis..].fill(f16::ZERO);
        });
        let mask = &mut self.mask[..n];
        mask[..n_vis].fill(0.0);
        mask[n_vis..].fill(f32::NEG_INFINITY);
        let compact = KvLayer {
            k: &self.k[..n * n_embd_kv],
            k_stride: n_embd_kv,
            v: &self.v[..n_embd_kv * n],
            v_stride: n,
        };
        (compact, &self.mask[..n])
    }
}
