//! The forward pass of one ubatch, written as one readable function (llama2.c style) with the
//! reference's rounding steps where it has them (`spec/FORWARD.md` §4, §5, §8):
//! activation quantization inside the matmuls (kernels), K/V rounded to F16 in the cache, Q
//! rounded to F16 for Q·K, softmax with ggml's polynomial exp, P·V in F32 with tinyBLAS order for
//! a multi-token ubatch and in F16 for a single token, and only the output rows kept in the last
//! layer after Wo (which decides the matmul variant of the last FFN and the lm_head).
//!
//! The same graph serves `bitnet-b1.58`, `bitnet-25` and `bitnet`; they differ only in the FFN
//! activation and `bitnet`'s optional per-tensor output scales (§7).

use super::config::FfnActivation;
use super::invariant;
use super::ops;
use super::weights::Linear;
use super::Model;
use crate::alloc::SizedBy;
use crate::context::batch::{Pos, Token};
use crate::context::kv_cache::{KvCache, LayerKv};
use crate::error::{Error, Result};
use crate::kernels;
use crate::tensor::{dequantize_row, i2s_scale, GgmlType};
use half::f16;
use rayon::prelude::*;

/// One ubatch as the graph sees it. Its tokens occupy the consecutive cache cells
/// `first_cell..first_cell + tokens.len()`.
pub(crate) struct Step<'a> {
    pub tokens: &'a [Token],
    pub pos: &'a [Pos],
    pub first_cell: usize,
    /// `[tokens.len()][n_kv]`: 0 where a token may attend a cell, -inf elsewhere.
    pub mask: &'a [f32],
    pub n_kv: usize,
    /// Indices (ascending) of the tokens whose logits are wanted.
    pub outputs: &'a [usize],
    /// Compute every token as if it were alone in its ubatch and its sequence alone in the
    /// cache ([`crate::ContextParams::batch_invariant`]).
    pub batch_invariant: bool,
}

/// Receives named intermediate tensors (`name`, rows of `width` values) for debugging against
/// the numpy oracle (`tools/pyref`, `oracle.py dump` uses the same names).
pub type Tap<'t> = &'t mut (dyn FnMut(&str, &[f32], usize) + Send);

/// Buffers of the forward pass, sized once for a ubatch of `n_ubatch` tokens and a cache of
/// `n_ctx` cells, so decoding allocates nothing.
pub(crate) struct Scratch {
    n_ubatch: usize,
    x: Vec<f32>,
    cur: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    q16: Vec<f16>,
    attn_heads: Vec<f32>,
    attn: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    scores: Vec<f32>,
    probs: Vec<f32>,
    grouped: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    kernel: kernels::Scratch,
    /// Batch-invariant mode only (empty otherwise): a token's visible cells in position
    /// order, and their K rows / transposed V rows and mask gathered from the cache.
    inv: invariant::Gather,
}

impl Scratch {
    /// Allocates every buffer, failing (not aborting) with the parameter and bytes named when
    /// `n_ubatch` or `n_ctx` asks for more memory than there is.
    pub fn new(
        model: &Model,
        n_ubatch: usize,
        n_ctx: usize,
        batch_invariant: bool,
    ) -> Result<Scratch> {
        let c = model.config();
        let (e, q, kv, ff) = (c.n_embd, c.n_embd_q(), c.n_embd_kv(), c.n_ff);
        let half = c.n_rot / 2;
        let by_ubatch = SizedBy {
            param: "n_ubatch",
            value: n_ubatch,
        };
        let by_ctx = SizedBy {
            param: "n_ctx",
            value: n_ctx,
        };
        let tokens = |w: usize| n_ubatch.checked_mul(w);
        let f = |what: &str, w: usize| by_ubatch.vec(what, tokens(w), 0.0f32);
        Ok(Scratch {
            n_ubatch,
            x: f("the embeddings buffer (n_ubatch x n_embd floats)", e)?,
            cur: f("a layer buffer (n_ubatch x n_ff floats)", e.max(q).max(ff))?,
            q: f("the Q buffer", q)?,
            k: f("the K buffer", kv)?,
            v: f("the V buffer", kv)?,
            q16: by_ubatch.vec("the F16 Q buffer", tokens(q), f16::ZERO)?,
            attn_heads: f("the attention buffer", q)?,
            attn: f("the attention buffer", q)?,
            o: f("the output buffer", e)?,
            gate: f("the FFN gate buffer", ff)?,
            up: f("the FFN up buffer", ff)?,
            scores: by_ctx.vec("the attention scores", c.n_head.checked_mul(n_ctx), 0.0)?,
            probs: by_ctx.vec(
                "the attention probabilities",
                c.n_head.checked_mul(n_ctx),
                0.0,
            )?,
            grouped: vec![0.0; q],
            cos: f("the RoPE table", half)?,
            sin: f("the RoPE table", half)?,
            kernel: kernels::Scratch::new(),
            // One layer's worth of the KV cache, which is allocated (fallibly) before this.
            inv: if batch_invariant {
                invariant::Gather::new(n_ctx, c.n_embd_kv())
            } else {
                invariant::Gather::default()
            },
        })
    }
}

