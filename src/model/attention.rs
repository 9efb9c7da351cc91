//! Attention over the KV cache, as the reference computes it (`spec/FORWARD.md` §5): Q·K with
//! `ggml_vec_dot_f16` over each token's visible span, scale and mask, ggml's softmax, then P·V
//! (F16 P for a single token, F32 P in tinyBLAS order for 2+). It reads the cache through
//! [`KvLayer`] (rows and strides) and takes the mask and `n_kv`; it knows nothing of contexts.

use super::ops;
use crate::kernels::KernelTable;
use crate::kv::KvLayer;
use half::f16;
use rayon::prelude::*;

/// The attention geometry of one layer.
pub(crate) struct AttnShape {
    pub n_head: usize,
    /// Query heads per KV head (GQA).
    pub group: usize,
    pub hd: usize,
    pub kq_scale: f32,
}

/// `scores[j]` scaled and masked as the reference does it: `-inf` for cells outside `lo..hi`
/// (the span this token sees) or masked inside it, else `score * kq_scale + mask`.
fn scale_and_mask(w: &mut [f32], mask: &[f32], lo: usize, hi: usize, kq_scale: f32) {
    w[..lo].fill(f32::NEG_INFINITY);
    w[hi..].fill(f32::NEG_INFINITY);
    for (wj, &m) in w[lo..hi].iter_mut().zip(&mask[lo..hi]) {
        *wj = if m == f32::NEG_INFINITY {
            f32::NEG_INFINITY
        } else {
            *wj * kq_scale + m
        };
    }
}

/// The span `lo..hi` of cells a token's mask row lets it see (a prefix for a causal prompt);
/// Q·K runs only there.
fn visible_span(mask: &[f32]) -> (usize, usize) {
    let lo = mask
        .iter()
        .position(|&m| m != f32::NEG_INFINITY)
        .unwrap_or(mask.len());
    let hi = mask
        .iter()
        .rposition(|&m| m != f32::NEG_INFINITY)
        .map_or(lo, |i| i + 1);
    (lo, hi)
}

/// Cells per parallel Q·K task of [`attention_token`] (a multiple of [`QK_BLOCK`]), and V
/// rows per P·V task.
const QK_CELLS_PER_TASK: usize = 256;
/// Cells whose K rows a Q·K task reads for every KV head before the next block: 16 rows of
/// 1280 B on the 2B-4T shape. Reading the cache this way rather than one KV head's slice per
/// pass took one thread's Q·K at depth 2048 from 8.0-8.6 to 6.3-7.1 ms per token (Xeon,
/// `cargo bench --bench kernels -- attention`, blocks of 16, 64 and 256 alike).
const QK_BLOCK: usize = 16;
const PV_ROWS_PER_TASK: usize = 32;

