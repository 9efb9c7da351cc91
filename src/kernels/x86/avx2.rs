//! AVX2 + FMA + F16C kernels. Every one reproduces [`super::super::scalar`] bit for bit:
//! integer parts are exact (the bounds that keep int16 partial sums from saturating are noted
//! where they are used), float parts use the same lanes, the same fma/no-fma choices and the
//! same horizontal sums.
//!
//! The table's entries are safe `fn`s: each checks the slice lengths it is going to read with raw
//! pointers (a misuse panics instead of reading out of bounds) and then calls the
//! `#[target_feature]` code, which is sound because [`TABLE`] is only reachable through
//! [`super::super::table`] after [`detected`] returned true.

use super::super::scalar::i2s_epilogue;
use super::super::{I8Rows, KernelTable, Kind, MatDims};
use crate::kernels::act;
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK_K};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use half::f16;

/// True when this CPU can run these kernels.
pub(crate) fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

pub(crate) static TABLE: KernelTable = KernelTable {
    kind: Kind::Avx2,
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
    quantize_i8,
    quantize_q8k,
};

/// Panics unless `len >= need`: the guard in front of every raw-pointer loop.
#[inline(always)]
pub(super) fn check(what: &str, len: usize, need: usize) {
    assert!(len >= need, "avx2 kernel: {what} has {len}, needs {need}");
}

// ---------------------------------------------------------------------------------------------
// Horizontal sums

/// Sum of 8 i32 lanes (integer: order is irrelevant).
#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// ggml `hsum_float_8` / tinyBLAS `hsum`: `t[l] = acc[l+4] + acc[l]`, `(t0+t2) + (t1+t3)`.
#[inline(always)]
unsafe fn hsum8(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// `GGML_F32x8_REDUCE`: `a = (acc0+acc2) + (acc1+acc3)`, `t[l] = a[l]+a[l+4]`,
/// `(t0+t1) + (t2+t3)` (two `hadd`s).
#[inline(always)]
pub(super) unsafe fn reduce_4x8(acc: [__m256; 4]) -> f32 {
    let a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[2]), _mm256_add_ps(acc[1], acc[3]));
    let t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
    let t = _mm_hadd_ps(t, t);
    _mm_cvtss_f32(_mm_hadd_ps(t, t))
}

/// How far ahead of the weight stream to prefetch. Measured on this machine: without software
/// prefetch the I2_S matvec streamed only ~2.6 GB/s from DRAM (the hardware prefetcher does not
/// run far enough ahead of a loop that consumes 64 bytes per ~40 instructions).
const PREFETCH: usize = 3072;

/// Prefetch hint for a future weight load. `_mm_prefetch` never faults, so addresses past the
/// end of the weights are harmless (computed with `wrapping_add`, never dereferenced).
#[inline(always)]
pub(super) unsafe fn prefetch(p: *const u8) {
    _mm_prefetch::<_MM_HINT_T0>(p as *const i8);
}

