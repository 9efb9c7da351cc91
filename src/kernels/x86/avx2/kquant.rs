//! Q6_K x Q8_K and Q8_0 x Q8_0 products.

use super::*;

/// Q6_K values of one block as 8 vectors of 32 consecutive unsigned 6-bit values (0..63, i.e.
/// q6 + 32), per 128-element half: (ql[l] & 15 | qh bits 0-1), (ql[l+32] & 15 | bits 2-3),
/// (ql[l] >> 4 | bits 4-5), (ql[l+32] >> 4 | bits 6-7).
#[inline(always)]
unsafe fn q6k_unsigned(b: &BlockQ6K) -> [__m256i; 8] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(3);
    let mut v = [_mm256_setzero_si256(); 8];
    for h in 0..2 {
        let ql0 = load_i(b.ql.as_ptr().add(64 * h));
        let ql1 = load_i(b.ql.as_ptr().add(64 * h + 32));
        let qh = load_i(b.qh.as_ptr().add(32 * h));
        let hb = |x: __m256i| _mm256_slli_epi16::<4>(_mm256_and_si256(x, m3));
        v[4 * h] = _mm256_or_si256(_mm256_and_si256(ql0, m4), hb(qh));
        v[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), hb(_mm256_srli_epi16::<2>(qh)));
        v[4 * h + 2] = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
            hb(_mm256_srli_epi16::<4>(qh)),
        );
        v[4 * h + 3] = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
            hb(_mm256_srli_epi16::<6>(qh)),
        );
    }
    v
}

/// Lanes of one Q6_K block: for each 32-element vector, `maddubs(q6+32, q) - maddubs(32, q)`
/// (each at most 2*63*128 and 2*32*128 in magnitude: no saturation) gives i16 pairs of
/// (q6*q); `madd` with the sub-block scales (low 8 lanes: sc[2i], high: sc[2i+1]) sums element
/// 4p..4p+3 of the vector into i32 lane p.
#[inline(always)]
unsafe fn q6k_lanes(v: &[__m256i; 8], scales: &[i8; 16], xb: &BlockQ8K) -> __m256i {
    let m32 = _mm256_set1_epi8(32);
    let qs = xb.qs.as_ptr() as *const u8;
    let sc = _mm_loadu_si128(scales.as_ptr() as *const __m128i);
    let mut sum = _mm256_setzero_si256();
    for i in 0..8 {
        let q = load_i(qs.add(32 * i));
        let p = _mm256_sub_epi16(_mm256_maddubs_epi16(v[i], q), _mm256_maddubs_epi16(m32, q));
        // [sc[2i] x 8 | sc[2i+1] x 8] as i16: byte shuffle, then sign-extend.
        let pick = _mm_add_epi8(
            _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1),
            _mm_set1_epi8(2 * i as i8),
        );
        let sc16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, pick));
        sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, sc16));
    }
    sum
}

/// Prefetches the Q6_K block `PF` bytes past `wb`: each of the 4 cache lines a 210-byte block
/// spans.
#[inline(always)]
unsafe fn prefetch_q6k_block<const PF: usize>(wb: &BlockQ6K) {
    let pb = (wb as *const BlockQ6K as *const u8).wrapping_add(PF);
    for line in 0..4 {
        prefetch(pb.wrapping_add(64 * line));
    }
}

/// `acc + lanes * (d_x * d_w)` for one block (`v` its decoded values, `dw` its scale): the one
/// float step per block, fused as the reference's.
#[inline(always)]
unsafe fn q6k_block_fma(
    v: &[__m256i; 8],
    wb: &BlockQ6K,
    dw: f32,
    xb: &BlockQ8K,
    acc: __m256,
) -> __m256 {
    let lanes = _mm256_cvtepi32_ps(q6k_lanes(v, &wb.scales, xb));
    _mm256_fmadd_ps(_mm256_set1_ps(xb.d * dw), lanes, acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_row(wrow: &[BlockQ6K], act: &[BlockQ8K], nb: usize, out: &mut [f32]) {
    const NT: usize = 4;
    let n = out.len();
    let mut t0 = 0;
    while t0 < n {
        let nt = (n - t0).min(NT);
        let mut acc = [_mm256_setzero_ps(); NT];
        for (i, wb) in wrow.iter().enumerate() {
            prefetch_q6k_block::<PREFETCH>(wb);
            let v = q6k_unsigned(wb);
            let dw = f16_bits_to_f32(wb.d);
            for j in 0..nt {
                acc[j] = q6k_block_fma(&v, wb, dw, &act[(t0 + j) * nb + i], acc[j]);
            }
        }
        for j in 0..nt {
            out[t0 + j] = hsum8(acc[j]);
        }
        t0 += nt;
    }
}

/// Dots of `R` Q6_K rows with one Q8_K row (the decode head): each block position is visited
/// for the `R` rows together, so its activations are loaded once for all of them (with 32
/// vector registers, as under AVX-512, they stay in registers), and each row's stream is
/// prefetched `PF` bytes ahead. Per row the arithmetic is [`q6k_row`]'s for one token: the
/// same lanes, the same fma order, the same [`hsum8`], so the same bits.
///
/// # Safety
/// AVX2 + FMA + F16C available; every row has `act.len()` blocks.
#[inline(always)]
pub(in crate::kernels::x86) unsafe fn q6k_rows_one_token<const R: usize, const PF: usize>(
    rows: [&[BlockQ6K]; R],
    act: &[BlockQ8K],
) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, xb) in act.iter().enumerate() {
        for (row, a) in rows.iter().zip(acc.iter_mut()) {
            let wb = row.get_unchecked(i);
            prefetch_q6k_block::<PF>(wb);
            *a = q6k_block_fma(&q6k_unsigned(wb), wb, f16_bits_to_f32(wb.d), xb, *a);
        }
    }
    acc.map(|a| hsum8(a))
}