/// `y = W·x` for `n` rows of `x`, then the layer's optional extras. `scale_first`: the
/// attention projections apply a `bitnet` scale before the bias, `llm_build_ffn` after it.
fn linear(
    model: &Model,
    lin: &Linear,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    ks: &mut kernels::Scratch,
    scale_first: bool,
    inv: bool,
) -> Result<()> {
    let w = &lin.weight;
    let y = &mut y[..n * w.rows];
    invariant::matmul(&model.matrix(w), &x[..n * w.cols], n, y, ks, inv)?;
    let scale = |y: &mut [f32]| {
        if let Some(s) = lin.scale {
            y.iter_mut().for_each(|v| *v *= s);
        }
    };
    let bias = |y: &mut [f32]| {
        if let Some(b) = &lin.bias {
            let b = model.f32_data(b);
            for row in y.chunks_exact_mut(b.len()) {
                row.iter_mut().zip(b).for_each(|(v, &bi)| *v += bi);
            }
        }
    };
    if scale_first {
        scale(y);
        bias(y);
    } else {
        bias(y);
        scale(y);
    }
    Ok(())
}

/// Rows are independent: a prompt batch normalizes them in parallel (same bits per row).
fn rmsnorm_rows(dst: &mut [f32], src: &[f32], w: &[f32], n: usize, eps: f32) {
    let width = w.len();
    let (dst, src) = (&mut dst[..n * width], &src[..n * width]);
    if n > 1 {
        dst.par_chunks_exact_mut(width)
            .zip(src.par_chunks_exact(width))
            .for_each(|(d, s)| ops::rmsnorm_into(d, s, w, eps));
    } else {
        ops::rmsnorm_into(dst, src, w, eps);
    }
}

/// Keeps rows `keep` (ascending) of a row-major buffer, moved to the front.
fn gather_rows(buf: &mut [f32], width: usize, keep: &[usize]) {
    for (dst, &src) in keep.iter().enumerate() {
        if dst != src {
            buf.copy_within(src * width..(src + 1) * width, dst * width);
        }
    }
}

