//! Activation quantization: the f32 activation side of the integer matmuls, written straight from
//! `spec/I2_S.md` §4 (I2_S: one int8 scale per row) and §6a (TQ1_0/TQ2_0/Q6_K: Q8_K blocks of 256),
//! plus ggml's AVX2 `quantize_row_q8_0` for Q8_0 weights. These scalar versions are the truth;
//! SIMD variants in the kernel table must produce the same bits.

use crate::tensor::blocks::{BlockQ8K, BlockQ8_0, QK8_0, QK_K};

/// ggml's `nearest_int`: adds 1.5 * 2^23 so the FPU rounds (half to even) into the low mantissa
/// bits. Kept as the bit trick rather than `round_ties_even` so that out-of-range inputs (NaN,
/// |x| >= 2^22) give the same garbage as the reference instead of a different one.
#[inline(always)]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12582912.0f32;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `quantize_row_i8_s` (I2_S.md §4): `max = max(1e-5, max|x|)` in double, `s = (float)(127/max)`,
/// `q = clamp(nearest_int(x*s), -128, 127)`. Fills `q[..x.len()]` and returns `(s, sum q)`.
/// `q` must be at least as long as `x` (extra entries are left untouched).
pub fn quantize_row_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    debug_assert!(q.len() >= x.len());
    // ggml's MAX macro `a > b ? a : b`, so a NaN input poisons the max exactly as in C.
    let mut max = 0.00001f64;
    for &v in x {
        let a = (v as f64).abs();
        max = if max > a { max } else { a };
    }
    let s = (127.0 / max) as f32;
    let mut sum = 0i32;
    for (d, &v) in q.iter_mut().zip(x) {
        let r = nearest_int(v * s).clamp(-128, 127);
        *d = r as i8;
        sum += r;
    }
    (s, sum)
}

/// `quantize_row_q8_K` (reference C version, I2_S.md §6a), one block per 256 values of `x`.
/// `x.len()` must be `256 * y.len()`.
pub fn quantize_row_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    debug_assert_eq!(x.len(), QK_K * y.len());
    for (b, src) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        quantize_block_q8k(src, b);
    }
}

fn quantize_block_q8k(x: &[f32], b: &mut BlockQ8K) {
    // The signed value of largest magnitude, first one on ties.
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in x {
        let a = v.abs();
        if a > amax {
            amax = a;
            max = v;
        }
    }
    if amax == 0.0 {
        // The reference leaves bsums unset here; they only ever meet d = 0, so 0 is as good.
        b.d = 0.0;
        b.qs = [0; QK_K];
        b.bsums = [0; QK_K / 16];
        return;
    }
    // The minus sign matters: d ends up negative and the q's flip sign (I2_S.md §6a).
    let iscale = -127.0f32 / max;
    for (q, &v) in b.qs.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, g) in b.bsums.iter_mut().zip(b.qs.chunks_exact(16)) {
        *s = g.iter().map(|&q| q as i16).sum();
    }
    b.d = 1.0 / iscale;
}