/// The Q6_K product with one token `R` rows at a time through `rows` (a
/// [`q6k_rows_one_token`] compiled for the caller's ISA); other token counts go to
/// [`q6_k_matmul`].
///
/// # Safety
/// `rows` must be callable (its CPU features available).
pub(in crate::kernels::x86) unsafe fn q6_k_matmul_by<const R: usize>(
    w: &[BlockQ6K],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
    rows: unsafe fn([&[BlockQ6K]; R], &[BlockQ8K]) -> [f32; R],
) {
    if d.n_tok != 1 {
        return q6_k_matmul(w, act, d, out);
    }
    let nb = check_q8k(w, act, d, out);
    let row = |r: usize| &w[r * nb..(r + 1) * nb];
    let mut r = 0;
    while r + R <= d.rows {
        let group: [&[BlockQ6K]; R] = core::array::from_fn(|i| row(r + i));
        // SAFETY: every row has nb blocks, act has nb; the caller vouches for `rows`.
        let s = unsafe { rows(group, act) };
        out[r..r + R].copy_from_slice(&s);
        r += R;
    }
    for r in r..d.rows {
        // SAFETY: as above, this module's own AVX2 code.
        out[r] = unsafe { q6k_rows_avx2::<1, 8192>([row(r)], act) }[0];
    }
}

/// [`q6k_rows_one_token`] compiled for AVX2 (16 vector registers).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_rows_avx2<const R: usize, const PF: usize>(
    rows: [&[BlockQ6K]; R],
    act: &[BlockQ8K],
) -> [f32; R] {
    q6k_rows_one_token::<R, PF>(rows, act)
}

/// The Q6_K candidates `avx2-ymm-{R}row-pf{PF}`: one token `R` rows per pass, prefetched `PF`
/// bytes ahead; more tokens as the table's [`q6_k_matmul`].
pub(in crate::kernels::x86) fn q6_k_rows_avx2<const R: usize, const PF: usize>(
    w: &[BlockQ6K],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: the table holding this candidate is only used after the AVX2 `detected()`.
    unsafe { q6_k_matmul_by::<R>(w, act, d, out, q6k_rows_avx2::<R, PF>) }
}

pub(in crate::kernels::x86) fn q6_k_matmul(
    w: &[BlockQ6K],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    let nb = check_q8k(w, act, d, out);
    let n = d.n_tok;
    banded(d.rows, n, |r, t, nt| {
        let o = &mut out[r * n + t..r * n + t + nt];
        let a = &act[t * nb..(t + nt) * nb];
        // SAFETY: whole blocks only; table used only after `detected()`.
        unsafe { q6k_row(&w[r * nb..(r + 1) * nb], a, nb, o) }
    });
}

/// Lanes of one Q8_0 block pair: exact i16 x i16 products (`madd`, no sign tricks, so any int8
/// input is exact), pairs regrouped so lane p holds elements 4p..4p+3.
#[inline(always)]
unsafe fn q8_0_lanes(w: &BlockQ8_0, x: &BlockQ8_0) -> __m256i {
    let wv = load_i(w.qs.as_ptr() as *const u8);
    let xv = load_i(x.qs.as_ptr() as *const u8);
    let lo = _mm256_madd_epi16(
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(wv)),
        _mm256_cvtepi8_epi16(_mm256_castsi256_si128(xv)),
    );
    let hi = _mm256_madd_epi16(
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(wv)),
        _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(xv)),
    );
    // hadd per 128-bit half: [lo01 lo23 hi01 hi23 | lo45 lo67 hi45 hi67] -> reorder.
    _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_hadd_epi32(lo, hi))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_impl(w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
    let nb = d.k / 32;
    for r in 0..d.rows {
        let wrow = &w[r * nb..(r + 1) * nb];
        for t in 0..d.n_tok {
            let xrow = &act[t * nb..(t + 1) * nb];
            let mut acc = _mm256_setzero_ps();
            for (wb, xb) in wrow.iter().zip(xrow) {
                prefetch((wb as *const BlockQ8_0 as *const u8).wrapping_add(PREFETCH));
                let dd = f16_bits_to_f32(wb.d) * f16_bits_to_f32(xb.d);
                let lanes = _mm256_cvtepi32_ps(q8_0_lanes(wb, xb));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(dd), lanes, acc);
            }
            out[r * d.n_tok + t] = hsum8(acc);
        }
    }
}