/// Evaluates one ubatch: stores its K/V in the cache and writes the logits of `step.outputs`
/// (in that order) into `logits` (`outputs.len() * n_vocab` values).
pub(crate) fn forward(
    model: &Model,
    kv: &mut KvCache,
    step: &Step,
    s: &mut Scratch,
    logits: &mut [f32],
    mut tap: Option<Tap>,
) -> Result<()> {
    let c = model.config();
    let w = model.weights();
    let nt = step.tokens.len();
    let (e, nq, nkv, ff, hd) = (c.n_embd, c.n_embd_q(), c.n_embd_kv(), c.n_ff, c.head_dim);
    let eps = c.rms_eps;
    if nt == 0 || nt > s.n_ubatch || step.n_kv > kv.size() || step.first_cell + nt > kv.size() {
        return Err(Error::internal(format!(
            "forward: ubatch of {nt} tokens at cell {} (n_kv {}) does not fit the buffers",
            step.first_cell, step.n_kv
        )));
    }
    let mut show = |name: &dyn Fn() -> String, v: &[f32], width: usize| {
        if let Some(t) = tap.as_mut() {
            t(&name(), v, width);
        }
    };

    // Embedding rows, dequantized exactly (get_rows).
    let emb = &w.token_embd;
    let emb_data = model.tensor_data(emb);
    let row_bytes = emb.ty.row_bytes(e).unwrap_or(0);
    let emb_scale = if emb.ty == GgmlType::I2_S {
        i2s_scale(emb_data, emb.rows * emb.cols).unwrap_or(0.0)
    } else {
        0.0
    };
    for (t, &id) in step.tokens.iter().enumerate() {
        let at = usize::try_from(id).ok().filter(|&i| i < emb.rows);
        let row = at
            .and_then(|i| emb_data.get(i * row_bytes..(i + 1) * row_bytes))
            .ok_or_else(|| {
                Error::invalid_token(format!("token id {id} is not in the vocabulary"))
            })?;
        dequantize_row(emb.ty, row, &mut s.x[t * e..(t + 1) * e], emb_scale)?;
    }
    show(&|| "token_embd".into(), &s.x[..nt * e], e);

    // RoPE angles per token, shared by every layer and by Q and K.
    let half = c.n_rot / 2;
    let theta_scale = ops::rope_theta_scale(c.rope_freq_base, c.n_rot);
    for (t, &p) in step.pos.iter().enumerate() {
        ops::rope_angles(
            p,
            theta_scale,
            w.rope_freqs.as_deref(),
            &mut s.cos[t * half..(t + 1) * half],
            &mut s.sin[t * half..(t + 1) * half],
        );
    }

    let kq_scale = 1.0f32 / (hd as f32).sqrt();
    let size = kv.size();
    let inv = step.batch_invariant;
    if inv {
        s.inv.visible_cells(kv, step);
    }
    let mut n = nt; // rows alive in x (all but in the last layer's FFN)
    for (il, lw) in w.layers.iter().enumerate() {
        let name = |what: &str| format!("blk.{il}.{what}");

        // Attention block.
        rmsnorm_rows(&mut s.cur, &s.x, model.f32_data(&lw.attn_norm), nt, eps);
        show(&|| name("attn_norm"), &s.cur[..nt * e], e);
        linear(
            model,
            &lw.wq,
            &s.cur,
            nt,
            &mut s.q,
            &mut s.kernel,
            true,
            inv,
        )?;
        linear(
            model,
            &lw.wk,
            &s.cur,
            nt,
            &mut s.k,
            &mut s.kernel,
            true,
            inv,
        )?;
        linear(
            model,
            &lw.wv,
            &s.cur,
            nt,
            &mut s.v,
            &mut s.kernel,
            true,
            inv,
        )?;
        show(&|| name("q"), &s.q[..nt * nq], nq);
        show(&|| name("k"), &s.k[..nt * nkv], nkv);
        show(&|| name("v"), &s.v[..nt * nkv], nkv);
        // RoPE per token (tokens in parallel for a prompt batch; each head is independent).
        let rope_token = |(t, (q, k)): (usize, (&mut [f32], &mut [f32]))| {
            let (cos, sin) = (
                &s.cos[t * half..(t + 1) * half],
                &s.sin[t * half..(t + 1) * half],
            );
            for head in q.chunks_exact_mut(hd).chain(k.chunks_exact_mut(hd)) {
                ops::rope_neox(head, cos, sin);
            }
        };
        let (qs, ks) = (&mut s.q[..nt * nq], &mut s.k[..nt * nkv]);
        if nt > 1 {
            qs.par_chunks_exact_mut(nq)
                .zip(ks.par_chunks_exact_mut(nkv))
                .enumerate()
                .for_each(rope_token);
        } else {
            qs.chunks_exact_mut(nq)
                .zip(ks.chunks_exact_mut(nkv))
                .enumerate()
                .for_each(rope_token);
        }
        show(&|| name("q_rope"), &s.q[..nt * nq], nq);
        show(&|| name("k_rope"), &s.k[..nt * nkv], nkv);

        // Store K (row per cell) and V (transposed) in the F16 cache.
        let layer_kv = &mut kv.layers[il];
        for t in 0..nt {
            let cell = step.first_cell + t;
            let krow = &mut layer_kv.k[cell * nkv..(cell + 1) * nkv];
            ops::to_f16_slice(krow, &s.k[t * nkv..(t + 1) * nkv]);
            for (d, &src) in s.v[t * nkv..(t + 1) * nkv].iter().enumerate() {
                layer_kv.v[d * size + cell] = ops::to_f16(src);
            }
        }

        let last = il + 1 == c.n_layer;
        if last && step.outputs.is_empty() {
            // Nothing downstream is observable: the cache is filled, stop here.
            return Ok(());
        }

        let shape = AttnShape {
            n_head: c.n_head,
            group: c.n_head / c.n_head_kv,
            hd,
            size,
            kq_scale,
        };
        if inv {
            // Each token alone: the single-token path over its own cells in position order.
            ops::round_to_f16(&mut s.q[..nt * nq]);
            for t in 0..nt {
                let (k, v, mask) = s.inv.gather(&kv.layers[il], t, nkv, size);
                let one = AttnShape {
                    size: mask.len(),
                    ..shape
                };
                attention_token(
                    &one,
                    k,
                    v,
                    &s.q[t * nq..(t + 1) * nq],
                    mask,
                    &mut s.attn[t * nq..(t + 1) * nq],
                    &mut s.scores,
                    &mut s.probs,
                    &mut s.grouped,
                );
            }
        } else if nt == 1 {
            // Q rounded to F16 (FORWARD.md §5), kept widened for the grouped kernels.
            ops::round_to_f16(&mut s.q[..nq]);
            let layer = &kv.layers[il];
            attention_token(
                &shape,
                &layer.k,
                &layer.v,
                &s.q[..nq],
                &step.mask[..step.n_kv],
                // One token: head-major is already the token's concatenation of heads.
                &mut s.attn[..nq],
                &mut s.scores,
                &mut s.probs,
                &mut s.grouped,
            );
        } else {
            ops::to_f16_slice(&mut s.q16[..nt * nq], &s.q[..nt * nq]);
            attention_prompt(
                &shape,
                &kv.layers[il],
                &s.q16[..nt * nq],
                step,
                &mut s.attn_heads,
                &mut s.scores,
            );
            // Heads were computed head-major; concatenate them per token.
            for h in 0..c.n_head {
                for t in 0..nt {
                    let src = &s.attn_heads[(h * nt + t) * hd..(h * nt + t + 1) * hd];
                    s.attn[t * nq + h * hd..t * nq + (h + 1) * hd].copy_from_slice(src);
                }
            }
        }
        show(&|| name("attn_out"), &s.attn[..nt * nq], nq);
        rmsnorm_rows(
            &mut s.cur,
            &s.attn,
            model.f32_data(&lw.attn_sub_norm),
            nt,
            eps,
        );
        show(&|| name("attn_sub_norm"), &s.cur[..nt * nq], nq);
        linear(
            model,
            &lw.wo,
            &s.cur,
            nt,
            &mut s.o,
            &mut s.kernel,
            true,
            inv,
        )?;
        show(&|| name("wo_out"), &s.o[..nt * e], e);

        if last {
            // Only the output rows go on (llama.cpp's inp_out_ids), after Wo.
            gather_rows(&mut s.o, e, step.outputs);
            gather_rows(&mut s.x, e, step.outputs);
            n = step.outputs.len();
        }
        for (x, &o) in s.x[..n * e].iter_mut().zip(&s.o[..n * e]) {
            *x += o; // float addition commutes: same bits as ggml_add(cur, inpSA)
        }
        show(&|| name("attn_resid"), &s.x[..n * e], e);

        // FFN block.
        rmsnorm_rows(&mut s.cur, &s.x, model.f32_data(&lw.ffn_norm), n, eps);
        show(&|| name("ffn_norm"), &s.cur[..n * e], e);
        linear(
            model,
            &lw.ffn_gate,
            &s.cur,
            n,
            &mut s.gate,
            &mut s.kernel,
            false,
            inv,
        )?;
        linear(
            model,
            &lw.ffn_up,
            &s.cur,
            n,
            &mut s.up,
            &mut s.kernel,
            false,
            inv,
        )?;
        show(&|| name("ffn_gate"), &s.gate[..n * ff], ff);
        show(&|| name("ffn_up"), &s.up[..n * ff], ff);
        match c.ffn_activation {
            FfnActivation::ReluSquared if n > 1 => s.gate[..n * ff]
                .par_chunks_mut(ff)
                .zip(s.up.par_chunks(ff))
                .for_each(|(g, u)| ops::relu_squared_mul(g, u)),
            FfnActivation::ReluSquared => ops::relu_squared_mul(&mut s.gate[..n * ff], &s.up),
            FfnActivation::Silu => {
                for (g, u) in s.gate[..n * ff]
                    .chunks_exact_mut(ff)
                    .zip(s.up.chunks_exact(ff))
                {
                    ops::silu_mul(g, u);
                }
            }
        }
        show(&|| name("ffn_act"), &s.gate[..n * ff], ff);
        rmsnorm_rows(
            &mut s.cur,
            &s.gate,
            model.f32_data(&lw.ffn_sub_norm),
            n,
            eps,
        );
        show(&|| name("ffn_sub_norm"), &s.cur[..n * ff], ff);
        linear(
            model,
            &lw.ffn_down,
            &s.cur,
            n,
            &mut s.o,
            &mut s.kernel,
            false,
            inv,
        )?;
        show(&|| name("ffn_down"), &s.o[..n * e], e);
        for (x, &d) in s.x[..n * e].iter_mut().zip(&s.o[..n * e]) {
            *x += d;
        }
        show(&|| name("out"), &s.x[..n * e], e);
    }

    rmsnorm_rows(&mut s.cur, &s.x, model.f32_data(&w.output_norm), n, eps);
    show(&|| "output_norm".into(), &s.cur[..n * e], e);
    // lm_head: the tied embedding table (these archs never use output.weight), or its Q8_0
    // copy when the model was loaded with `head_q8_0`.
    let n_vocab = c.n_vocab;
    invariant::matmul(
        &model.head_matrix(),
        &s.cur[..n * e],
        n,
        &mut logits[..n * n_vocab],
        &mut s.kernel,
        inv,
    )?;
    show(&|| "logits".into(), &logits[..n * n_vocab], n_vocab);
    Ok(())
}

