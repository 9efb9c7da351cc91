//! I2_S, TQ2_0 and TQ1_0 products (I2_S.md §5, §6a, §7).

use super::*;

/// The four vectors of 32 consecutive codes in one 128-element block's 32 code bytes (element
/// e at byte e%32, shift 6-2*(e/32)).
#[inline(always)]
unsafe fn block_codes(v: __m256i) -> [__m256i; 4] {
    let mask = _mm256_set1_epi8(3);
    [
        _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask),
        _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask),
        _mm256_and_si256(v, mask),
    ]
}

/// int16 lane sums of one block: `maddubs` of each code vector with its 32 activations, added.
#[inline(always)]
unsafe fn block_dot16(c: &[__m256i; 4], x: [__m256i; 4]) -> __m256i {
    let s0 = _mm256_maddubs_epi16(c[0], x[0]);
    let s1 = _mm256_maddubs_epi16(c[1], x[1]);
    let s2 = _mm256_maddubs_epi16(c[2], x[2]);
    let s3 = _mm256_maddubs_epi16(c[3], x[3]);
    _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3))
}

/// The 128 activations of block `b` of an int8 row, as four vectors.
#[inline(always)]
unsafe fn block_acts(q: *const i8, b: usize) -> [__m256i; 4] {
    let qp = q.add(128 * b) as *const u8;
    [
        load_i(qp),
        load_i(qp.add(32)),
        load_i(qp.add(64)),
        load_i(qp.add(96)),
    ]
}

/// Integer dots of one I2_S row (`k/4` code bytes at `row`) with `NT` int8 activation rows.
/// Per 128-element block: the 32 code bytes hold elements e at byte e%32, shift 6-2*(e/32), so
/// four shift+mask steps give four vectors of 32 consecutive codes. `maddubs(code, q)` pairs are
/// at most 2*2*128 = 512 in magnitude and four of them sum to at most 2048: no int16 saturation.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_row_dots<const NT: usize>(row: *const u8, k: usize, q: [*const i8; NT]) -> [i32; NT] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); NT];
    let nb = k / 128;
    let mut b0 = 0;
    while b0 < nb {
        // int16 partial sums over up to 8 blocks (each block adds at most 4*2*3*128 = 3072 in
        // magnitude even for the never-written code 3: 8 blocks stay below 32767), then widen.
        let b1 = (b0 + 8).min(nb);
        let mut s16 = [_mm256_setzero_si256(); NT];
        for b in b0..b1 {
            prefetch(row.wrapping_add(32 * b + PREFETCH));
            let c = block_codes(load_i(row.add(32 * b)));
            for t in 0..NT {
                s16[t] = _mm256_add_epi16(s16[t], block_dot16(&c, block_acts(q[t], b)));
            }
        }
        for t in 0..NT {
            acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(s16[t], ones));
        }
        b0 = b1;
    }
    let mut out = [0i32; NT];
    for t in 0..NT {
        out[t] = hsum_i32(acc[t]);
    }
    out
}

/// Integer dots of `R` consecutive I2_S rows (`rb` bytes apart from `row`) with one int8
/// activation row: the decode matvec. Each 128-element block's four activation vectors are
/// loaded once for the `R` rows; each row streams with its own prefetch `PF` bytes ahead. The
/// int16 bound is [`i2s_row_dots`]'s.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_rows_dots<const R: usize, const PF: usize>(
    row: *const u8,
    rb: usize,
    k: usize,
    q: *const i8,
) -> [i32; R] {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); R];
    let nb = k / 128;
    let mut b0 = 0;
    while b0 < nb {
        let b1 = (b0 + 8).min(nb);
        let mut s16 = [_mm256_setzero_si256(); R];
        for b in b0..b1 {
            let x = block_acts(q, b);
            for (r, s) in s16.iter_mut().enumerate() {
                let p = row.wrapping_add(r * rb + 32 * b);
                prefetch(p.wrapping_add(PF));
                *s = _mm256_add_epi16(*s, block_dot16(&block_codes(load_i(p)), x));
            }
        }
        for r in 0..R {
            acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(s16[r], ones));
        }
        b0 = b1;
    }
    let mut out = [0i32; R];
    for r in 0..R {
        out[r] = hsum_i32(acc[r]);
    }
    out
}

