//! One descriptor per weight type (as candle's quantized module has one `GgmlType` impl per
//! block type): the activation format the reference multiplies that weight type with, how the
//! activations are prepared into scratch, which [`KernelTable`] entry computes the product and
//! the row-split granularity. [`super::matmul_with`] picks the descriptor from the type and runs
//! the one generic driver over it; a new weight type is one more descriptor and one match arm.

use super::act::quantize_row_q8_0;
use super::matmul::{part, Arena};
use super::{I8Rows, KernelTable, MatDims};
use crate::tensor::blocks::{
    BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, Pod, QK8_0, QK_K,
};
use half::f16;
use rayon::prelude::*;

/// How one weight type is multiplied.
pub(super) trait WeightType {
    /// The typed unit of a weight row (a block, a float, or an I2_S code byte).
    type W: Pod + Sync;
    /// The prepared activations one call hands to every row chunk.
    type Act<'a>: Sync;
    /// Inputs per `W`: a row of `k` inputs is `k / INPUTS_PER_ITEM` items, the granularity
    /// the driver splits rows at.
    const INPUTS_PER_ITEM: usize;
    /// Scratch bytes [`WeightType::prepare`] takes for `n_tok` rows of `k` inputs.
    fn scratch_bytes(n_tok: usize, k: usize) -> usize;
    /// The activations `x` (`n_tok` rows of `k`) in this type's format, in `arena`.
    fn prepare<'a>(
        kt: &KernelTable,
        x: &'a [f32],
        n_tok: usize,
        k: usize,
        arena: &mut Arena<'a>,
    ) -> Self::Act<'a>;
    /// The table entry for `d.rows` weight rows `w` (`w_scale`: the I2_S per-tensor scale).
    fn kernel(
        kt: &KernelTable,
        w: &[Self::W],
        w_scale: f32,
        act: &Self::Act<'_>,
        d: MatDims,
        out: &mut [f32],
    );
}

/// I2_S: each activation row quantized to int8 with its own scale and sum (I2_S.md §4), in
/// parallel for a batch (rows are independent); `kt.i2s_vec` for one token, `kt.i2s` for more.
pub(super) struct I2S;

/// One token's activation row, its int8 row, and its scale and sum (I2_S preparation).
type TokenRow<'a> = ((&'a [f32], &'a mut [i8]), (&'a mut f32, &'a mut i32));

impl WeightType for I2S {
    type W = u8;
    type Act<'a> = I8Rows<'a>;
    const INPUTS_PER_ITEM: usize = 4;
    fn scratch_bytes(n_tok: usize, k: usize) -> usize {
        part::<i8>(n_tok * k) + part::<f32>(n_tok) + part::<i32>(n_tok)
    }
    fn prepare<'a>(
        kt: &KernelTable,
        x: &'a [f32],
        n_tok: usize,
        k: usize,
        arena: &mut Arena<'a>,
    ) -> I8Rows<'a> {
        let q = arena.take::<i8>(n_tok * k);
        let s = arena.take::<f32>(n_tok);
        let sum = arena.take::<i32>(n_tok);
        let quantize = |((xt, qt), (st, sumt)): TokenRow| {
            (*st, *sumt) = (kt.quantize_i8)(xt, qt);
        };
        if n_tok > 1 {
            x.par_chunks_exact(k)
                .zip(q.par_chunks_exact_mut(k))
                .zip(s.par_iter_mut().zip(sum.par_iter_mut()))
                .for_each(quantize);
        } else {
            x.chunks_exact(k)
                .zip(q.chunks_exact_mut(k))
                .zip(s.iter_mut().zip(sum.iter_mut()))
                .for_each(quantize);
        }
        I8Rows { q, scale: s, sum }
    }
    fn kernel(kt: &KernelTable, w: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
        let product = if d.n_tok == 1 { kt.i2s_vec } else { kt.i2s };
        product(w, w_scale, act, d, out)
    }
}

/// The Q8_K activations of TQ2_0 / TQ1_0 / Q6_K (I2_S.md §6a): each row quantized to Q8_K
/// blocks with the table's quantizer, in parallel for a batch.
fn prepare_q8k<'a>(
    kt: &KernelTable,
    x: &'a [f32],
    n_tok: usize,
    k: usize,
    arena: &mut Arena<'a>,
) -> &'a [BlockQ8K] {
    let nb = k / QK_K;
    let a = arena.take::<BlockQ8K>(n_tok * nb);
    if n_tok > 1 {
        x.par_chunks_exact(k)
            .zip(a.par_chunks_exact_mut(nb))
            .for_each(|(xt, at)| (kt.quantize_q8k)(xt, at));
    } else {
        (kt.quantize_q8k)(x, a);
    }
    a
}