/// Single-token (decode) attention over `mask.len()` cells, out `[head][hd]`. The `group`
/// query heads of each KV head go through the kernels together, so every cached K row and V
/// row is read and widened once for the group rather than once per head; each head's products
/// and sums are unchanged, so are the bits. Three parallel phases, each split finely enough to
/// keep both cores busy with only a few KV heads:
/// 1. Q·K per span of cells, every KV head of a block of cells before the next block, into
///    `scores` as `[block][kv head][cell in block][group]`;
/// 2. per head: scale, mask, softmax, and P rounded to F16 (ggml_vec_dot_f16 takes P in F16 for
///    a single token, FORWARD.md §5) into `probs` as `[head][cell]`;
/// 3. P·V per (KV head, span of V rows) into `grouped` as `[kv head][d][group]`, then
///    transposed to `out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_token(
    kt: &KernelTable,
    a: &AttnShape,
    layer: KvLayer,
    q: &[f32],
    mask: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    probs: &mut [f32],
    grouped: &mut [f32],
) {
    let (g, hd, n_kv) = (a.group, a.hd, mask.len());
    let (lo, hi) = visible_span(mask);
    if n_kv == 0 || hd == 0 {
        out.fill(0.0);
        return;
    }

    // Q·K, cell-major: a task takes a span of cells and, block by block, every KV head of
    // them, so the cached K rows (all KV heads of a cell side by side) are read whole and in
    // order rather than one head's slice per pass over the layer. Layout of `qk`:
    // `[block of QK_BLOCK cells][kv head][cell in block][group]` (the last block may be short).
    let n_head = a.n_head;
    let qk = &mut scores[..n_head * (hi - lo)];
    qk.par_chunks_mut(n_head * QK_CELLS_PER_TASK)
        .enumerate()
        .for_each(|(i, task)| {
            let first = lo + i * QK_CELLS_PER_TASK;
            for (b, blk) in task.chunks_mut(n_head * QK_BLOCK).enumerate() {
                let cells = blk.len() / n_head;
                let c0 = first + b * QK_BLOCK;
                for (kvh, part) in blk.chunks_mut(g * cells).enumerate() {
                    let keys = layer.k_rows(c0, kvh * hd);
                    let qg = &q[kvh * g * hd..(kvh + 1) * g * hd];
                    kt.dot_f16_ggml_strided_group(keys, layer.k_stride, qg, g, part);
                }
            }
        });

    let qk = &scores[..n_head * (hi - lo)];
    probs[..n_head * n_kv]
        .par_chunks_mut(n_kv)
        .enumerate()
        .for_each(|(h, p)| {
            let (kvh, t) = (h / g, h % g);
            for (blk, pb) in qk
                .chunks(n_head * QK_BLOCK)
                .zip(p[lo..hi].chunks_mut(QK_BLOCK))
            {
                let cells = pb.len();
                let part = &blk[kvh * g * cells..(kvh + 1) * g * cells];
                for (pj, s) in pb.iter_mut().zip(part.iter().skip(t).step_by(g)) {
                    *pj = *s;
                }
            }
            scale_and_mask(p, mask, lo, hi, a.kq_scale);
            ops::softmax(p);
            ops::round_to_f16(p);
        });

    let probs = &probs[..a.n_head * n_kv];
    let rows_per_task = if hd.is_multiple_of(PV_ROWS_PER_TASK) {
        PV_ROWS_PER_TASK
    } else {
        hd
    };
    let tasks_per_head = hd / rows_per_task;
    grouped[..a.n_head * hd]
        .par_chunks_mut(g * rows_per_task)
        .enumerate()
        .for_each(|(i, part)| {
            let (kvh, d0) = (i / tasks_per_head, (i % tasks_per_head) * rows_per_task);
            // The V rows of this KV head: row d is cell-contiguous, `v_stride` apart.
            let v_rows = layer.v_rows(kvh * hd + d0);
            let pg = &probs[kvh * g * n_kv..(kvh + 1) * g * n_kv];
            kt.dot_f16_ggml_strided_group(v_rows, layer.v_stride, pg, g, part);
        });
    for (kvh, gk) in grouped[..a.n_head * hd].chunks_exact(g * hd).enumerate() {
        for (d, row) in gk.chunks_exact(g).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                out[(kvh * g + t) * hd + d] = v;
            }
        }
    }
}