/// Q8_0 activations as ggml's x86 AVX2 `quantize_row_q8_0` makes them (the path the reference
/// build takes; the plain-C `_ref` version rounds half away from zero and divides differently):
/// per 32 values `amax = max|x|`, `d = amax / 127` stored as f16, `id = 127 / amax` (0 if amax is
/// 0), `q = round_half_even(x * id)`. Not validated against golden data (no Q8_0 model exists).
/// `x.len()` must be `32 * y.len()`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    debug_assert_eq!(x.len(), QK8_0 * y.len());
    for (b, src) in y.iter_mut().zip(x.chunks_exact(QK8_0)) {
        let amax = src.iter().fold(0f32, |m, &v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        b.d = half::f16::from_f32(d).to_bits();
        for (q, &v) in b.qs.iter_mut().zip(src) {
            // |x * id| <= 127 (+1 ulp), so the cast cannot saturate on finite input.
            *q = (v * id).round_ties_even() as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (x, want) in [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (126.49, 126),
            (-127.6, -128),
            (3.0, 3),
        ] {
            assert_eq!(nearest_int(x), want, "nearest_int({x})");
        }
    }

    #[test]
    fn i8_row_by_hand() {
        // max = 2 -> s = 63.5; values *s: 127, -63.5 -> -64 (even), 31.75 -> 32, 0.5*63.5/63.5...
        let x = [2.0f32, -1.0, 0.5, 1.0 / 127.0, 0.0];
        let mut q = [0i8; 5];
        let (s, sum) = quantize_row_i8(&x, &mut q);
        assert_eq!(s, 63.5);
        // 2*63.5 = 127; -1*63.5 = -63.5 -> -64; 0.5*63.5 = 31.75 -> 32; 63.5/127 = 0.5 -> 0.
        assert_eq!(q, [127, -64, 32, 0, 0]);
        assert_eq!(sum, 127 - 64 + 32);
        // All zeros: max clamps to 1e-5, s = 127e5, q all 0.
        let (s, sum) = quantize_row_i8(&[0.0; 4], &mut q);
        assert_eq!(s, (127.0f64 / 0.00001) as f32);
        assert_eq!(sum, 0);
        assert_eq!(&q[..4], &[0; 4]);
    }

    #[test]
    fn q8k_block_by_hand() {
        let mut x = [0f32; 256];
        x[3] = -4.0; // largest magnitude, negative: iscale = -127 / -4 = 31.75
        x[7] = 4.0; // tie: the first one (x[3]) wins
        x[16] = 2.0; // 63.5 -> 64 (even)
        x[17] = 1.0; // 31.75 -> 32
        let mut b = [BlockQ8K {
            d: 9.0,
            qs: [9; 256],
            bsums: [9; 16],
        }];
        quantize_row_q8k(&x, &mut b);
        let b = &b[0];
        assert_eq!(b.d, 1.0 / 31.75f32);
        assert_eq!(b.qs[3], -127);
        assert_eq!(b.qs[7], 127);
        assert_eq!(b.qs[16], 64);
        assert_eq!(b.qs[17], 32);
        assert_eq!(b.bsums[0], 0);
        assert_eq!(b.bsums[1], 96);
        assert_eq!(b.qs.iter().map(|&q| q as i32).sum::<i32>(), 96);
        // Positive max: iscale negative, q's flip sign, d negative.
        let mut y = [*b];
        let mut x2 = [0f32; 256];
        x2[0] = 2.0;
        x2[1] = -1.0;
        quantize_row_q8k(&x2, &mut y);
        assert_eq!(y[0].qs[0], -127);
        assert_eq!(y[0].qs[1], 64); // -63.5*-1 = 63.5 -> 64
        assert!(y[0].d < 0.0);
        // All zero block.
        quantize_row_q8k(&[0.0; 256], &mut y);
        assert_eq!(y[0].d, 0.0);
        assert!(y[0].qs.iter().all(|&q| q == 0));
    }

    #[test]
    fn q8_0_block_by_hand() {
        let mut x = [0f32; 32];
        x[0] = 1.27;
        x[1] = -0.005; // * 100 = -0.5 -> 0 (even)
        x[2] = 0.015; // 1.5 -> 2
        let mut b = [BlockQ8_0 { d: 0, qs: [0; 32] }];
        quantize_row_q8_0(&x, &mut b);
        assert_eq!(b[0].d, half::f16::from_f32(1.27 / 127.0).to_bits());
        assert_eq!(b[0].qs[0], 127);
        assert_eq!(
            b[0].qs[1],
            (-0.005f32 * (127.0 / 1.27f32)).round_ties_even() as i8
        );
        assert_eq!(
            b[0].qs[2],
            (0.015f32 * (127.0 / 1.27f32)).round_ties_even() as i8
        );
    }
}
