//! Activation quantization: int8 rows for I2_S, Q8_K blocks (same bits as `kernels/act.rs`).

use super::*;

/// Rounds 8 floats half to even and converts; equal to `nearest_int` for |v| < 2^22.
#[inline(always)]
unsafe fn round_i32(v: __m256) -> __m256i {
    _mm256_cvtps_epi32(_mm256_round_ps::<
        { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
    >(v))
}

/// Packs 4 x 8 i32 (already within i8 range) into 32 i8 in order.
#[inline(always)]
unsafe fn pack_i8(r: [__m256i; 4]) -> __m256i {
    let a = _mm256_packs_epi32(r[0], r[1]);
    let b = _mm256_packs_epi32(r[2], r[3]);
    let p = _mm256_packs_epi16(a, b);
    // packs interleave per 128-bit half: dwords come out as r0lo r1lo r2lo r3lo r0hi r1hi ...
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// max |x| over `x` as f32, or `None` if any value is NaN or infinite (callers then take the
/// scalar path, whose NaN behaviour follows the reference's comparison macro exactly).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn finite_amax(x: &[f32]) -> Option<f32> {
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let mut m = _mm256_setzero_ps();
    let mut bad = _mm256_setzero_ps();
    let n8 = x.len() & !7;
    for c in (0..n8).step_by(8) {
        let a = _mm256_and_ps(_mm256_loadu_ps(x.as_ptr().add(c)), abs);
        // NaN compares unordered, inf compares equal: both flag the row.
        bad = _mm256_or_ps(bad, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
        m = _mm256_max_ps(m, a);
    }
    if _mm256_movemask_ps(bad) != 0 {
        return None;
    }
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), m);
    let mut mx = lanes.iter().fold(0f32, |a, &b| a.max(b));
    for &v in &x[n8..] {
        if !v.is_finite() {
            return None;
        }
        mx = mx.max(v.abs());
    }
    Some(mx)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_i8_impl(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let Some(amax) = finite_amax(x) else {
        return crate::kernels::act::quantize_row_i8(x, q);
    };
    // The reference takes max(1e-5, |x|) in double; for finite inputs the f32 max widened is
    // the same value.
    let max = (amax as f64).max(0.00001);
    let s = (127.0 / max) as f32;
    let vs = _mm256_set1_ps(s);
    let (lo, hi) = (_mm256_set1_epi32(-128), _mm256_set1_epi32(127));
    let mut vsum = _mm256_setzero_si256();
    let n32 = x.len() & !31;
    for c in (0..n32).step_by(32) {
        let mut r = [_mm256_setzero_si256(); 4];
        for (j, rj) in r.iter_mut().enumerate() {
            let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(c + 8 * j)), vs);
            *rj = _mm256_min_epi32(_mm256_max_epi32(round_i32(v), lo), hi);
            vsum = _mm256_add_epi32(vsum, *rj);
        }
        _mm256_storeu_si256(q.as_mut_ptr().add(c) as *mut __m256i, pack_i8(r));
    }
    let mut sum = hsum_i32(vsum);
    for i in n32..x.len() {
        let v = crate::kernels::act::nearest_int(x[i] * s).clamp(-128, 127);
        q[i] = v as i8;
        sum += v;
    }
    (s, sum)
}

pub(super) fn quantize_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    check("i8 output", q.len(), x.len());
    // SAFETY: q has room for x.len() values; table used only after `detected()`.
    unsafe { quantize_i8_impl(x, q) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8k_block(x: &[f32], b: &mut BlockQ8K) {
    let Some(amax) = finite_amax(x) else {
        return crate::kernels::act::quantize_row_q8k(x, std::slice::from_mut(b));
    };
    if amax == 0.0 {
        return crate::kernels::act::quantize_row_q8k(x, std::slice::from_mut(b));
    }
    // The first element whose |x| equals the maximum, with its sign.
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let va = _mm256_set1_ps(amax);
    let mut max = 0f32;
    for c in (0..QK_K).step_by(8) {
        let a = _mm256_and_ps(_mm256_loadu_ps(x.as_ptr().add(c)), abs);
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(a, va));
        if m != 0 {
            max = x[c + m.trailing_zeros() as usize];
            break;
        }
    }
    let iscale = -127.0f32 / max;
    let vs = _mm256_set1_ps(iscale);
    let hi = _mm256_set1_epi32(127);
    for c in (0..QK_K).step_by(32) {
        let mut r = [_mm256_setzero_si256(); 4];
        for (j, rj) in r.iter_mut().enumerate() {
            let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(c + 8 * j)), vs);
            *rj = _mm256_min_epi32(round_i32(v), hi);
        }
        b.bsums[c / 16] = hsum_i32(_mm256_add_epi32(r[0], r[1])) as i16;
        b.bsums[c / 16 + 1] = hsum_i32(_mm256_add_epi32(r[2], r[3])) as i16;
        _mm256_storeu_si256(b.qs.as_mut_ptr().add(c) as *mut __m256i, pack_i8(r));
    }
    b.d = 1.0 / iscale;
}

pub(super) fn quantize_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    check("Q8_K input", x.len(), y.len() * QK_K);
    for (b, src) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        // SAFETY: src is exactly one block; table used only after `detected()`.
        unsafe { quantize_q8k_block(src, b) }
    }
}
