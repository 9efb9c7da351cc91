//! Float products in the reference's orders (FORWARD.md §8): `ggml_vec_dot_f32` / `_f16`
//! (4 x 8 fma lanes per 32 elements, `GGML_F32x8_REDUCE`), tinyBLAS (8 fma lanes, `hsum`), and
//! the strided rows of attention. The 8 lanes of the x86 code are two 4-lane registers here;
//! `FMLA` is the same fused multiply-add as `vfmadd`, so every lane sees the same operations.
//! f16 is widened with `FCVTL` (base ARMv8 Advanced SIMD, exact for every f16 value), written
//! with `asm!` because the `float16x4_t` intrinsics are unstable.

use super::check;
use crate::kernels::MatDims;
use core::arch::aarch64::*;
use half::f16;

/// An element type the float kernels read 8 at a time as two f32x4 (lanes 0..3, 4..7).
trait Lanes: Copy {
    /// # Safety
    /// 8 elements must be readable at `p`.
    unsafe fn load8(p: *const Self) -> [float32x4_t; 2];
    fn widen(self) -> f32;
}

impl Lanes for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> [float32x4_t; 2] {
        // SAFETY: the caller guarantees 8 readable f32; NEON is baseline.
        unsafe { [vld1q_f32(p), vld1q_f32(p.add(4))] }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl Lanes for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> [float32x4_t; 2] {
        // SAFETY: the caller guarantees 8 readable f16 (`half::f16` is a transparent u16);
        // FCVTL/FCVTL2 only touch registers.
        unsafe {
            let v = vld1q_u16(p as *const u16);
            let lo: float32x4_t;
            let hi: float32x4_t;
            core::arch::asm!(
                "fcvtl {lo:v}.4s, {v:v}.4h",
                "fcvtl2 {hi:v}.4s, {v:v}.8h",
                v = in(vreg) v,
                lo = out(vreg) lo,
                hi = out(vreg) hi,
                options(pure, nomem, nostack, preserves_flags)
            );
            [lo, hi]
        }
    }
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
}

/// `GGML_F32x8_REDUCE` over 4 accumulators of 8 lanes (`acc[2j]` lanes 0..3, `acc[2j+1]` 4..7):
/// `a = (acc0+acc2) + (acc1+acc3)`, `t[l] = a[l] + a[l+4]`, `(t0+t1) + (t2+t3)`.
#[inline(always)]
unsafe fn reduce_4x8(acc: &[float32x4_t; 8]) -> f32 {
    // SAFETY: NEON is baseline.
    unsafe {
        let half = |h: usize| {
            vaddq_f32(
                vaddq_f32(acc[h], acc[4 + h]),
                vaddq_f32(acc[2 + h], acc[6 + h]),
            )
        };
        let t = vaddq_f32(half(0), half(1));
        let p = vpaddq_f32(t, t);
        vgetq_lane_f32::<0>(p) + vgetq_lane_f32::<1>(p)
    }
}

/// The 32-element chunks of a ggml dot (`np` a multiple of 32, both pointers valid for `np`).
#[inline(always)]
unsafe fn ggml_chunks<A: Lanes, B: Lanes>(a: *const A, b: *const B, np: usize) -> f32 {
    // SAFETY: the caller guarantees np readable elements behind both pointers.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 8];
        for c in (0..np).step_by(32) {
            for j in 0..4 {
                let x = A::load8(a.add(c + 8 * j));
                let y = B::load8(b.add(c + 8 * j));
                acc[2 * j] = vfmaq_f32(acc[2 * j], x[0], y[0]);
                acc[2 * j + 1] = vfmaq_f32(acc[2 * j + 1], x[1], y[1]);
            }
        }
        reduce_4x8(&acc)
    }
}