/// The one-token product: rows `R` at a time through [`i2s_rows_dots`] (the rest one at a
/// time). The integer dots go into `out` as raw bits first and get the epilogue 8 at a time
/// afterwards, so no row waits on a scalar division. On a Zen 4 EPYC one row at a time with
/// 3 KiB prefetch streamed 18.6-20.7 GB/s from DRAM, two interleaved rows only 11-12.
///
/// # Safety
/// Lengths as [`crate::kernels::check_i2s`] checks them for one token; AVX2 + FMA + F16C available.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_vec_impl<const R: usize, const PF: usize>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    let (k, rb) = (d.k, d.k / 4);
    let q = act.q.as_ptr();
    let mut r = 0;
    while r + R <= d.rows {
        let dots = i2s_rows_dots::<R, PF>(codes.as_ptr().add(r * rb), rb, k, q);
        for (i, dot) in dots.into_iter().enumerate() {
            out[r + i] = f32::from_bits(dot as u32);
        }
        r += R;
    }
    while r < d.rows {
        let [dot] = i2s_rows_dots::<1, PF>(codes.as_ptr().add(r * rb), rb, k, q);
        out[r] = f32::from_bits(dot as u32);
        r += 1;
    }
    i2s_epilogue_in_place(&mut out[..d.rows], act.sum[0], act.scale[0], w_scale);
}

/// The decode candidates `avx2-ymm-{R}row-pf{PF}`: one token, `R` rows per pass, each row's
/// stream prefetched `PF` bytes ahead. Other token counts go to [`i2s_matmul`].
pub(super) fn i2s_vec<const R: usize, const PF: usize>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    if d.n_tok != 1 {
        return i2s_matmul(codes, w_scale, act, d, out);
    }
    crate::kernels::check_i2s("avx2", codes, act, d, out);
    // SAFETY: lengths checked above; the table is only used after `detected()`.
    unsafe { i2s_vec_impl::<R, PF>(codes, w_scale, act, d, out) }
}

/// The multi-token product: each weight block decoded once and used for a group of up to 8
/// activation rows ([`i2s_row_dots`]). Groups of 8 (`G8`, when the group's activations fit in
/// L1: `8 * k` up to 24 KiB) amortize the code decoding over more tokens than 4 (one shift and
/// one `and` per 32 codes against 8 ALU operations per 32 codes and token); with a long k they
/// shrink to 4.
///
/// Loop order: a band of 16 weight rows (10 KiB at k = 2560) is swept once per token
/// group, so the group's activations are read from L1 by every row of the band. (bitnet.cpp's
/// order, each row against every token group in turn, was a candidate for a while: it won the
/// calibration's k = 2560 product on noise but lost in the model, whose k = 6912 rows stream
/// 128 tokens' activations, 885 KB, from L2 for every row.)
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_impl<const G8: bool>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    let (k, n) = (d.k, d.n_tok);
    let rb = k / 4;
    let qp = |t: usize| act.q.as_ptr().add(t * k);
    let epi = |t: usize, dot: i32| i2s_epilogue(dot, act.sum[t], act.scale[t], w_scale);
    if n == 1 {
        return i2s_vec_impl::<1, PREFETCH>(codes, w_scale, act, d, out);
    }
    const BAND: usize = 16;
    let group = if G8 && 8 * k <= 24 * 1024 { 8 } else { 4 };
    for r0 in (0..d.rows).step_by(BAND) {
        let r1 = (r0 + BAND).min(d.rows);
        let mut t = 0;
        while t < n {
            let nt = (n - t).min(group);
            for r in r0..r1 {
                let row = codes.as_ptr().add(r * rb);
                let o = &mut out[r * n + t..r * n + t + nt];
                macro_rules! tile {
                    ($nt:literal) => {{
                        let q: [*const i8; $nt] = core::array::from_fn(|i| qp(t + i));
                        let dots = i2s_row_dots::<$nt>(row, k, q);
                        for (i, dot) in dots.into_iter().enumerate() {
                            o[i] = epi(t + i, dot);
                        }
                    }};
                }
                match nt {
                    8 => tile!(8),
                    7 => tile!(7),
                    6 => tile!(6),
                    5 => tile!(5),
                    4 => tile!(4),
                    3 => tile!(3),
                    2 => tile!(2),
                    _ => tile!(1),
                }
            }
            t += nt;
        }
    }
}

/// [`i2s_epilogue`] over values that hold i32 dots as raw bits: `((dot - sum) / act_scale) *
/// w_scale` per value, the same three IEEE float32 operations vectorized.
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::kernels::x86) unsafe fn i2s_epilogue_in_place(
    v: &mut [f32],
    sum: i32,
    act_scale: f32,
    w_scale: f32,
) {
    let (vs, va, vw) = (
        _mm256_set1_ps(sum as f32),
        _mm256_set1_ps(act_scale),
        _mm256_set1_ps(w_scale),
    );
    let n8 = v.len() & !7;
    let p = v.as_mut_ptr();
    for c in (0..n8).step_by(8) {
        let dot = _mm256_cvtepi32_ps(_mm256_loadu_si256(p.add(c) as *const __m256i));
        let y = _mm256_mul_ps(_mm256_div_ps(_mm256_sub_ps(dot, vs), va), vw);
        _mm256_storeu_ps(p.add(c), y);
    }
    for x in &mut v[n8..] {
        *x = i2s_epilogue(x.to_bits() as i32, sum, act_scale, w_scale);
    }
}

