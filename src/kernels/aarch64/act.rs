//! Activation quantization with NEON, the same bits as `kernels/act.rs`: the elementwise steps
//! (`x * s`, `+ 1.5 * 2^23`, low mantissa bits, clamps) are the scalar ones four lanes at a
//! time (separate multiply and add: no fusion). The max is order-independent except around
//! NaN, where the scalar code's sequential `a > b ? a : b` decides: a row or block with a NaN in
//! its max goes to the scalar code.

use crate::kernels::act as scalar;
use crate::tensor::blocks::{BlockQ8K, QK_K};
use core::arch::aarch64::*;

/// `max |x|` over `x` (NaN if any element is NaN: `FMAX` propagates it).
#[inline(always)]
fn abs_max(x: &[f32]) -> f32 {
    let n4 = x.len() & !3;
    // SAFETY: n4 <= x.len(); NEON is baseline.
    let mut m = unsafe {
        let mut v = vdupq_n_f32(0.0);
        for i in (0..n4).step_by(4) {
            v = vmaxq_f32(v, vabsq_f32(vld1q_f32(x.as_ptr().add(i))));
        }
        vmaxvq_f32(v)
    };
    for &v in &x[n4..] {
        let a = v.abs();
        m = if a.is_nan() || m.is_nan() {
            f32::NAN
        } else {
            m.max(a)
        };
    }
    m
}

/// `nearest_int(x * s)` in four lanes (the scalar bit trick: add 1.5 * 2^23, keep the low 23
/// bits, subtract 2^22).
#[inline(always)]
unsafe fn nearest4(x: float32x4_t, s: float32x4_t) -> int32x4_t {
    // SAFETY: NEON is baseline.
    unsafe {
        let v = vaddq_f32(vmulq_f32(x, s), vdupq_n_f32(12582912.0));
        let m = vandq_s32(vreinterpretq_s32_f32(v), vdupq_n_s32(0x007f_ffff));
        vsubq_s32(m, vdupq_n_s32(0x0040_0000))
    }
}

/// `quantize_row_i8_s` (I2_S.md §4); see [`scalar::quantize_row_i8`].
pub(super) fn quantize_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    assert!(
        q.len() >= x.len(),
        "aarch64 quantize_i8: q is shorter than x"
    );
    let amax = abs_max(x);
    if amax.is_nan() {
        return scalar::quantize_row_i8(x, q);
    }
    // max(1e-5, max|x|) in double: f32 -> f64 is exact and monotonic, so this is the scalar max.
    let max = if 0.00001f64 > amax as f64 {
        0.00001f64
    } else {
        amax as f64
    };
    let s = (127.0 / max) as f32;
    let n4 = x.len() & !3;
    let mut sum = 0i32;
    // SAFETY: every access is below n4 <= x.len() <= q.len(); NEON is baseline.
    unsafe {
        let (sv, lo, hi) = (vdupq_n_f32(s), vdupq_n_s32(-128), vdupq_n_s32(127));
        let mut acc = vdupq_n_s32(0);
        for i in (0..n4).step_by(4) {
            let r = nearest4(vld1q_f32(x.as_ptr().add(i)), sv);
            let r = vminq_s32(vmaxq_s32(r, lo), hi);
            acc = vaddq_s32(acc, r);
            let mut tmp = [0i32; 4];
            vst1q_s32(tmp.as_mut_ptr(), r);
            for (d, v) in q[i..i + 4].iter_mut().zip(tmp) {
                *d = v as i8;
            }
        }
        sum = sum.wrapping_add(vaddvq_s32(acc));
    }
    for (d, &v) in q[n4..x.len()].iter_mut().zip(&x[n4..]) {
        let r = scalar::nearest_int(v * s).clamp(-128, 127);
        *d = r as i8;
        sum += r;
    }
    (s, sum)
}

/// `quantize_row_q8_K` (I2_S.md §6a); see [`scalar::quantize_row_q8k`].
pub(super) fn quantize_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    assert_eq!(
        x.len(),
        QK_K * y.len(),
        "aarch64 quantize_q8k: x is not whole blocks"
    );
    for (b, src) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        let amax = abs_max(src);
        if !amax.is_finite() {
            // NaN or infinity: the scalar code's sequential comparisons decide.
            scalar::quantize_row_q8k(src, std::slice::from_mut(b));
            continue;
        }
        if amax == 0.0 {
            b.d = 0.0;
            b.qs = [0; QK_K];
            b.bsums = [0; QK_K / 16];
            continue;
        }
        // The first element of largest magnitude, with its sign.
        let max = src
            .iter()
            .copied()
            .find(|v| v.abs() == amax)
            .unwrap_or(amax);
        let iscale = -127.0f32 / max;
        // SAFETY: 256 values in src and in b.qs; NEON is baseline.
        unsafe {
            let (sv, top) = (vdupq_n_f32(iscale), vdupq_n_s32(127));
            for i in (0..QK_K).step_by(4) {
                let r = vminq_s32(nearest4(vld1q_f32(src.as_ptr().add(i)), sv), top);
                let mut tmp = [0i32; 4];
                vst1q_s32(tmp.as_mut_ptr(), r);
                for (d, v) in b.qs[i..i + 4].iter_mut().zip(tmp) {
                    *d = v as i8;
                }
            }
            for (j, s) in b.bsums.iter_mut().enumerate() {
                *s = vaddlvq_s8(vld1q_s8(b.qs.as_ptr().add(16 * j)));
            }
        }
        b.d = 1.0 / iscale;
    }
}