/// `ggml_vec_dot_f32`: chunks, then the `n % 32` tail as float fmas after the reduction.
pub(super) fn dot_f32_ggml(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    // SAFETY: both slices hold at least np elements.
    let mut sum = unsafe { ggml_chunks(a.as_ptr(), b.as_ptr(), np) };
    for i in np..n {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

/// `ggml_vec_dot_f16` with `b` of any f16-valued lane type: chunks, then the tail's exact
/// products summed in double, rounded once.
fn f16_ggml<B: Lanes>(a: &[f16], b: &[B]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    // SAFETY: both slices hold at least np elements.
    let mut sum = unsafe { ggml_chunks(a.as_ptr(), b.as_ptr(), np) } as f64;
    for i in np..n {
        sum += (a[i].to_f32() * b[i].widen()) as f64;
    }
    sum as f32
}

pub(super) fn dot_f16_ggml(a: &[f16], b: &[f16]) -> f32 {
    f16_ggml(a, b)
}

/// [`dot_f16_ggml`] with `b` already widened to f32 (f16 values).
fn dot_f16_ggml_wide(a: &[f16], b: &[f32]) -> f32 {
    f16_ggml(a, b)
}

/// tinyBLAS: 8 fma lanes over steps of 8, `hsum`, then the `n % 8` tail as float fmas.
fn tinyblas<A: Lanes>(a: &[A], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !7;
    // SAFETY: both slices hold at least np elements; NEON is baseline.
    let mut sum = unsafe {
        let (mut lo, mut hi) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for c in (0..np).step_by(8) {
            let x = A::load8(a.as_ptr().add(c));
            let y = f32::load8(b.as_ptr().add(c));
            lo = vfmaq_f32(lo, x[0], y[0]);
            hi = vfmaq_f32(hi, x[1], y[1]);
        }
        super::hsum8(lo, hi)
    };
    for i in np..n {
        sum = a[i].widen().mul_add(b[i], sum);
    }
    sum
}

pub(super) fn dot_f32_tinyblas(a: &[f32], b: &[f32]) -> f32 {
    tinyblas(a, b)
}

pub(super) fn dot_f16_f32_tinyblas(a: &[f16], b: &[f32]) -> f32 {
    tinyblas(a, b)
}

/// One dot per (row, token): `out[r * n_tok + t] = dot(w row r, x row t)`.
fn float_matmul<W, X>(w: &[W], x: &[X], d: MatDims, out: &mut [f32], dot: fn(&[W], &[X]) -> f32) {
    check("float weights", w.len(), d.rows * d.k);
    check("float activations", x.len(), d.n_tok * d.k);
    check("float out", out.len(), d.rows * d.n_tok);
    for (r, o) in out
        .chunks_exact_mut(d.n_tok.max(1))
        .take(d.rows)
        .enumerate()
    {
        let wrow = &w[r * d.k..(r + 1) * d.k];
        for (t, ot) in o.iter_mut().enumerate() {
            *ot = dot(wrow, &x[t * d.k..(t + 1) * d.k]);
        }
    }
}

pub(super) fn f16_ggml_matmul(w: &[f16], x: &[f16], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f16_ggml)
}

pub(super) fn f16_tinyblas_matmul(w: &[f16], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f16_f32_tinyblas)
}

pub(super) fn f32_ggml_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f32_ggml)
}

pub(super) fn f32_tinyblas_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    float_matmul(w, x, d, out, dot_f32_tinyblas)
}

pub(super) fn f16_ggml_strided(w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
    crate::kernels::strided_rows(w, stride, x, out, dot_f16_ggml)
}

pub(super) fn f16_tinyblas_strided(w: &[f16], stride: usize, x: &[f32], out: &mut [f32]) {
    crate::kernels::strided_rows(w, stride, x, out, dot_f16_f32_tinyblas)
}

pub(super) fn f16_ggml_strided_group(
    w: &[f16],
    stride: usize,
    x: &[f32],
    g: usize,
    out: &mut [f32],
) {
    crate::kernels::strided_group(w, stride, x, g, out, dot_f16_ggml_wide)
}
