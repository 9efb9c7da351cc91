//! The forward pass of one ubatch, written as one readable function (llama2.c style) with the
//! reference's rounding steps where it has them (`spec/FORWARD.md` §4, §5, §8):
//! activation quantization inside the matmuls (kernels), K/V rounded to F16 in the cache, Q
//! rounded to F16 for Q·K, softmax with ggml's polynomial exp, P·V in F32 with tinyBLAS order for
//! a multi-token ubatch and in F16 for a single token, and only the output rows kept in the last
//! layer after Wo (which decides the matmul variant of the last FFN and the lm_head).
//!
//! The same graph serves `bitnet-b1.58`, `bitnet-25` and `bitnet`; they differ only in the FFN
//! activation and `bitnet`'s optional per-tensor output scales (§7).

use super::attention::{self, AttnShape};
use super::config::FfnActivation;
use super::invariant;
use super::ops;
use super::weights::Linear;
use super::Model;
use crate::alloc::SizedBy;
use crate::error::{Error, Result};
use crate::kernels::{self, KernelTable};
use crate::kv::KvCache;
use crate::tensor::dequantize_row;
use crate::types::{Pos, Token};
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
pub(crate) type Tap<'t> = &'t mut (dyn FnMut(&str, &[f32], usize) + Send);

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
    pub(crate) fn new(
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
    kt: &KernelTable,
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
    invariant::matmul(kt, &model.matrix(w), &x[..n * w.cols], n, y, ks, inv)?;
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
/// (in that order) into `logits` (`outputs.len() * n_vocab` values) and, when `embd` is given,
/// their final-norm outputs (the embeddings, `outputs.len() * n_embd` values) into it. Without
/// `logits` the lm_head is skipped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward(
    kt: &KernelTable,
    model: &Model,
    kv: &mut KvCache,
    step: &Step,
    s: &mut Scratch,
    logits: Option<&mut [f32]>,
    embd: Option<&mut [f32]>,
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
    let emb_scale = emb.scale;
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
            kt,
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
            kt,
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
            kt,
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

        // Store K and V in the F16 cache (the cache knows its layout).
        for t in 0..nt {
            let (k, v) = (&s.k[t * nkv..(t + 1) * nkv], &s.v[t * nkv..(t + 1) * nkv]);
            kv.store(il, step.first_cell + t, k, v);
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
            kq_scale,
        };
        if inv {
            // Each token alone: the single-token path over its own cells in position order.
            ops::round_to_f16(&mut s.q[..nt * nq]);
            for t in 0..nt {
                let (layer, mask) = s.inv.gather(kv.layer(il), t);
                attention::attention_token(
                    kt,
                    &shape,
                    layer,
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
            attention::attention_token(
                kt,
                &shape,
                kv.layer(il),
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
            attention::attention_prompt(
                kt,
                &shape,
                kv.layer(il),
                &s.q16[..nt * nq],
                nt,
                &step.mask[..nt * step.n_kv],
                step.n_kv,
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
            kt,
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
            kt,
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
            kt,
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
            kt,
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
    // The embeddings: llama.cpp's `result_norm` (t_embd), the lm_head's input.
    if let Some(embd) = embd {
        embd[..n * e].copy_from_slice(&s.cur[..n * e]);
    }
    let Some(logits) = logits else {
        return Ok(());
    };
    // lm_head: the tied embedding table (these archs never use output.weight), or its Q8_0
    // copy when the model was loaded with `head_q8_0`.
    let n_vocab = c.n_vocab;
    invariant::matmul(
        kt,
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

/// The K-shift (llama.cpp's `build_k_shift`): re-rotates the cached K of every cell whose
/// position moved (seq_add / seq_div) by NEOX RoPE over the accumulated delta, on the F16
/// values, head by head.
pub(crate) fn shift_k(model: &Model, kv: &mut KvCache) {
    if !kv.has_shift() {
        return;
    }
    let c = model.config();
    let theta_scale = ops::rope_theta_scale(c.rope_freq_base, c.n_rot);
    let freqs = model.weights().rope_freqs.as_deref();
    let (mut cos, mut sin) = (vec![0.0; c.n_rot / 2], vec![0.0; c.n_rot / 2]);
    kv.shift_k(|delta, rows| {
        ops::rope_angles(delta, theta_scale, freqs, &mut cos, &mut sin);
        rows.for_each_row(|row| {
            for head in row.chunks_exact_mut(c.head_dim) {
                ops::rope_neox_f16(head, &cos, &sin);
            }
        });
    });
}