/// The attention geometry of one layer.
#[derive(Clone, Copy)]
struct AttnShape {
    n_head: usize,
    /// Query heads per KV head (GQA).
    group: usize,
    hd: usize,
    /// Cells in the cache: the stride of a transposed V row.
    size: usize,
    kq_scale: f32,
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

/// Cells per parallel Q·K task of [`attention_token`], and V rows per P·V task.
const QK_CELLS_PER_TASK: usize = 256;
const PV_ROWS_PER_TASK: usize = 32;

/// Single-token (decode) attention over `mask.len()` cells, out `[head][hd]`. The `group`
/// query heads of each KV head go through the kernels together, so every cached K row and V
/// row is read and widened once for the group rather than once per head; each head's products
/// and sums are unchanged, so are the bits. Three parallel phases, each split finely enough to
/// keep both cores busy with only a few KV heads:
/// 1. Q·K per (KV head, span of cells) into `scores` as `[kv head][cell][group]`;
/// 2. per head: scale, mask, softmax, and P rounded to F16 (ggml_vec_dot_f16 takes P in F16 for
///    a single token, FORWARD.md §5) into `probs` as `[head][cell]`;
/// 3. P·V per (KV head, span of V rows) into `grouped` as `[kv head][d][group]`, then
///    transposed to `out`.
#[allow(clippy::too_many_arguments)]
fn attention_token(
    a: &AttnShape,
    layer_k: &[f16],
    layer_v: &[f16],
    q: &[f32],
    mask: &[f32],
    out: &mut [f32],
    scores: &mut [f32],
    probs: &mut [f32],
    grouped: &mut [f32],
) {
    let (g, hd, n_kv) = (a.group, a.hd, mask.len());
    let n_embd_kv = (a.n_head / g) * hd;
    let (lo, hi) = visible_span(mask);
    if n_kv == 0 || hd == 0 {
        out.fill(0.0);
        return;
    }

    scores[..a.n_head * n_kv]
        .par_chunks_mut(g * n_kv)
        .enumerate()
        .for_each(|(kvh, sg)| {
            let qg = &q[kvh * g * hd..(kvh + 1) * g * hd];
            sg[lo * g..hi * g]
                .par_chunks_mut(g * QK_CELLS_PER_TASK)
                .enumerate()
                .for_each(|(i, part)| {
                    let first = lo + i * QK_CELLS_PER_TASK;
                    let keys = &layer_k[first * n_embd_kv + kvh * hd..];
                    kernels::dot_f16_ggml_strided_group(keys, n_embd_kv, qg, g, part);
                });
        });

    let scores = &scores[..a.n_head * n_kv];
    probs[..a.n_head * n_kv]
        .par_chunks_mut(n_kv)
        .enumerate()
        .for_each(|(h, p)| {
            let (kvh, t) = (h / g, h % g);
            let sg = &scores[kvh * g * n_kv..(kvh + 1) * g * n_kv];
            for (pj, s) in p[lo..hi]
                .iter_mut()
                .zip(sg[lo * g..].iter().skip(t).step_by(g))
            {
                *pj = *s;
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
            // The V rows of this KV head: row d is cell-contiguous, `size` apart.
            let v_rows = &layer_v[(kvh * hd + d0) * a.size..];
            let pg = &probs[kvh * g * n_kv..(kvh + 1) * g * n_kv];
            kernels::dot_f16_ggml_strided_group(v_rows, a.size, pg, g, part);
        });
    for (kvh, gk) in grouped[..a.n_head * hd].chunks_exact(g * hd).enumerate() {
        for (d, row) in gk.chunks_exact(g).enumerate() {
            for (t, &v) in row.iter().enumerate() {
                out[(kvh * g + t) * hd + d] = v;
            }
        }
    }
}

/// Causal GQA attention of a multi-token ubatch over the first `step.n_kv` cells, head-major
/// output `out[h][t][hd]`. Heads run in parallel (each is independent, so the bits do not
/// depend on the thread count); `scores` gives each head a row of `size` values. P stays F32
/// and P·V takes llamafile's tinyBLAS order, as the reference's sgemm does for 2+ tokens
/// (FORWARD.md §5).
fn attention_prompt(
    a: &AttnShape,
    layer: &LayerKv,
    q16: &[f16],
    step: &Step,
    out: &mut [f32],
    scores: &mut [f32],
) {
    let (n_head, group, hd, size) = (a.n_head, a.group, a.hd, a.size);
    let nt = step.tokens.len();
    let n_kv = step.n_kv;
    let nq = n_head * hd;
    let n_embd_kv = (n_head / group) * hd;
    out[..n_head * nt * hd]
        .par_chunks_mut(nt * hd)
        .zip(scores.par_chunks_mut(size))
        .enumerate()
        .for_each(|(h, (out_h, w))| {
            let kvh = h / group;
            let w = &mut w[..n_kv];
            for t in 0..nt {
                let q = &q16[t * nq + h * hd..t * nq + (h + 1) * hd];
                let mask = &step.mask[t * n_kv..(t + 1) * n_kv];
                let (lo, hi) = visible_span(mask);
                if lo < hi {
                    let keys = &layer.k[lo * n_embd_kv + kvh * hd..];
                    kernels::dot_f16_ggml_strided(keys, n_embd_kv, q, &mut w[lo..hi]);
                }
                scale_and_mask(w, mask, lo, hi, a.kq_scale);
                ops::softmax(w);
                let o = &mut out_h[t * hd..(t + 1) * hd];
                // The V rows of this kv head: row d is cell-contiguous, `size` apart.
                let v_head = &layer.v[kvh * hd * size..];
                kernels::dot_f16_f32_tinyblas_strided(v_head, size, w, o);
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
        let layer = LayerKv {
            k: (0..size * n_embd_kv)
                .map(|_| f16::from_f32(rnd()))
                .collect(),
            v: (0..n_embd_kv * size)
                .map(|_| f16::from_f32(rnd()))
                .collect(),
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
            size,
            kq_scale: 1.0 / (hd as f32).sqrt(),
        };

        let mut got = vec![f32::NAN; n_head * hd];
        let (mut scores, mut probs, mut grouped) = (
            vec![0f32; n_head * size],
            vec![0f32; n_head * size],
            vec![0f32; n_head * hd],
        );
        attention_token(
            &shape,
            &layer.k,
            &layer.v,
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
            let keys = &layer.k[lo * n_embd_kv + kvh * hd..];
            kernels::dot_f16_ggml_strided(keys, n_embd_kv, &qh, &mut w[lo..hi]);
            scale_and_mask(&mut w, &mask, lo, hi, shape.kq_scale);
            ops::softmax(&mut w);
            let mut p16 = vec![f16::ZERO; n_kv];
            ops::to_f16_slice(&mut p16, &w);
            let mut want = vec![0f32; hd];
            kernels::dot_f16_ggml_strided(&layer.v[kvh * hd * size..], size, &p16, &mut want);
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
