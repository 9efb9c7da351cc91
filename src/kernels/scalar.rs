//! The scalar kernels: plain Rust written straight from `spec/I2_S.md` §5–§8 and
//! `spec/FORWARD.md` §8, one output at a time. This is the truth every other variant is tested
//! against, so clarity beats speed here; the float kernels still keep the reference's exact
//! lane structure (8 lanes, the same fma/no-fma choices, the same horizontal sums) because that
//! order is part of the result.

use super::{I8Rows, KernelTable, Kind, MatDims};
use crate::kernels::act;
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK_K};
use crate::tensor::{q6k_values, tq1_0_trits};
use half::f16;

pub(super) static TABLE: KernelTable = KernelTable {
    kind: Kind::Scalar,
    i2s: i2s_matmul,
    i2s_vec: i2s_matmul,
    tq2_0: tq2_0_matmul,
    tq1_0: tq1_0_matmul,
    q6_k: q6_k_matmul,
    q8_0: q8_0_matmul,
    f16_ggml: f16_ggml_matmul,
    f16_tinyblas: f16_tinyblas_matmul,
    f32_ggml: f32_ggml_matmul,
    f32_tinyblas: f32_tinyblas_matmul,
    dot_f32_ggml,
    dot_f16_ggml,
    dot_f32_tinyblas,
    dot_f16_f32_tinyblas,
    f16_ggml_strided,
    f16_tinyblas_strided,
    f16_ggml_strided_group,
    quantize_i8: act::quantize_row_i8,
    quantize_q8k: act::quantize_row_q8k,
};

fn f16_to_f32(bits: u16) -> f32 {
    f16::from_bits(bits).to_f32()
}

/// The I2_S epilogue (I2_S.md §5): subtract, divide by the act scale, multiply by the weight
/// scale, each a float32 operation in this order. Shared by every variant so they cannot drift.
#[inline(always)]
pub(crate) fn i2s_epilogue(dot: i32, sum: i32, act_scale: f32, w_scale: f32) -> f32 {
    ((dot as f32 - sum as f32) / act_scale) * w_scale
}

/// ggml's `hsum_float_8` / tinyBLAS `hsum`: `t[l] = acc[l+4] + acc[l]`, `(t0+t2) + (t1+t3)`.
#[inline(always)]
pub(crate) fn hsum8(acc: &[f32; 8]) -> f32 {
    let t = [
        acc[4] + acc[0],
        acc[5] + acc[1],
        acc[6] + acc[2],
        acc[7] + acc[3],
    ];
    (t[0] + t[2]) + (t[1] + t[3])
}

/// `GGML_F32x8_REDUCE` over 4 accumulators: `a = acc0+acc2`, `b = acc1+acc3`, `a = a+b`,
/// `t[l] = a[l] + a[l+4]`, `(t0+t1) + (t2+t3)`.
#[inline(always)]
pub(crate) fn reduce_4x8(acc: &[[f32; 8]; 4]) -> f32 {
    let mut a = [0f32; 8];
    for l in 0..8 {
        let x = acc[0][l] + acc[2][l];
        let y = acc[1][l] + acc[3][l];
        a[l] = x + y;
    }
    let t = [a[0] + a[4], a[1] + a[5], a[2] + a[6], a[3] + a[7]];
    (t[0] + t[1]) + (t[2] + t[3])
}

// ---------------------------------------------------------------------------------------------
// I2_S

/// The 2-bit code (0..2) of element `k` of an I2_S row (I2_S.md §2: 128 elements per 32 bytes,
/// element e of a block in byte e % 32 at shift 6 - 2*(e/32)).
#[inline(always)]
fn i2s_code(row: &[u8], k: usize) -> i32 {
    let (blk, e) = (k / 128, k % 128);
    ((row[blk * 32 + e % 32] >> (6 - 2 * (e / 32))) & 3) as i32
}