/// The product candidates `avx2-ymm-1row-{8,4}tok`: see [`i2s_impl`].
pub(super) fn i2s_matmul_by<const G8: bool>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    crate::kernels::check_i2s("avx2", codes, act, d, out);
    // SAFETY: lengths checked above; the table is only used after `detected()`.
    unsafe { i2s_impl::<G8>(codes, w_scale, act, d, out) }
}

/// The table's product: [`i2s_matmul_by`] in bands of 16 rows, groups of 8 tokens.
pub(super) fn i2s_matmul(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    i2s_matmul_by::<true>(codes, w_scale, act, d, out)
}

/// Integer lanes of one ternary block from its 8 code vectors (32 consecutive elements each,
/// codes 0..2) and the Q8_K block: i16 sums of `maddubs` (8 x 512 = 4096 at most), minus the
/// bsums (i16 lane j pairs elements 2j, 2j+1 mod 32 and gets bsums[j], so after the pairwise
/// `madd` lane p loses the sum of q over [32p, 32p+32)), widened to 8 i32 lanes.
#[inline(always)]
unsafe fn tq_lanes(codes: [__m256i; 8], xb: &BlockQ8K) -> __m256i {
    let qs = xb.qs.as_ptr() as *const u8;
    let mut s = _mm256_setzero_si256();
    for (i, c) in codes.into_iter().enumerate() {
        s = _mm256_add_epi16(s, _mm256_maddubs_epi16(c, load_i(qs.add(32 * i))));
    }
    let bsums = load_i(xb.bsums.as_ptr() as *const u8);
    _mm256_madd_epi16(_mm256_sub_epi16(s, bsums), _mm256_set1_epi16(1))
}

/// TQ2_0 codes: element j*4 + l*32 + m is bits 2l of qs[j + m] (j in {0, 32}): chunk j, shift
/// 2l gives 32 consecutive elements starting at 4j + 32l.
#[inline(always)]
unsafe fn tq2_0_codes(b: &BlockTQ2_0) -> [__m256i; 8] {
    let m3 = _mm256_set1_epi8(3);
    let v0 = load_i(b.qs.as_ptr());
    let v1 = load_i(b.qs.as_ptr().add(32));
    [
        _mm256_and_si256(v0, m3),
        _mm256_and_si256(_mm256_srli_epi16::<2>(v0), m3),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v0), m3),
        _mm256_and_si256(_mm256_srli_epi16::<6>(v0), m3),
        _mm256_and_si256(v1, m3),
        _mm256_and_si256(_mm256_srli_epi16::<2>(v1), m3),
        _mm256_and_si256(_mm256_srli_epi16::<4>(v1), m3),
        _mm256_and_si256(_mm256_srli_epi16::<6>(v1), m3),
    ]
}

/// Trits of the bytes of `v` for per-16-bit-lane powers of 3 `pow3` (both bytes of a lane use
/// the same power): `q = (u8)(byte * 3^n)`, `t = (q * 3) >> 8`. The two bytes of each 16-bit lane
/// are handled separately so the 8-bit products cannot carry into each other.
#[inline(always)]
unsafe fn trits(v: __m256i, pow3: __m256i) -> __m256i {
    let lo_mask = _mm256_set1_epi16(0xFF);
    let three = _mm256_set1_epi16(3);
    let lo = _mm256_and_si256(v, lo_mask);
    let hi = _mm256_srli_epi16::<8>(v);
    let ql = _mm256_and_si256(_mm256_mullo_epi16(lo, pow3), lo_mask);
    let qh = _mm256_and_si256(_mm256_mullo_epi16(hi, pow3), lo_mask);
    let tl = _mm256_srli_epi16::<8>(_mm256_mullo_epi16(ql, three));
    let th = _mm256_srli_epi16::<8>(_mm256_mullo_epi16(qh, three));
    _mm256_or_si256(tl, _mm256_slli_epi16::<8>(th))
}

