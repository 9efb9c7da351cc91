//! Element-wise and row operations of the graph, each with the reference CPU build's exact
//! float32 arithmetic (x86 AVX2 + FMA, clang with `-ffp-contract=on`), `spec/FORWARD.md` §4, §5, §8.
//! Matrix products are not here: they belong to `kernels`.

use half::f16;

/// Defines `pub fn name(args)` running `body(args)` compiled with the FMA instruction set when
/// the CPU has it. The bits are the same either way (`mul_add` is a correctly rounded fused
/// multiply-add); without the feature every `mul_add` is a call into a software `fmaf`, which
/// made the softmax over long contexts and RoPE needlessly slow.
macro_rules! fma_dispatch {
    ($(#[$m:meta])* pub fn $name:ident($($a:ident: $t:ty),*) => $body:ident) => {
        $(#[$m])*
        pub(super) fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "fma")]
                fn fast($($a: $t),*) {
                    $body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has FMA, checked on the line above.
                    return unsafe { fast($($a),*) };
                }
            }
            $body($($a),*)
        }
    };
}

/// `ggml_rms_norm` followed by `ggml_mul` with the weight, in place on one row:
/// `Σ (float)(x·x)` in double in order, `mean = (float)(sum/n)`, `scale = 1.0f/sqrtf(mean+eps)`,
/// `y = (x·scale)·w` as two float32 multiplies.
pub(super) fn rmsnorm(x: &mut [f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for (v, &wi) in x.iter_mut().zip(w) {
        *v = (*v * scale) * wi;
    }
}

/// RMSNorm of `src` into `dst` (same rule as [`rmsnorm`]).
pub(super) fn rmsnorm_into(dst: &mut [f32], src: &[f32], w: &[f32], eps: f32) {
    dst.copy_from_slice(src);
    rmsnorm(dst, w, eps);
}

/// The RoPE angles' cosines and sines for one position (`ggml_rope_cache_init`): theta starts at
/// `(float)pos` and is multiplied by `theta_scale = powf(base, -2/n_rot)` per pair, a running
/// float32 product; divided by the rope factor of the pair if the model has them. Writes
/// `n_rot/2` values into each of `cos` and `sin`.
pub(super) fn rope_angles(
    pos: i32,
    theta_scale: f32,
    freq_factors: Option<&[f32]>,
    cos: &mut [f32],
    sin: &mut [f32],
) {
    let mut theta = pos as f32;
    for i in 0..cos.len() {
        let t = match freq_factors {
            Some(ff) => theta / ff[i],
            None => theta,
        };
        // glibc cosf/sinf, as the reference calls them (freq_scale and mscale are 1: exact).
        cos[i] = t.cos();
        sin[i] = t.sin();
        theta *= theta_scale;
    }
}

/// `powf(base, -2.0f/n_rot)`, the per-pair angle ratio.
pub(super) fn rope_theta_scale(base: f32, n_rot: usize) -> f32 {
    base.powf(-2.0f32 / n_rot as f32)
}

fma_dispatch! {
    /// NEOX RoPE in place on one head vector: pairs `(i, i + n_rot/2)`, with the FMA contraction the
    /// reference build applies: `x0' = fma(x0, cos, -(x1·sin))`, `x1' = fma(x0, sin, x1·cos)`.
    pub fn rope_neox(head: &mut [f32], cos: &[f32], sin: &[f32]) => rope_neox_body
}

#[inline(always)]
fn rope_neox_body(head: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for i in 0..half {
        let (x0, x1) = (head[i], head[i + half]);
        head[i] = x0.mul_add(cos[i], -(x1 * sin[i]));
        head[i + half] = x0.mul_add(sin[i], x1 * cos[i]);
    }
}

/// NEOX RoPE on an F16 head vector (the K-shift of a cached K: `ggml_compute_forward_rope_f16`
/// converts each value to f32, rotates, rounds back to f16).
pub(super) fn rope_neox_f16(head: &mut [f16], cos: &[f32], sin: &[f32]) {
    let half = cos.len();
    for i in 0..half {
        let (x0, x1) = (head[i].to_f32(), head[i + half].to_f32());
        head[i] = f16::from_f32(x0.mul_add(cos[i], -(x1 * sin[i])));
        head[i + half] = f16::from_f32(x0.mul_add(sin[i], x1 * cos[i]));
    }
}

fn hexf(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// ggml's AVX2 `ggml_v_expf` for one lane, in scalar float32 with fma: a polynomial exp (not
/// libm's), including its slow path for |n| > 126 (which makes `exp(-inf)` exactly 0).
#[inline(always)]
pub(super) fn v_expf(x: f32) -> f32 {
    let r = hexf(0x4b40_0000); // 0x1.8p23
    let z = x.mul_add(hexf(0x3fb8_aa3b), r); // 0x1.715476p+0
    let n = z - r;
    let b = (-n).mul_add(C_LN2_LO, (-n).mul_add(C_LN2_HI, x));
    let e = z.to_bits() << 23;
    let k = f32::from_bits(e.wrapping_add(1.0f32.to_bits()));
    let c = n.abs() > 126.0;
    let u = b * b;
    let j = P0
        .mul_add(b, P1)
        .mul_add(u, P2.mul_add(b, P3))
        .mul_add(u, P4 * b);
    if !c {
        return j.mul_add(k, k);
    }
    let g: u32 = if n <= 0.0 { 0x8200_0000 } else { 0 };
    let s1 = f32::from_bits(g.wrapping_add(0x7f00_0000));
    let s2 = f32::from_bits(e.wrapping_sub(g));
    if n.abs() > 192.0 {
        s1 * s1
    } else {
        s2.mul_add(j, s2) * s1
    }
}

// Constants of ggml_v_expf: the C source's hex-float literals, as bit patterns.
const C_LN2_HI: f32 = f32::from_bits(0x3f31_7200); // 0x1.62e4p-1
const C_LN2_LO: f32 = f32::from_bits(0x35bf_be8e); // 0x1.7f7d1cp-20
const P0: f32 = f32::from_bits(0x3c07_2010); // 0x1.0e4020p-7
const P1: f32 = f32::from_bits(0x3d2b_9f17); // 0x1.573e2ep-5
const P2: f32 = f32::from_bits(0x3e2a_af33); // 0x1.555e66p-3
const P3: f32 = f32::from_bits(0x3eff_fedb); // 0x1.fffdb6p-2
const P4: f32 = f32::from_bits(0x3f7f_fff6); // 0x1.ffffecp-1

/// `_mm256_reduce_add_ps` of 8 lanes: `((e0+e4)+(e2+e6)) + ((e1+e5)+(e3+e7))`.
fn hsum8(e: &[f32]) -> f32 {
    let t0 = e[0] + e[4];
    let t1 = e[1] + e[5];
    let t2 = e[2] + e[6];
    let t3 = e[3] + e[7];
    (t0 + t2) + (t1 + t3)
}

fma_dispatch! {
    /// `ggml_soft_max_ext` on one row that is already `kq·scale + mask` (float32), in place:
    /// `e = v_expf(w - max)`, each 8-lane group summed as `_mm256_reduce_add_ps` in float32, the
    /// groups added in double, `p = e · (float)(1/sum)`. The row length must be a multiple of 8
    /// (n_kv is padded to 32); a scalar tail with libm `expf` handles any rest, as ggml does.
    pub fn softmax(w: &mut [f32]) => softmax_body
}

#[inline(always)]
fn softmax_body(w: &mut [f32]) {
    let max = w.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    let mut chunks = w.chunks_exact_mut(8);
    for c in &mut chunks {
        for v in c.iter_mut() {
            *v = v_expf(*v - max);
        }
        sum += hsum8(c) as f64;
    }
    for v in chunks.into_remainder() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in w.iter_mut() {
        *v *= inv;
    }
}

/// `relu(g)^2 · u` element-wise into `g` (ggml_relu, ggml_sqr, ggml_mul: three float32 steps).
pub(super) fn relu_squared_mul(g: &mut [f32], u: &[f32]) {
    for (a, &b) in g.iter_mut().zip(u) {
        let r = if *a > 0.0 { *a } else { 0.0 };
        *a = (r * r) * b;
    }
}

fma_dispatch! {
    /// `silu(g) · u` element-wise into `g`: ggml's AVX2 `ggml_v_silu` (`x / (1 + v_expf(-x))`) for
    /// whole groups of 8, the scalar `x/(1+expf(-x))` for a tail, then a float32 multiply.
    pub fn silu_mul(g: &mut [f32], u: &[f32]) => silu_mul_body
}

#[inline(always)]
fn silu_mul_body(g: &mut [f32], u: &[f32]) {
    let n8 = g.len() / 8 * 8;
    for (i, (a, &b)) in g.iter_mut().zip(u).enumerate() {
        let x = *a;
        let e = if i < n8 { v_expf(-x) } else { (-x).exp() };
        *a = (x / (1.0 + e)) * b;
    }
}

/// Rounds to f16 (round to nearest even), as ggml's FP32→FP16 conversion (F16C `_cvtss_sh`).
#[cfg(test)]
fn to_f16(x: f32) -> f16 {
    f16::from_f32(x)
}

/// [`to_f16`] over a slice (`dst.len() == src.len()`), vectorized by `half` (F16C where the CPU
/// has it): the same round-to-nearest-even bits as the scalar conversion.
pub(super) fn to_f16_slice(dst: &mut [f16], src: &[f32]) {
    use half::slice::HalfFloatSliceExt;
    dst.convert_from_f32_slice(src);
}

/// Each value rounded to f16 and widened back (exact), in place: the f16 values of [`to_f16`]
/// kept as f32 for kernels that take widened f16 operands. Vectorized through [`to_f16_slice`].
pub(super) fn round_to_f16(v: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let mut tmp = [f16::ZERO; 64];
    for chunk in v.chunks_mut(64) {
        let h = &mut tmp[..chunk.len()];
        to_f16_slice(h, chunk);
        h.convert_to_f32_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_f16_slice_equals_scalar_conversion() {
        // Every f16 value, the midpoints between neighbours (ties to even), tiny and huge values.
        let mut src: Vec<f32> = (0..=u16::MAX).map(|b| f16::from_bits(b).to_f32()).collect();
        for b in 0..0x7bffu16 {
            let (lo, hi) = (f16::from_bits(b).to_f32(), f16::from_bits(b + 1).to_f32());
            src.push((lo + hi) / 2.0);
            src.push(-(lo + hi) / 2.0);
        }
        src.extend([
            1e-10,
            -1e-10,
            65520.0,
            -65520.0,
            1e30,
            f32::INFINITY,
            f32::MIN_POSITIVE,
        ]);
        let mut dst = vec![f16::ZERO; src.len()];
        to_f16_slice(&mut dst, &src);
        for (d, &s) in dst.iter().zip(&src) {
            if s.is_nan() {
                assert!(d.is_nan());
            } else {
                assert_eq!(d.to_bits(), to_f16(s).to_bits(), "{s}");
            }
        }
        // In place and widened back: the same values, in chunks with a ragged tail.
        let mut wide = src.clone();
        round_to_f16(&mut wide[..src.len() - 3]);
        for (i, (w, (d, s))) in wide.iter().zip(dst.iter().zip(&src)).enumerate() {
            if i >= src.len() - 3 {
                assert_eq!(w.to_bits(), s.to_bits(), "tail untouched");
            } else if s.is_nan() {
                assert!(w.is_nan());
            } else {
                assert_eq!(w.to_bits(), d.to_f32().to_bits(), "{s}");
            }
        }
    }

    #[test]
    fn v_expf_is_close_to_exp_and_handles_the_tails() {
        for i in -8000..=800 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let got = v_expf(x) as f64;
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "x={x} got={got} want={want}"
            );
        }
        assert_eq!(v_expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(v_expf(-200.0), 0.0);
        assert_eq!(v_expf(0.0), 1.0);
        assert!(v_expf(100.0).is_infinite());
    }

    #[test]
    fn softmax_sums_to_one_and_masks() {
        let mut w = vec![0.0f32; 32];
        for (i, v) in w.iter_mut().enumerate() {
            *v = if i < 5 {
                i as f32 * 0.3
            } else {
                f32::NEG_INFINITY
            };
        }
        softmax(&mut w);
        assert!(w[5..].iter().all(|&p| p == 0.0));
        let s: f32 = w.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
    }

    #[test]
    fn rmsnorm_matches_the_definition() {
        let mut x = vec![1.0f32, -2.0, 3.0, 0.5];
        let w = vec![1.0f32, 2.0, 0.5, 1.0];
        rmsnorm(&mut x, &w, 1e-5);
        let ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0f64;
        let s = 1.0 / (ms + 1e-5).sqrt();
        assert!((x[1] as f64 - (-2.0 * s * 2.0)).abs() < 1e-6);
    }

    #[test]
    fn silu_matches_its_definition() {
        let n = 1003; // whole groups of 8 plus a scalar tail
        let mut g: Vec<f32> = (0..n).map(|i| (i as f32 - 500.0) * 0.02).collect();
        let x = g.clone();
        let u = vec![1.0f32; n];
        silu_mul(&mut g, &u);
        for (&y, &x) in g.iter().zip(&x) {
            let want = x as f64 / (1.0 + (-x as f64).exp());
            assert!(
                (y as f64 - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "x={x}"
            );
        }
    }
}