/// Causal GQA attention of `nt` tokens (a multi-token ubatch) over `n_kv` cells with the mask
/// `[nt][n_kv]`, head-major output `out[h][t][hd]`. Heads run in parallel (each is
/// independent, so the bits do not depend on the thread count); `scores` gives each head a row
/// of `n_kv` values. P stays F32 and P·V takes llamafile's tinyBLAS order, as the reference's
/// sgemm does for 2+ tokens (FORWARD.md §5).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_prompt(
    kt: &KernelTable,
    a: &AttnShape,
    layer: KvLayer,
    q16: &[f16],
    nt: usize,
    mask: &[f32],
    n_kv: usize,
    out: &mut [f32],
    scores: &mut [f32],
) {
    let (n_head, group, hd) = (a.n_head, a.group, a.hd);
    let nq = n_head * hd;
    out[..n_head * nt * hd]
        .par_chunks_mut(nt * hd)
        .zip(scores[..n_head * n_kv].par_chunks_mut(n_kv))
        .enumerate()
        .for_each(|(h, (out_h, w))| {
            let kvh = h / group;
            for t in 0..nt {
                let q = &q16[t * nq + h * hd..t * nq + (h + 1) * hd];
                let mask = &mask[t * n_kv..(t + 1) * n_kv];
                let (lo, hi) = visible_span(mask);
                if lo < hi {
                    let keys = layer.k_rows(lo, kvh * hd);
                    kt.dot_f16_ggml_strided(keys, layer.k_stride, q, &mut w[lo..hi]);
                }
                scale_and_mask(w, mask, lo, hi, a.kq_scale);
                ops::softmax(w);
                let o = &mut out_h[t * hd..(t + 1) * hd];
                // The V rows of this kv head: row d is cell-contiguous, `v_stride` apart.
                let v_head = layer.v_rows(kvh * hd);
                kt.dot_f16_f32_tinyblas_strided(v_head, layer.v_stride, w, o);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The grouped single-token attention against the plain per-head computation it replaces
    /// (one head at a time: Q·K rows, scale/mask, softmax, P to F16, P·V rows), bit for bit,
    /// across several parallel Q·K and P·V tasks, a span that starts after cell 0 and masked
    /// cells inside it.
    #[test]
    fn grouped_decode_attention_equals_per_head() {
        let (n_head, group, hd, size) = (8usize, 4usize, 64usize, 700usize);
        let n_kv = 650;
        let n_embd_kv = n_head / group * hd;
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut rnd = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let k: Vec<f16> = (0..size * n_embd_kv)
            .map(|_| f16::from_f32(rnd()))
            .collect();
        let v: Vec<f16> = (0..n_embd_kv * size)
            .map(|_| f16::from_f32(rnd()))
            .collect();
        let layer = KvLayer {
            k: &k,
            k_stride: n_embd_kv,
            v: &v,
            v_stride: size,
        };
        let mut q: Vec<f32> = (0..n_head * hd).map(|_| rnd() * 4.0).collect();
        ops::round_to_f16(&mut q);
        let mut mask = vec![0f32; n_kv];
        mask[..3].fill(f32::NEG_INFINITY);
        mask[100..110].fill(f32::NEG_INFINITY);
        mask[640..].fill(f32::NEG_INFINITY);
        let shape = AttnShape {
            n_head,
            group,
            hd,
            kq_scale: 1.0 / (hd as f32).sqrt(),
        };

        let mut got = vec![f32::NAN; n_head * hd];
        let (mut scores, mut probs, mut grouped) = (
            vec![0f32; n_head * size],
            vec![0f32; n_head * size],
            vec![0f32; n_head * hd],
        );
        let kt = crate::kernels::active();
        attention_token(
            kt,
            &shape,
            layer,
            &q,
            &mask,
            &mut got,
            &mut scores,
            &mut probs,
            &mut grouped,
        );

        let (lo, hi) = visible_span(&mask);
        assert_eq!((lo, hi), (3, 640));
        for h in 0..n_head {
            let kvh = h / group;
            let qh: Vec<f16> = q[h * hd..(h + 1) * hd]
                .iter()
                .map(|&v| f16::from_f32(v))
                .collect();
            let mut w = vec![0f32; n_kv];
            let keys = layer.k_rows(lo, kvh * hd);
            kt.dot_f16_ggml_strided(keys, n_embd_kv, &qh, &mut w[lo..hi]);
            scale_and_mask(&mut w, &mask, lo, hi, shape.kq_scale);
            ops::softmax(&mut w);
            let mut p16 = vec![f16::ZERO; n_kv];
            ops::to_f16_slice(&mut p16, &w);
            let mut want = vec![0f32; hd];
            kt.dot_f16_ggml_strided(layer.v_rows(kvh * hd), size, &p16, &mut want);
            for d in 0..hd {
                assert_eq!(
                    got[h * hd + d].to_bits(),
                    want[d].to_bits(),
                    "head {h} dim {d}"
                );
            }
        }
    }
}