#[inline(always)]
unsafe fn load_i(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

// ---------------------------------------------------------------------------------------------
// I2_S

/// Integer dots of one I2_S row (`k/4` code bytes at `row`) with `NT` int8 activation rows.
/// Per 128-element block: the 32 code bytes hold elements e at byte e%32, shift 6-2*(e/32), so
/// four shift+mask steps give four vectors of 32 consecutive codes. `maddubs(code, q)` pairs are
/// at most 2*2*128 = 512 in magnitude and four of them sum to at most 2048: no int16 saturation.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_row_dots<const NT: usize>(row: *const u8, k: usize, q: [*const i8; NT]) -> [i32; NT] {
    let mask = _mm256_set1_epi8(3);
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
            let v = load_i(row.add(32 * b));
            let c0 = _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask);
            let c1 = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
            let c2 = _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask);
            let c3 = _mm256_and_si256(v, mask);
            for t in 0..NT {
                let qp = q[t].add(128 * b) as *const u8;
                let s0 = _mm256_maddubs_epi16(c0, load_i(qp));
                let s1 = _mm256_maddubs_epi16(c1, load_i(qp.add(32)));
                let s2 = _mm256_maddubs_epi16(c2, load_i(qp.add(64)));
                let s3 = _mm256_maddubs_epi16(c3, load_i(qp.add(96)));
                let s = _mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3));
                s16[t] = _mm256_add_epi16(s16[t], s);
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i2s_impl(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    let (k, n) = (d.k, d.n_tok);
    let rb = k / 4;
    let qp = |t: usize| act.q.as_ptr().add(t * k);
    let epi = |t: usize, dot: i32| i2s_epilogue(dot, act.sum[t], act.scale[t], w_scale);
    if n == 1 {
        // One row at a time: a single sequential weight stream with its software prefetch
        // streamed 18.6-20.7 GB/s from DRAM here, two interleaved row streams only 11-12.
        // The integer dots go into `out` as raw bits first and get the epilogue 8 at a time
        // afterwards, so no row waits on a scalar division.
        for (r, o) in out[..d.rows].iter_mut().enumerate() {
            let [a] = i2s_row_dots::<1>(codes.as_ptr().add(r * rb), k, [qp(0)]);
            *o = f32::from_bits(a as u32);
        }
        i2s_epilogue_in_place(&mut out[..d.rows], act.sum[0], act.scale[0], w_scale);
        return;
    }
    // Several tokens: decode each weight block once and use it for a group of up to 8
    // activation rows. Loop order: a band of weight rows (small enough to stay in L1/L2) is swept
    // once per token group, so the group's activations stay in L1/L2 instead of every row
    // streaming all n activation rows. Groups of 8 amortize the code decoding better; with a
    // long k they would no longer fit L1, so they shrink to 4.
    const BAND: usize = 16;
    let group = if 8 * k <= 24 * 1024 { 8 } else { 4 };
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
pub(super) unsafe fn i2s_epilogue_in_place(v: &mut [f32], sum: i32, act_scale: f32, w_scale: f32) {
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

fn i2s_matmul(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    assert!(
        d.k.is_multiple_of(128),
        "avx2 i2s: k = {} is not whole blocks",
        d.k
    );
    check("i2s codes", codes.len(), d.rows * d.k / 4);
    check("i2s activations", act.q.len(), d.n_tok * d.k);
    check(
        "i2s act scales",
        act.scale.len().min(act.sum.len()),
        d.n_tok,
    );
    check("i2s out", out.len(), d.rows * d.n_tok);
    // SAFETY: lengths checked above; the table is only used after `detected()`.
    unsafe { i2s_impl(codes, w_scale, act, d, out) }
}

// ---------------------------------------------------------------------------------------------
// TQ2_0 / TQ1_0 / Q6_K x Q8_K (I2_S.md §6a)

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
unsafe fn f16_bits_to_f32(bits: u16) -> f32 {
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

fn check_q8k<B>(w: &[B], act: &[BlockQ8K], d: MatDims, out: &[f32]) -> usize {
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
fn banded(rows: usize, n_tok: usize, mut f: impl FnMut(usize, usize, usize)) {
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

fn tq2_0_matmul(w: &[BlockTQ2_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
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

fn tq1_0_matmul(w: &[BlockTQ1_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_row(wrow: &[BlockQ6K], act: &[BlockQ8K], nb: usize, out: &mut [f32]) {
    const NT: usize = 4;
    let n = out.len();
    let mut t0 = 0;
    while t0 < n {
        let nt = (n - t0).min(NT);
        let mut acc = [_mm256_setzero_ps(); NT];
        for (i, wb) in wrow.iter().enumerate() {
            // A Q6_K block is 210 bytes: prefetch each of the cache lines it spans.
            let pb = (wb as *const BlockQ6K as *const u8).wrapping_add(PREFETCH);
            for line in 0..4 {
                prefetch(pb.wrapping_add(64 * line));
            }
            let v = q6k_unsigned(wb);
            let dw = f16_bits_to_f32(wb.d);
            for j in 0..nt {
                let xb = &act[(t0 + j) * nb + i];
                let lanes = _mm256_cvtepi32_ps(q6k_lanes(&v, &wb.scales, xb));
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(xb.d * dw), lanes, acc[j]);
            }
        }
        for j in 0..nt {
            out[t0 + j] = hsum8(acc[j]);
        }
        t0 += nt;
    }
}

fn q6_k_matmul(w: &[BlockQ6K], act: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
    let nb = check_q8k(w, act, d, out);
    let n = d.n_tok;
    banded(d.rows, n, |r, t, nt| {
        let o = &mut out[r * n + t..r * n + t + nt];
        let a = &act[t * nb..(t + nt) * nb];
        // SAFETY: whole blocks only; table used only after `detected()`.
        unsafe { q6k_row(&w[r * nb..(r + 1) * nb], a, nb, o) }
    });
}

// ---------------------------------------------------------------------------------------------
// Q8_0 x Q8_0

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
pub(super) unsafe fn q8_0_impl(w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
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
pub(super) const PREFETCH_Q8_PAIR: usize = 32768;

/// `R` Q8_0 weight rows against one activation row whose block scales are already f32 (`dx`):
/// per block `acc = fma(d_w * d_x, lanes, acc)`, then [`hsum8`], as [`q8_0_impl`]. Inlined into
/// a `#[target_feature]` wrapper per variant (loops, no closures: a closure would not inherit
/// the wrapper's target features).
#[inline(always)]
pub(super) unsafe fn q8_0_rows<const R: usize>(
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
pub(super) const Q8_0_WIDE_MAX: usize = 512;

pub(super) fn q8_0_matmul(w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
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

// ---------------------------------------------------------------------------------------------
// Float dots (FORWARD.md §8)

#[inline(always)]
pub(super) unsafe fn load_h(p: *const f16) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f32_ggml_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    for c in (0..np).step_by(32) {
        prefetch((pa as *const u8).wrapping_add(4 * c + PREFETCH));
        prefetch((pa as *const u8).wrapping_add(4 * c + 64 + PREFETCH));
        for j in 0..4 {
            let i = c + 8 * j;
            acc[j] = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(i)),
                _mm256_loadu_ps(pb.add(i)),
                acc[j],
            );
        }
    }
    let mut sum = reduce_4x8(acc);
    for i in np..n {
        sum = a[i].mul_add(b[i], sum);
    }
    sum
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_ggml_impl(a: &[f16], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let np = n & !31;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    for c in (0..np).step_by(32) {
        // The first operand is the weight row (or K-cache row): prefetch its stream.
        prefetch((pa as *const u8).wrapping_add(2 * c + PREFETCH));
        for j in 0..4 {
            let i = c + 8 * j;
            acc[j] = _mm256_fmadd_ps(load_h(pa.add(i)), load_h(pb.add(i)), acc[j]);
        }
    }
    let mut sum = reduce_4x8(acc) as f64;
    for i in np..n {
        sum += (a[i].to_f32() * b[i].to_f32()) as f64;
    }
    sum as f32
}

/// A float weight element type: 8-wide load to f32 and exact scalar conversion.
trait FloatW: Copy {
    /// # Safety
    /// `p` must point to 8 readable elements; AVX + F16C must be available.
    unsafe fn load8(p: *const Self) -> __m256;
    fn to_f32(self) -> f32;
}
impl FloatW for f32 {
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> __m256 {
        _mm256_loadu_ps(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}
impl FloatW for f16 {
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> __m256 {
        load_h(p)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// tinyBLAS order for `R` weight rows at once against one activation vector (independent fma
/// chains; each output keeps its own 8-lane order). Leftovers after the horizontal sum, as in
/// scalar.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tinyblas_rows<const R: usize, W: FloatW>(w: [&[W]; R], x: &[f32]) -> [f32; R] {
    let n = x.len();
    let np = n & !7;
    let mut acc = [_mm256_setzero_ps(); R];
    for c in (0..np).step_by(8) {
        let xv = _mm256_loadu_ps(x.as_ptr().add(c));
        for r in 0..R {
            acc[r] = _mm256_fmadd_ps(W::load8(w[r].as_ptr().add(c)), xv, acc[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let mut s = hsum8(acc[r]);
        for i in np..n {
            s = w[r][i].to_f32().mul_add(x[i], s);
        }
        out[r] = s;
    }
    out
}

fn dot_f32_ggml(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reads stay below min(len); table used only after `detected()`.
    unsafe { dot_f32_ggml_impl(a, b) }
}

pub(super) fn dot_f16_ggml(a: &[f16], b: &[f16]) -> f32 {
    // SAFETY: as above.
    unsafe { dot_f16_ggml_impl(a, b) }
}

fn dot_f32_tinyblas(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both slices cut to n; table used only after `detected()`.
    unsafe {
        let [s] = tinyblas_rows::<1, f32>([&a[..n]], &b[..n]);
        s
    }
}

fn dot_f16_f32_tinyblas(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both slices cut to n; table used only after `detected()`.
    unsafe {
        let [s] = tinyblas_rows::<1, f16>([&a[..n]], &b[..n]);
        s
    }
}

pub(super) fn check_float<W, X>(w: &[W], x: &[X], d: MatDims, out: &[f32]) {
    check("weights", w.len(), d.rows * d.k);
    check("x", x.len(), d.n_tok * d.k);
    check("out", out.len(), d.rows * d.n_tok);
}

fn f32_ggml_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    check_float(w, x, d, out);
    for r in 0..d.rows {
        for t in 0..d.n_tok {
            out[r * d.n_tok + t] =
                dot_f32_ggml(&w[r * d.k..(r + 1) * d.k], &x[t * d.k..(t + 1) * d.k]);
        }
    }
}

/// How far ahead the two-row F16 matvec prefetches each of its weight streams. Measured on the
/// 128256 x 2560 head (1 thread, quiet machine): one row at a time 13-14.6 GB/s at any distance;
/// two rows 14.1 (2 KiB), 14.9 (6 KiB), 16.2 (8 KiB), 16.3-18.3 (32 KiB), 17.6 (48-64 KiB). Far
/// ahead wins because it also walks the page tables (4 KiB pages of the mmap) before the loads
/// need them; tg64 on the 2B-4T model went from 12.7 to 13.7 t/s with 6 KiB -> 32 KiB.
pub(super) const PREFETCH_F16_PAIR: usize = 32768;

/// `ggml_vec_dot_f16` order for `R` weight rows against one activation row already widened to
/// f32 (f16 -> f32 is exact, so the products and sums are those of [`dot_f16_ggml_impl`]); each
/// row streams with its own prefetch. Inlined into a `#[target_feature]` wrapper per variant.
#[inline(always)]
pub(super) unsafe fn f16_rows<const R: usize, const PF: usize>(
    w: [&[f16]; R],
    x: &[f32],
) -> [f32; R] {
    let n = x.len();
    let np = n & !31;
    let px = x.as_ptr();
    let mut acc = [[_mm256_setzero_ps(); 4]; R];
    for c in (0..np).step_by(32) {
        for row in &w {
            prefetch((row.as_ptr() as *const u8).wrapping_add(2 * c + PF));
        }
        for j in 0..4 {
            let i = c + 8 * j;
            let xv = _mm256_loadu_ps(px.add(i));
            for r in 0..R {
                acc[r][j] = _mm256_fmadd_ps(load_h(w[r].as_ptr().add(i)), xv, acc[r][j]);
            }
        }
    }
    // A loop, not `array::from_fn`: a closure here would be compiled without this function's
    // target features (it has none of its own; it is inlined into wrappers that do), so its
    // intrinsics would become calls.
    let mut out = [0f32; R];
    for r in 0..R {
        let mut s = reduce_4x8(acc[r]) as f64;
        for i in np..n {
            s += (w[r][i].to_f32() * x[i]) as f64;
        }
        out[r] = s as f32;
    }
    out
}

/// [`f16_rows`] for two rows: with 8 accumulators and the activations it fits AVX2's 16 ymm
/// registers.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_two_rows(a: &[f16], b: &[f16], x: &[f32]) -> [f32; 2] {
    f16_rows::<2, PREFETCH_F16_PAIR>([a, b], x)
}

/// Longest activation row the F16 matvec widens on the stack (32 KiB); longer rows take the
/// plain per-row dot.
pub(super) const F16_WIDE_MAX: usize = 8192;

/// `x` (at most [`F16_WIDE_MAX`] values) widened exactly to f32 in the front of `buf`. The rest
/// of the buffer is left untouched: zero-filling it was a 32 KiB memset per attention call.
pub(super) fn widen_f16<'b>(x: &[f16], buf: &'b mut [MaybeUninit<f32>; F16_WIDE_MAX]) -> &'b [f32] {
    let n = x.len();
    assert!(n <= F16_WIDE_MAX, "widen_f16: {n} values");
    let dst = buf.as_mut_ptr() as *mut f32;
    // SAFETY: dst has room for F16_WIDE_MAX >= n values; `detected()` holds for this table.
    unsafe { widen_into(x, dst) };
    // SAFETY: the first n elements were just written; MaybeUninit<f32> has f32's layout.
    unsafe { std::slice::from_raw_parts(dst, n) }
}

/// Writes `x` converted to f32 to `dst[..x.len()]`, 8 at a time with F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn widen_into(x: &[f16], dst: *mut f32) {
    let n = x.len();
    let n8 = n & !7;
    for c in (0..n8).step_by(8) {
        _mm256_storeu_ps(dst.add(c), load_h(x.as_ptr().add(c)));
    }
    for (i, h) in x.iter().enumerate().skip(n8) {
        *dst.add(i) = h.to_f32();
    }
}

/// Attention's Q·K (rows = cached keys of one head) and single-token P·V (rows = V cache rows):
/// x widened once, rows in pairs through [`f16_two_rows`].
fn f16_ggml_strided(w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
    let n = x.len();
    if n > F16_WIDE_MAX {
        return super::super::strided_rows(w, stride, x, out, dot_f16_ggml);
    }
    super::super::check_strided(w.len(), stride, n, out.len());
    let mut wide = [const { MaybeUninit::uninit() }; F16_WIDE_MAX];
    let xw = widen_f16(x, &mut wide);
    let row = |j: usize| &w[j * stride..j * stride + n];
    let rows = out.len();
    let mut j = 0;
    while j + 2 <= rows {
        // SAFETY: both rows and xw have n elements (checked above); `detected()` holds.
        let [a, b] = unsafe { f16_two_rows(row(j), row(j + 1), xw) };
        out[j] = a;
        out[j + 1] = b;
        j += 2;
    }
    if j < rows {
        out[j] = dot_f16_ggml(row(j), x);
    }
}

/// `ggml_vec_dot_f16` order of one f16 row (`n` values at `w`) against `T` rows of widened f16
/// values: each weight vector is converted once and used `T` times. The four lane accumulators
/// of the reference are built two at a time (lanes `[0, 16)` of every 32-value step, then
/// `[16, 32)`): each accumulator still adds its products in the same order, and 2T of them plus
/// the weights fit AVX2's 16 registers. `pf` is a later row, prefetched line by line in step
/// with this one. Inlined into a `#[target_feature]` wrapper per variant.
///
/// # Safety
/// `w` and every `x[t]` must be readable for `n` values; AVX2 + FMA + F16C must be available.
#[inline(always)]
unsafe fn f16_row_group<const T: usize>(
    w: *const f16,
    pf: *const f16,
    x: [*const f32; T],
    n: usize,
) -> [f32; T] {
    let np = n & !31;
    let mut acc = [[_mm256_setzero_ps(); 4]; T];
    for half in [0usize, 2] {
        let mut a = [[_mm256_setzero_ps(); 2]; T];
        for c in (0..np).step_by(32) {
            if half == 0 {
                prefetch(pf.wrapping_add(c) as *const u8);
            }
            for (jj, lane) in [c + 8 * half, c + 8 * half + 8].into_iter().enumerate() {
                let wv = load_h(w.add(lane));
                for t in 0..T {
                    a[t][jj] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x[t].add(lane)), a[t][jj]);
                }
            }
        }
        for t in 0..T {
            acc[t][half] = a[t][0];
            acc[t][half + 1] = a[t][1];
        }
    }
    group_finish(w, x, n, acc)
}

/// The reduction and the leftover `n % 32` products of a grouped row (as
/// [`dot_f16_ggml_impl`]: in double, rounded once).
#[inline(always)]
pub(super) unsafe fn group_finish<const T: usize>(
    w: *const f16,
    x: [*const f32; T],
    n: usize,
    acc: [[__m256; 4]; T],
) -> [f32; T] {
    let np = n & !31;
    let mut out = [0f32; T];
    for t in 0..T {
        let mut s = reduce_4x8(acc[t]) as f64;
        for i in np..n {
            s += ((*w.add(i)).to_f32() * *x[t].add(i)) as f64;
        }
        out[t] = s as f32;
    }
    out
}

/// How far ahead (in bytes of row data) the grouped rows prefetch: the row that far ahead is
/// fetched line by line while the current one is computed. The cached rows are short (a key:
/// 256 B at a 1280 B stride) or page-sized (a V row of 2048 cells: 4 KiB), and the hardware
/// prefetcher stops at every 4 KiB page, so without this the kernel waited on memory: tg32 at
/// depth 2048 on the 2B-4T model (Xeon, AVX-512 kernel) went from 7.8 / 13.1 to 9.0 / 15.7 t/s
/// at 1 / 2 threads. Measured distances: 1 KiB 8.8 / 15.3, 2 KiB 9.0 / 15.7, 4 KiB 9.0 / 15.5,
/// 8 KiB 8.8 / 15.0.
const GROUP_PREFETCH_BYTES: usize = 2048;

/// The rows-ahead distance of [`GROUP_PREFETCH_BYTES`] for rows of `n` values (at least one).
#[inline(always)]
pub(super) fn group_prefetch_rows(n: usize) -> usize {
    GROUP_PREFETCH_BYTES.div_ceil(2 * n.max(1)).max(1)
}

/// One grouped kernel call over `rows` strided rows: `out[j*g + t] = row_j · x[t]` for the
/// `x.len()` (1 to 4) rows of `x` (`out` already offset to the first of them).
///
/// # Safety
/// Every row (`w + j*stride`, `n` values) and every x row readable, `out` writable at
/// `j*g + t` for all `j < rows`, `t < x.len()`; the kernel's CPU features available.
pub(super) type GroupRows =
    unsafe fn(*const f16, usize, usize, usize, &[*const f32], *mut f32, usize);

/// Defines a [`GroupRows`] kernel `$name` with `$features`: the row loop around `$row::<T>` for
/// T = the number of x rows, so each instantiation inlines into this `#[target_feature]`
/// function (a closure or generic callback would be compiled without those features).
macro_rules! group_rows_kernel {
    ($name:ident, $row:ident, $features:literal) => {
        #[target_feature(enable = $features)]
        unsafe fn $name(
            w: *const f16,
            stride: usize,
            rows: usize,
            n: usize,
            x: &[*const f32],
            out: *mut f32,
            g: usize,
        ) {
            let ahead = $crate::kernels::x86::avx2::group_prefetch_rows(n) * stride;
            macro_rules! run {
                ($t:literal, $xs:expr) => {
                    for j in 0..rows {
                        let row = w.add(j * stride);
                        let r = $row::<$t>(row, row.wrapping_add(ahead), $xs, n);
                        for (t, v) in r.into_iter().enumerate() {
                            *out.add(j * g + t) = v;
                        }
                    }
                };
            }
            match *x {
                [a, b, c, d] => run!(4, [a, b, c, d]),
                [a, b, c] => run!(3, [a, b, c]),
                [a, b] => run!(2, [a, b]),
                [a] => run!(1, [a]),
                _ => unreachable!("grouped rows: {} x rows", x.len()),
            }
        }
    };
}
pub(super) use group_rows_kernel;

/// Checks a grouped call and runs `kernel` over all rows, four x rows per call. Shared by the
/// AVX2 and AVX-512 tables.
pub(super) fn strided_group_by4(
    w: &[f16],
    stride: usize,
    x: &[f32],
    g: usize,
    out: &mut [f32],
    kernel: GroupRows,
) {
    let n = super::super::check_strided_group(w.len(), stride, x.len(), g, out.len());
    let rows = out.len() / g;
    let mut t = 0;
    while t < g {
        let m = (g - t).min(4);
        let xs: [*const f32; 4] = core::array::from_fn(|i| x[(t + i.min(m - 1)) * n..].as_ptr());
        // SAFETY: every row and each of the first `m` x rows hold n values and `out` holds
        // rows * g values (checked above); `t + m <= g`; the table calling this is reachable
        // only after its `detected()`.
        unsafe {
            kernel(
                w.as_ptr(),
                stride,
                rows,
                n,
                &xs[..m],
                out.as_mut_ptr().add(t),
                g,
            )
        };
        t += m;
    }
}

group_rows_kernel!(f16_group_avx2, f16_row_group, "avx2,fma,f16c");

/// Single-token attention with the query heads of one KV head together: Q·K (rows = cached
/// keys, x = the group's queries) and P·V (rows = V rows, x = the group's probabilities).
fn f16_ggml_strided_group(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    strided_group_by4(w, stride, x, g, out, f16_group_avx2)
}

/// Multi-token P·V: four V rows per pass over the probabilities (tinyBLAS order per row).
fn f16_tinyblas_strided(w: &[f16], stride: usize, x: &[f32], out: &mut [f32]) {
    let n = x.len();
    super::super::check_strided(w.len(), stride, n, out.len());
    let row = |j: usize| &w[j * stride..j * stride + n];
    let rows = out.len();
    let mut j = 0;
    while j + 4 <= rows {
        // SAFETY: every row has exactly n = x.len() elements; `detected()` holds.
        let s = unsafe { tinyblas_rows::<4, f16>([row(j), row(j + 1), row(j + 2), row(j + 3)], x) };
        out[j..j + 4].copy_from_slice(&s);
        j += 4;
    }
    while j < rows {
        // SAFETY: as above.
        let [s] = unsafe { tinyblas_rows::<1, f16>([row(j)], x) };
        out[j] = s;
        j += 1;
    }
}

pub(super) fn f16_ggml_matmul(w: &[f16], x: &[f16], d: MatDims, out: &mut [f32]) {
    check_float(w, x, d, out);
    let (k, n) = (d.k, d.n_tok);
    let row = |r: usize| &w[r * k..(r + 1) * k];
    if k > F16_WIDE_MAX {
        for r in 0..d.rows {
            for t in 0..n {
                out[r * n + t] = dot_f16_ggml(row(r), &x[t * k..(t + 1) * k]);
            }
        }
        return;
    }
    let mut wide = [const { MaybeUninit::uninit() }; F16_WIDE_MAX];
    for t in 0..n {
        let xt = widen_f16(&x[t * k..(t + 1) * k], &mut wide);
        let mut r = 0;
        while r + 2 <= d.rows {
            // SAFETY: both rows and xt have exactly k elements; table used only after `detected()`.
            let [a, b] = unsafe { f16_two_rows(row(r), row(r + 1), xt) };
            out[r * n + t] = a;
            out[(r + 1) * n + t] = b;
            r += 2;
        }
        if r < d.rows {
            out[r * n + t] = dot_f16_ggml(row(r), &x[t * k..(t + 1) * k]);
        }
    }
}

/// tinyBLAS matmul: 4 weight rows per pass over each activation row.
fn tinyblas_matmul<W: FloatW>(w: &[W], x: &[f32], d: MatDims, out: &mut [f32]) {
    check_float(w, x, d, out);
    let (k, n) = (d.k, d.n_tok);
    let row = |r: usize| &w[r * k..(r + 1) * k];
    for t in 0..n {
        let xt = &x[t * k..(t + 1) * k];
        let mut r = 0;
        while r + 4 <= d.rows {
            // SAFETY: each row slice has exactly k = xt.len() elements; `detected()` holds.
            let s =
                unsafe { tinyblas_rows::<4, W>([row(r), row(r + 1), row(r + 2), row(r + 3)], xt) };
            for (i, v) in s.into_iter().enumerate() {
                out[(r + i) * n + t] = v;
            }
            r += 4;
        }
        while r < d.rows {
            // SAFETY: as above.
            let [s] = unsafe { tinyblas_rows::<1, W>([row(r)], xt) };
            out[r * n + t] = s;
            r += 1;
        }
    }
}

fn f32_tinyblas_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    tinyblas_matmul(w, x, d, out)
}

fn f16_tinyblas_matmul(w: &[f16], x: &[f32], d: MatDims, out: &mut [f32]) {
    tinyblas_matmul(w, x, d, out)
}

// ---------------------------------------------------------------------------------------------
// Activation quantization (same bits as act.rs)

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
        return act::quantize_row_i8(x, q);
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
        let v = act::nearest_int(x[i] * s).clamp(-128, 127);
        q[i] = v as i8;
        sum += v;
    }
    (s, sum)
}

fn quantize_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    check("i8 output", q.len(), x.len());
    // SAFETY: q has room for x.len() values; table used only after `detected()`.
    unsafe { quantize_i8_impl(x, q) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8k_block(x: &[f32], b: &mut BlockQ8K) {
    let Some(amax) = finite_amax(x) else {
        return act::quantize_row_q8k(x, std::slice::from_mut(b));
    };
    if amax == 0.0 {
        return act::quantize_row_q8k(x, std::slice::from_mut(b));
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

fn quantize_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    check("Q8_K input", x.len(), y.len() * QK_K);
    for (b, src) in y.iter_mut().zip(x.chunks_exact(QK_K)) {
        // SAFETY: src is exactly one block; table used only after `detected()`.
        unsafe { quantize_q8k_block(src, b) }
    }
}