/// ggml's `mul_sum_i8_pairs` lanes (`maddubs(|w|, x * sign(w))`, then pairs of i16 summed):
/// the lanes of [`q8_0_lanes`] in 4 instructions instead of 7. Exact when no activation is
/// -128 (then |w| <= 128 times |x| <= 127 cannot saturate an i16 pair sum, and `x * sign(w)`
/// cannot overflow); [`quantize_row_q8_0`](crate::kernels::quantize_row_q8_0) gives |x| <= 127.
#[inline(always)]
unsafe fn q8_0_lanes_signed(wv: __m256i, xv: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(wv, wv);
    let sx = _mm256_sign_epi8(xv, wv);
    _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sx), _mm256_set1_epi16(1))
}

/// Prefetch distance of the two-row Q8_0 matvec, per weight stream (the F16 pair's reasoning:
/// far enough ahead to walk the page tables early).
const PREFETCH_Q8_PAIR: usize = 32768;

/// `R` Q8_0 weight rows against one activation row whose block scales are already f32 (`dx`):
/// per block `acc = fma(d_w * d_x, lanes, acc)`, then [`hsum8`], as [`q8_0_impl`]. Inlined into
/// a `#[target_feature]` wrapper per variant (loops, no closures: a closure would not inherit
/// the wrapper's target features).
#[inline(always)]
pub(in crate::kernels::x86) unsafe fn q8_0_rows<const R: usize>(
    w: [&[BlockQ8_0]; R],
    x: &[BlockQ8_0],
    dx: &[f32],
) -> [f32; R] {
    let mut acc = [_mm256_setzero_ps(); R];
    for (i, xb) in x.iter().enumerate() {
        if i % 2 == 0 {
            // Blocks are 34 bytes: one prefetch per 68 bytes covers every cache line.
            for row in &w {
                prefetch((row.as_ptr().add(i) as *const u8).wrapping_add(PREFETCH_Q8_PAIR));
            }
        }
        let xv = load_i(xb.qs.as_ptr() as *const u8);
        for r in 0..R {
            let wb = &w[r][i];
            let l = _mm256_cvtepi32_ps(q8_0_lanes_signed(load_i(wb.qs.as_ptr() as *const u8), xv));
            let d = f16_bits_to_f32(wb.d) * dx[i];
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), l, acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        out[r] = hsum8(acc[r]);
    }
    out
}

/// [`q8_0_rows`] for two rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_two_rows(a: &[BlockQ8_0], b: &[BlockQ8_0], x: &[BlockQ8_0], dx: &[f32]) -> [f32; 2] {
    q8_0_rows([a, b], x, dx)
}

/// Longest row (in Q8_0 blocks) whose activation scales the matvec widens on the stack.
pub(in crate::kernels::x86) const Q8_0_WIDE_MAX: usize = 512;

pub(in crate::kernels::x86) fn q8_0_matmul(
    w: &[BlockQ8_0],
    act: &[BlockQ8_0],
    d: MatDims,
    out: &mut [f32],
) {
    assert!(
        d.k.is_multiple_of(32),
        "avx2 q8_0: k = {} is not whole blocks",
        d.k
    );
    check("weight blocks", w.len(), d.rows * d.k / 32);
    check("Q8_0 blocks", act.len(), d.n_tok * d.k / 32);
    check("out", out.len(), d.rows * d.n_tok);
    let nb = d.k / 32;
    let fast = d.n_tok == 1
        && nb <= Q8_0_WIDE_MAX
        && d.rows >= 2
        && act[..nb].iter().all(|b| !b.qs.contains(&i8::MIN));
    if !fast {
        // SAFETY: lengths checked; whole blocks only; table used only after `detected()`.
        return unsafe { q8_0_impl(w, act, d, out) };
    }
    let mut dx = [0f32; Q8_0_WIDE_MAX];
    for (f, b) in dx.iter_mut().zip(&act[..nb]) {
        *f = f16::from_bits(b.d).to_f32();
    }
    let x = &act[..nb];
    let row = |r: usize| &w[r * nb..(r + 1) * nb];
    let mut r = 0;
    while r + 2 <= d.rows {
        // SAFETY: every slice has nb blocks; table used only after `detected()`.
        let [a, b] = unsafe { q8_0_two_rows(row(r), row(r + 1), x, &dx[..nb]) };
        out[r] = a;
        out[r + 1] = b;
        r += 2;
    }
    if r < d.rows {
        let one = MatDims { rows: 1, ..d };
        // SAFETY: one row of nb blocks against one activation row; `detected()` holds.
        unsafe { q8_0_impl(row(r), x, one, &mut out[r..r + 1]) };
    }
}