/// The Q8_0 activations: x quantized like ggml's AVX2 `quantize_row_q8_0` (the same function
/// for every table).
fn prepare_q8_0<'a>(
    _kt: &KernelTable,
    x: &'a [f32],
    n_tok: usize,
    k: usize,
    arena: &mut Arena<'a>,
) -> &'a [BlockQ8_0] {
    let a = arena.take::<BlockQ8_0>(n_tok * (k / QK8_0));
    quantize_row_q8_0(x, a);
    a
}

/// Defines a block-quantized weight type `$name`: weights of `$block`s of `$qk` inputs against
/// activation blocks `$act` (same `$qk`) prepared by `$prepare`, product `kt.$entry`.
macro_rules! block_weight_type {
    ($(#[$doc:meta])* $name:ident, $block:ty, $act:ty, $qk:expr, $prepare:ident, $entry:ident) => {
        $(#[$doc])*
        pub(super) struct $name;

        impl WeightType for $name {
            type W = $block;
            type Act<'a> = &'a [$act];
            const INPUTS_PER_ITEM: usize = $qk;
            fn scratch_bytes(n_tok: usize, k: usize) -> usize {
                part::<$act>(n_tok * (k / $qk))
            }
            fn prepare<'a>(
                kt: &KernelTable,
                x: &'a [f32],
                n_tok: usize,
                k: usize,
                arena: &mut Arena<'a>,
            ) -> &'a [$act] {
                $prepare(kt, x, n_tok, k, arena)
            }
            fn kernel(
                kt: &KernelTable,
                w: &[$block],
                _w_scale: f32,
                act: &&[$act],
                d: MatDims,
                out: &mut [f32],
            ) {
                (kt.$entry)(w, act, d, out)
            }
        }
    };
}

block_weight_type!(
    /// TQ2_0 x Q8_K; `kt.tq2_0`.
    TQ2_0, BlockTQ2_0, BlockQ8K, QK_K, prepare_q8k, tq2_0
);
block_weight_type!(
    /// TQ1_0 x Q8_K; `kt.tq1_0`.
    TQ1_0, BlockTQ1_0, BlockQ8K, QK_K, prepare_q8k, tq1_0
);
block_weight_type!(
    /// Q6_K x Q8_K; `kt.q6_k`.
    Q6K, BlockQ6K, BlockQ8K, QK_K, prepare_q8k, q6_k
);
block_weight_type!(
    /// Q8_0 x Q8_0; `kt.q8_0`.
    Q8_0, BlockQ8_0, BlockQ8_0, QK8_0, prepare_q8_0, q8_0
);

/// The activations of a float weight type: f32 rows for tinyBLAS order (2+ tokens and
/// K % 8 == 0, FORWARD.md §8), else rows of `X` for the `ggml_vec_dot` order.
pub(super) enum FloatAct<'a, X> {
    Tinyblas(&'a [f32]),
    Ggml(&'a [X]),
}

/// Whether the reference multiplies a float matrix in tinyBLAS order: 2+ tokens and K % 8 == 0
/// (with K % 8 != 0 sgemm refuses and ggml falls back to the per-row vec_dot).
fn tinyblas(n_tok: usize, k: usize) -> bool {
    n_tok >= 2 && k.is_multiple_of(8)
}

/// F16: tinyBLAS with f32 x (`kt.f16_tinyblas`), or x rounded to f16 and `ggml_vec_dot_f16`
/// order (`kt.f16_ggml`).
pub(super) struct F16;

impl WeightType for F16 {
    type W = f16;
    type Act<'a> = FloatAct<'a, f16>;
    const INPUTS_PER_ITEM: usize = 1;
    fn scratch_bytes(n_tok: usize, k: usize) -> usize {
        if tinyblas(n_tok, k) {
            0
        } else {
            part::<f16>(n_tok * k)
        }
    }
    fn prepare<'a>(
        _kt: &KernelTable,
        x: &'a [f32],
        n_tok: usize,
        k: usize,
        arena: &mut Arena<'a>,
    ) -> FloatAct<'a, f16> {
        if tinyblas(n_tok, k) {
            return FloatAct::Tinyblas(x);
        }
        let xh = arena.take::<f16>(n_tok * k);
        for (h, &v) in xh.iter_mut().zip(x) {
            *h = f16::from_f32(v);
        }
        FloatAct::Ggml(xh)
    }
    fn kernel(
        kt: &KernelTable,
        w: &[f16],
        _w_scale: f32,
        act: &FloatAct<f16>,
        d: MatDims,
        out: &mut [f32],
    ) {
        match *act {
            FloatAct::Tinyblas(x) => (kt.f16_tinyblas)(w, x, d, out),
            FloatAct::Ggml(x) => (kt.f16_ggml)(w, x, d, out),
        }
    }
}