fn i2s_matmul(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    let row_bytes = d.k / 4;
    for r in 0..d.rows {
        let row = &codes[r * row_bytes..(r + 1) * row_bytes];
        for t in 0..d.n_tok {
            let q = &act.q[t * d.k..(t + 1) * d.k];
            let dot: i32 = (0..d.k).map(|k| i2s_code(row, k) * q[k] as i32).sum();
            out[r * d.n_tok + t] = i2s_epilogue(dot, act.sum[t], act.scale[t], w_scale);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_K dot products (TQ2_0, TQ1_0, Q6_K), I2_S.md §6a

/// The integer lanes of one TQ block: lane p = sum of code*q over elements with (e % 32) / 4 == p,
/// minus the sum of q over e in [32p, 32p+32) (the offset correction that turns codes into
/// ternary values; the 8 lanes together give sum (code-1)*q).
fn tq_lanes(codes: &[u8; QK_K], q: &[i8; QK_K]) -> [i32; 8] {
    let mut lanes = [0i32; 8];
    for e in 0..QK_K {
        lanes[(e % 32) / 4] += codes[e] as i32 * q[e] as i32;
    }
    for (p, lane) in lanes.iter_mut().enumerate() {
        *lane -= q[32 * p..32 * p + 32]
            .iter()
            .map(|&v| v as i32)
            .sum::<i32>();
    }
    lanes
}

/// TQ rows x Q8_K rows: per block `acc[p] = acc[p] + lane_p * (d_x * d_w)` (multiply then add,
/// no fma), then [`hsum8`].
fn tq_matmul<B>(
    w: &[B],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
    decode: impl Fn(&B) -> ([u8; QK_K], f32),
) {
    let nb = d.k / QK_K;
    for r in 0..d.rows {
        let wrow = &w[r * nb..(r + 1) * nb];
        for t in 0..d.n_tok {
            let xrow = &act[t * nb..(t + 1) * nb];
            let mut acc = [0f32; 8];
            for (wb, xb) in wrow.iter().zip(xrow) {
                let (codes, dw) = decode(wb);
                let dd = xb.d * dw;
                let lanes = tq_lanes(&codes, &xb.qs);
                for p in 0..8 {
                    acc[p] += lanes[p] as f32 * dd;
                }
            }
            out[r * d.n_tok + t] = hsum8(&acc);
        }
    }
}

fn tq2_0_codes(b: &BlockTQ2_0) -> ([u8; QK_K], f32) {
    let mut c = [0u8; QK_K];
    for (e, c) in c.iter_mut().enumerate() {
        // I2_S.md §6: element j*4 + l*32 + m is bits 2l of qs[j + m], j in {0, 32}.
        let byte = b.qs[32 * (e / 128) + e % 32];
        *c = (byte >> (2 * ((e % 128) / 32))) & 3;
    }
    (c, f16_to_f32(b.d))
}

fn tq1_0_codes(b: &BlockTQ1_0) -> ([u8; QK_K], f32) {
    (tq1_0_trits(b), f16_to_f32(b.d))
}

fn tq2_0_matmul(w: &[BlockTQ2_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    tq_matmul(w, act, d, out, tq2_0_codes)
}

fn tq1_0_matmul(w: &[BlockTQ1_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    tq_matmul(w, act, d, out, tq1_0_codes)
}

/// Q6_K rows x Q8_K rows: lane p = sum sc[e/16]*q6_e*q_e over (e % 32) / 4 == p;
/// per block `acc[p] = fma(d_x * d_w, lane_p, acc[p])`, then [`hsum8`].
fn q6_k_matmul(w: &[BlockQ6K], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    let nb = d.k / QK_K;
    for r in 0..d.rows {
        let wrow = &w[r * nb..(r + 1) * nb];
        for t in 0..d.n_tok {
            let xrow = &act[t * nb..(t + 1) * nb];
            let mut acc = [0f32; 8];
            for (wb, xb) in wrow.iter().zip(xrow) {
                let v = q6k_values(wb);
                let mut lanes = [0i32; 8];
                for e in 0..QK_K {
                    lanes[(e % 32) / 4] += wb.scales[e / 16] as i32 * v[e] as i32 * xb.qs[e] as i32;
                }
                let dd = xb.d * f16_to_f32(wb.d);
                for p in 0..8 {
                    acc[p] = dd.mul_add(lanes[p] as f32, acc[p]);
                }
            }
            out[r * d.n_tok + t] = hsum8(&acc);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_0 x Q8_0 (ggml's AVX2 vec_dot_q8_0_q8_0; no golden data)

/// Per block: lane p = sum of w*x over elements 4p..4p+3, `acc[p] = fma(d_w*d_x, lane_p, acc[p])`,
/// then [`hsum8`].
fn q8_0_matmul(w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
    let nb = d.k / 32;
    for r in 0..d.rows {
        let wrow = &w[r * nb..(r + 1) * nb];
        for t in 0..d.n_tok {
            let xrow = &act[t * nb..(t + 1) * nb];
            let mut acc = [0f32; 8];
            for (wb, xb) in wrow.iter().zip(xrow) {
                let dd = f16_to_f32(wb.d) * f16_to_f32(xb.d);
                for p in 0..8 {
                    let lane: i32 = (4 * p..4 * p + 4)
                        .map(|e| wb.qs[e] as i32 * xb.qs[e] as i32)
                        .sum();
                    acc[p] = dd.mul_add(lane as f32, acc[p]);
                }
            }
            out[r * d.n_tok + t] = hsum8(&acc);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Float dot products (FORWARD.md §8)

/// `ggml_vec_dot_f32`: 4 x 8 fma lanes over whole 32-element chunks, [`reduce_4x8`], then the
/// leftover `n % 32` elements as `sum = fma(a, b, sum)` in float32 after the horizontal sum (the
/// reference's `sumf += x[i]*y[i]` on a float, contracted to an fma by the FMA build).
pub(crate) fn dot_f32_ggml(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    let mut acc = [[0f32; 8]; 4];
    for c in (0..np).step_by(32) {
        for j in 0..4 {
            for l in 0..8 {
                let i = c + 8 * j + l;
                acc[j][l] = a[i].mul_add(b[i], acc[j][l]);
            }
        }
    }
    let mut sum = reduce_4x8(&acc);
    for i in np..n {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

/// `ggml_vec_dot_f16`: operands converted to f32 exactly, same lanes as [`dot_f32_ggml`]; the
/// reference keeps the total in a double (`ggml_float`) and adds the leftover `n % 32` products
/// (exact in float32: f16 x f16 fits 22 bits) in double, then rounds once to float32.
pub(crate) fn dot_f16_ggml(a: &[f16], b: &[f16]) -> f32 {
    f16_ggml(a, b, f16::to_f32)
}

/// [`dot_f16_ggml`] with `b` already widened to f32 (its values must be f16 values, so the
/// products and sums are the same).
pub(crate) fn dot_f16_ggml_wide(a: &[f16], b: &[f32]) -> f32 {
    f16_ggml(a, b, |v| v)
}

fn f16_ggml<B: Copy>(a: &[f16], b: &[B], cvt: impl Fn(B) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    let mut acc = [[0f32; 8]; 4];
    for c in (0..np).step_by(32) {
        for j in 0..4 {
            for l in 0..8 {
                let i = c + 8 * j + l;
                acc[j][l] = a[i].to_f32().mul_add(cvt(b[i]), acc[j][l]);
            }
        }
    }
    let mut sum = reduce_4x8(&acc) as f64;
    for i in np..n {
        sum += (a[i].to_f32() * cvt(b[i])) as f64;
    }
    sum as f32
}

/// tinyBLAS (llamafile sgemm, AVX2): 8 fma lanes over steps of 8, then [`hsum8`]. The reference
/// only runs it when K % 8 == 0; for other lengths the leftover elements are added after the
/// horizontal sum with fma (our choice: no reference behaviour exists to match).
pub(crate) fn dot_f32_tinyblas(a: &[f32], b: &[f32]) -> f32 {
    tinyblas(a, b, |v| v)
}

/// tinyBLAS with f16 weights (converted exactly) and f32 activations; see [`dot_f32_tinyblas`].
pub(crate) fn dot_f16_f32_tinyblas(a: &[f16], b: &[f32]) -> f32 {
    tinyblas(a, b, f16::to_f32)
}

fn tinyblas<T: Copy>(a: &[T], b: &[f32], cvt: impl Fn(T) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !7;
    let mut acc = [0f32; 8];
    for c in (0..np).step_by(8) {
        for l in 0..8 {
            acc[l] = cvt(a[c + l]).mul_add(b[c + l], acc[l]);
        }
    }
    let mut sum = hsum8(&acc);
    for i in np..n {
        sum = cvt(a[i]).mul_add(b[i], sum);
    }
    sum
}

fn float_matmul<W, X>(w: &[W], x: &[X], d: MatDims, out: &mut [f32], dot: fn(&[W], &[X]) -> f32) {
    for r in 0..d.rows {
        let wrow = &w[r * d.k..(r + 1) * d.k];
        for t in 0..d.n_tok {
            out[r * d.n_tok + t] = dot(wrow, &x[t * d.k..(t + 1) * d.k]);
        }
    }
}

fn f16_ggml_strided(w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
    super::strided_rows(w, stride, x, out, dot_f16_ggml)
}

fn f16_tinyblas_strided(w: &[f16], stride: usize, x: &[f32], out: &mut [f32]) {
    super::strided_rows(w, stride, x, out, dot_f16_f32_tinyblas)
}

fn f16_ggml_strided_group(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    super::strided_group(w, stride, x, g, out, dot_f16_ggml_wide)
}

fn f16_ggml_matmul(w: &[f16], x: &[f16], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f16_ggml)
}

fn f16_tinyblas_matmul(w: &[f16], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f16_f32_tinyblas)
}

fn f32_ggml_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f32_ggml)
}

fn f32_tinyblas_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f32_tinyblas)
}