/// TQ1_0 codes (I2_S.md §7) as 8 vectors of 32 consecutive elements: qs[0..32] with powers
/// 1..81 give elements 0..159; qs[32..48] in both halves gives 160..191 (powers 1 | 3) and
/// 192..223 (9 | 27); the last vector is qs[32..48] at 81 (224..239) and qh (240..255: byte
/// 4n+j holds trit n of qh[j], so the 16-bit lanes use powers 1,1,3,3,9,9,27,27).
#[inline(always)]
unsafe fn tq1_0_codes(b: &BlockTQ1_0) -> [__m256i; 8] {
    let p = |n: i16| _mm256_set1_epi16(n);
    let v0 = load_i(b.qs.as_ptr());
    let tail = _mm_loadu_si128(b.qs.as_ptr().add(32) as *const __m128i);
    let v1 = _mm256_broadcastsi128_si256(tail);
    let qh = _mm_set1_epi32(i32::from_le_bytes(b.qh));
    let v2 = _mm256_set_m128i(qh, tail);
    [
        trits(v0, p(1)),
        trits(v0, p(3)),
        trits(v0, p(9)),
        trits(v0, p(27)),
        trits(v0, p(81)),
        trits(v1, _mm256_set_m128i(_mm_set1_epi16(3), _mm_set1_epi16(1))),
        trits(v1, _mm256_set_m128i(_mm_set1_epi16(27), _mm_set1_epi16(9))),
        trits(
            v2,
            _mm256_set_m128i(_mm_setr_epi16(1, 1, 3, 3, 9, 9, 27, 27), _mm_set1_epi16(81)),
        ),
    ]
}

#[inline(always)]
pub(super) unsafe fn f16_bits_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// One weight row of ternary blocks against `n` Q8_K rows: per block `acc = acc + lanes * D`
/// (multiply then add, no fma), then [`hsum8`]. Codes are decoded once per block and reused
/// across the activation rows.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tq_row<B>(
    wrow: &[B],
    act: &[BlockQ8K],
    nb: usize,
    out: &mut [f32],
    decode: impl Fn(&B) -> ([__m256i; 8], u16),
) {
    const NT: usize = 4;
    let n = out.len();
    let mut t0 = 0;
    while t0 < n {
        let nt = (n - t0).min(NT);
        let mut acc = [_mm256_setzero_ps(); NT];
        for (i, wb) in wrow.iter().enumerate() {
            prefetch((wb as *const B as *const u8).wrapping_add(PREFETCH));
            let (codes, dbits) = decode(wb);
            let dw = f16_bits_to_f32(dbits);
            for j in 0..nt {
                let xb = &act[(t0 + j) * nb + i];
                let lanes = _mm256_cvtepi32_ps(tq_lanes(codes, xb));
                let dd = _mm256_set1_ps(xb.d * dw);
                acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(lanes, dd));
            }
        }
        for j in 0..nt {
            out[t0 + j] = hsum8(acc[j]);
        }
        t0 += nt;
    }
}

pub(super) fn check_q8k<B>(w: &[B], act: &[BlockQ8K], d: MatDims, out: &[f32]) -> usize {
    assert!(
        d.k.is_multiple_of(QK_K),
        "avx2: k = {} is not whole blocks",
        d.k
    );
    let nb = d.k / QK_K;
    check("weight blocks", w.len(), d.rows * nb);
    check("Q8_K blocks", act.len(), d.n_tok * nb);
    check("out", out.len(), d.rows * d.n_tok);
    nb
}

/// Visits (row, first token, token count) in bands of 16 weight rows x groups of up to 4 tokens,
/// so a band's weights and a group's activations both stay in L1/L2 while they are reused
/// (rather than every row streaming all activation rows).
pub(super) fn banded(rows: usize, n_tok: usize, mut f: impl FnMut(usize, usize, usize)) {
    const BAND: usize = 16;
    for r0 in (0..rows).step_by(BAND) {
        for t in (0..n_tok).step_by(4) {
            let nt = (n_tok - t).min(4);
            for r in r0..(r0 + BAND).min(rows) {
                f(r, t, nt);
            }
        }
    }
}

pub(super) fn tq2_0_matmul(w: &[BlockTQ2_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    let nb = check_q8k(w, act, d, out);
    let n = d.n_tok;
    banded(d.rows, n, |r, t, nt| {
        let o = &mut out[r * n + t..r * n + t + nt];
        let a = &act[t * nb..(t + nt) * nb];
        // SAFETY: every block is a whole struct (loads stay inside it); table used only after
        // `detected()`.
        unsafe {
            tq_row(&w[r * nb..(r + 1) * nb], a, nb, o, |b| {
                (tq2_0_codes(b), b.d)
            })
        }
    });
}

pub(super) fn tq1_0_matmul(w: &[BlockTQ1_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    let nb = check_q8k(w, act, d, out);
    let n = d.n_tok;
    banded(d.rows, n, |r, t, nt| {
        let o = &mut out[r * n + t..r * n + t + nt];
        let a = &act[t * nb..(t + nt) * nb];
        // SAFETY: as in tq2_0_matmul (qs[32..48] is read with a 16-byte load, qh by value).
        unsafe {
            tq_row(&w[r * nb..(r + 1) * nb], a, nb, o, |b| {
                (tq1_0_codes(b), b.d)
            })
        }
    });
}