/// F16 with every token in the single-token order, whatever the number of tokens (batch-
/// invariant serving, `model/invariant.rs`): x rounded to f16 and `ggml_vec_dot_f16` order,
/// through `kt.f16_ggml_strided_group`, which is bit-identical to `kt.f16_ggml` per token
/// (tested against scalar) and reads each weight row once for up to four tokens. Rows go in
/// tiles small enough to stay in L2 while every group of four tokens passes over them, so a
/// batch of n tokens streams the matrix from memory once instead of n times.
pub(super) struct F16PerToken;

/// Rows of an [`F16PerToken`] tile: 64 rows of the 2B-4T head (2560 halves each) are 320 KiB,
/// inside any L2 this library targets.
const PER_TOKEN_TILE_ROWS: usize = 64;

impl WeightType for F16PerToken {
    type W = f16;
    type Act<'a> = &'a [f32];
    const INPUTS_PER_ITEM: usize = 1;
    fn scratch_bytes(n_tok: usize, k: usize) -> usize {
        part::<f32>(n_tok * k)
    }
    fn prepare<'a>(
        _kt: &KernelTable,
        x: &'a [f32],
        n_tok: usize,
        k: usize,
        arena: &mut Arena<'a>,
    ) -> &'a [f32] {
        // Rounded to f16 as the single-token path does, then widened back (exact).
        let xw = arena.take::<f32>(n_tok * k);
        for (o, &v) in xw.iter_mut().zip(x) {
            *o = f16::from_f32(v).to_f32();
        }
        xw
    }
    fn kernel(
        kt: &KernelTable,
        w: &[f16],
        _w_scale: f32,
        act: &&[f32],
        d: MatDims,
        out: &mut [f32],
    ) {
        let (k, n) = (d.k, d.n_tok);
        for (wt, ot) in w
            .chunks(PER_TOKEN_TILE_ROWS * k)
            .zip(out.chunks_mut(PER_TOKEN_TILE_ROWS * n))
        {
            kt.dot_f16_ggml_strided_group(wt, k, act, n, ot);
        }
    }
}

/// F32 with every token in the single-token `ggml_vec_dot_f32` order (batch-invariant
/// serving), x as is.
pub(super) struct F32PerToken;

impl WeightType for F32PerToken {
    type W = f32;
    type Act<'a> = &'a [f32];
    const INPUTS_PER_ITEM: usize = 1;
    fn scratch_bytes(_n_tok: usize, _k: usize) -> usize {
        0
    }
    fn prepare<'a>(
        _kt: &KernelTable,
        x: &'a [f32],
        _n_tok: usize,
        _k: usize,
        _arena: &mut Arena<'a>,
    ) -> &'a [f32] {
        x
    }
    fn kernel(
        kt: &KernelTable,
        w: &[f32],
        _w_scale: f32,
        act: &&[f32],
        d: MatDims,
        out: &mut [f32],
    ) {
        (kt.f32_ggml)(w, act, d, out)
    }
}

/// F32: tinyBLAS (`kt.f32_tinyblas`) or `ggml_vec_dot_f32` order (`kt.f32_ggml`), x as is.
pub(super) struct F32;

impl WeightType for F32 {
    type W = f32;
    type Act<'a> = FloatAct<'a, f32>;
    const INPUTS_PER_ITEM: usize = 1;
    fn scratch_bytes(_n_tok: usize, _k: usize) -> usize {
        0
    }
    fn prepare<'a>(
        _kt: &KernelTable,
        x: &'a [f32],
        n_tok: usize,
        k: usize,
        _arena: &mut Arena<'a>,
    ) -> FloatAct<'a, f32> {
        if tinyblas(n_tok, k) {
            FloatAct::Tinyblas(x)
        } else {
            FloatAct::Ggml(x)
        }
    }
    fn kernel(
        kt: &KernelTable,
        w: &[f32],
        _w_scale: f32,
        act: &FloatAct<f32>,
        d: MatDims,
        out: &mut [f32],
    ) {
        match *act {
            FloatAct::Tinyblas(x) => (kt.f32_tinyblas)(w, x, d, out),
            FloatAct::Ggml(x) => (kt.f32_ggml)(w, x, d, out),
        }
    }
}
