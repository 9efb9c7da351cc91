//! AVX-512 VNNI kernels (AVX-512 F + BW + VNNI, plus the AVX2/FMA/F16C of [`super::avx2`]).
//!
//! Only the integer ternary product is rewritten here: `vpdpbusd` multiplies 64 unsigned codes
//! by 64 int8 activations and adds groups of four straight into int32 lanes, twice the work of
//! AVX2's `maddubs` + `add` per instruction and with no int16 stage to flush. Integer sums are
//! exact in any order, so the result is the scalar kernel's bit for bit; the float epilogue is
//! the same three IEEE operations. Every float-ordered entry (F16, F32, the Q8_K types' lane
//! sums) keeps the AVX2 kernel: the reference's summation order is AVX2's, and those products
//! are bound by memory bandwidth, not arithmetic.
//!
//! The table's entries are safe `fn`s that check lengths before the raw-pointer loops; the
//! `#[target_feature]` code is sound because [`TABLE`] is only reachable through
//! [`super::super::table`] after [`detected`] returned true.

use super::super::candidates::{Candidate, Entry, EntryFn};
use super::super::{I8Rows, KernelTable, Kind, MatDims};
use super::avx2;
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0};
use core::arch::x86_64::*;
use half::f16;

/// True when this CPU can run these kernels (and the AVX2 ones they reuse).
pub(crate) fn detected() -> bool {
    avx2::detected()
        && std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

pub(crate) static TABLE: KernelTable = KernelTable {
    kind: Kind::Avx512Vnni,
    i2s: i2s_matmul,
    i2s_vec: i2s_vec::<4, PREFETCH>,
    f16_ggml: f16_ggml_matmul,
    q8_0: q8_0_matmul,
    f16_ggml_strided_group,
    ..avx2::TABLE
};

/// This table's candidates for `entry` (see [`super::super::candidates`]); the table's own
/// entry is among them.
pub(in crate::kernels) fn candidates(entry: Entry, out: &mut Vec<Candidate>) {
    let mut add = |name, f| out.push(Candidate::new(Kind::Avx512Vnni, entry, name, f));
    match entry {
        Entry::I2sVec => {
            add("avx512-zmm-1row-pf3k", EntryFn::I2s(i2s_vec::<1, 3072>));
            add("avx512-zmm-2row-pf8k", EntryFn::I2s(i2s_vec::<2, 8192>));
            add("avx512-zmm-4row-pf8k", EntryFn::I2s(i2s_vec::<4, PREFETCH>));
            add("avx512-zmm-4row-pf3k", EntryFn::I2s(i2s_vec::<4, 3072>));
        }
        Entry::I2s => add("avx512-zmm-4row-4tok", EntryFn::I2s(i2s_matmul)),
        Entry::F16Ggml => {
            add("avx512-ymm-4row-pf32k", EntryFn::F16(f16_ggml_matmul));
            add(
                "avx512-zmm-2row-pf32k",
                EntryFn::F16(f16_ggml_zmm::<2, 32768>),
            );
            add(
                "avx512-zmm-4row-pf32k",
                EntryFn::F16(f16_ggml_zmm::<4, 32768>),
            );
        }
        Entry::Q8_0 => add("avx512-ymm-4row-pf32k", EntryFn::Q8_0(q8_0_matmul)),
        Entry::Q6K => {
            add("avx512-ymm-2row-pf8k", EntryFn::Q6K(q6_k_ymm::<2, 8192>));
            add("avx512-ymm-4row-pf8k", EntryFn::Q6K(q6_k_ymm::<4, 8192>));
        }
        Entry::F16Group => {
            add("avx512-zmm-pf2k", EntryFn::Group(f16_ggml_strided_group));
            add(
                "avx512-zmm-2row-pf2k",
                EntryFn::Group(f16_ggml_strided_group2),
            );
            add(
                "avx512-zmm-pf4k",
                EntryFn::Group(f16_ggml_strided_group_pf4k),
            );
        }
    }
}

/// Prefetch distance in bytes of each weight row stream of the table's I2_S matvec (on an Intel
/// Xeon 6-12 KiB measured best with four streams; 3 KiB and 24 KiB were 5-10% slower).
const PREFETCH: usize = 8192;

/// The codes of one 128-element block at `p` as two vectors against activations `[0, 64)` and
/// `[64, 128)`, scaled by 4 in the low 32 bytes and by 1 in the high 32 (see [`i2s_fold`]).
///
/// The block's byte j holds element j in bits 6-7, 32 + j in bits 4-5, 64 + j in 2-3 and 96 + j in
/// 0-1. Broadcast to both halves of a zmm: `(v >> 4) & [0x0C | 0x03]` is `[4*c(j) | c(32+j)]` and
/// `v & [0x0C | 0x03]` is `[4*c(64+j) | c(96+j)]`: one shift and two ANDs per block and row, and
/// both vectors carry the same factor per half, so one accumulator serves both.
#[inline(always)]
unsafe fn i2s_codes_scaled(p: *const u8, mask: __m512i) -> [__m512i; 2] {
    let v = _mm512_broadcast_i64x4(_mm256_loadu_si256(p as *const __m256i));
    [
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
        _mm512_and_si512(v, mask),
    ]
}

/// `[0x0C x 32 | 0x03 x 32]`, the mask of [`i2s_codes_scaled`].
#[inline(always)]
unsafe fn i2s_scaled_mask() -> __m512i {
    _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_set1_epi8(0x0C)),
        _mm256_set1_epi8(0x03),
    )
}

/// An accumulator of [`i2s_codes_scaled`] products folded to 8 int32 lanes of plain dots: the
/// low half's lanes hold 4x their dots, exactly (every term is a multiple of 4), so an
/// arithmetic shift by 2 undoes it.
#[inline(always)]
unsafe fn i2s_fold(a: __m512i) -> __m256i {
    _mm256_add_epi32(
        _mm256_srai_epi32::<2>(_mm512_castsi512_si256(a)),
        _mm512_extracti64x4_epi64::<1>(a),
    )
}

/// Lane t of the result is the sum of the 8 lanes of `g[t]`.
#[inline(always)]
unsafe fn hsum_8x8(g: [__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(g[0], g[1]);
    let h23 = _mm256_hadd_epi32(g[2], g[3]);
    let h45 = _mm256_hadd_epi32(g[4], g[5]);
    let h67 = _mm256_hadd_epi32(g[6], g[7]);
    // [g0 g1 g2 g3 (low 128) | g0 g1 g2 g3 (high 128)], same for 4..7.
    let h0123 = _mm256_hadd_epi32(h01, h23);
    let h4567 = _mm256_hadd_epi32(h45, h67);
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(h0123, h4567),
        _mm256_permute2x128_si256::<0x31>(h0123, h4567),
    )
}

/// Integer dots of `R` consecutive I2_S rows (`rb` bytes apart from `row`) with `NT` consecutive
/// int8 activation rows (`k` apart from `q`), as `R` vectors whose lane t is token t's dot.
/// Codes are 0..3 and products go straight to int32: nothing can overflow for any k a model has
/// (|4 * sum| <= 12 * 128 * k). A matvec (`NT` = 1) prefetches each row `PF` bytes ahead.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn i2s_tile<const R: usize, const NT: usize, const PF: usize>(
    row: *const u8,
    rb: usize,
    k: usize,
    q: *const i8,
) -> [__m256i; R] {
    let mask = i2s_scaled_mask();
    let mut acc = [[_mm512_setzero_si512(); NT]; R];
    for b in 0..k / 128 {
        if NT == 1 && b % 2 == 0 {
            // A matvec streams its rows from memory: one prefetch per row and cache line.
            for r in 0..R {
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(r * rb + 32 * b + PF) as *const i8);
            }
        }
        let c: [[__m512i; 2]; R] =
            core::array::from_fn(|r| i2s_codes_scaled(row.add(r * rb + 32 * b), mask));
        for t in 0..NT {
            let qp = q.add(t * k + 128 * b);
            let x0 = _mm512_loadu_si512(qp as *const _);
            let x1 = _mm512_loadu_si512(qp.add(64) as *const _);
            for r in 0..R {
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[r][0], x0);
                acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], c[r][1], x1);
            }
        }
    }
    core::array::from_fn(|r| {
        let mut g = [_mm256_setzero_si256(); 8];
        for t in 0..NT {
            g[t] = i2s_fold(acc[r][t]);
        }
        hsum_8x8(g)
    })
}

/// The I2_S epilogue of [`i2s_epilogue`] for up to 8 tokens at once: lane t of `dots` is token
/// `t0 + t`'s dot; writes `o[..nt]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn i2s_epilogue_tokens(
    dots: __m256i,
    act: &I8Rows,
    t0: usize,
    nt: usize,
    w_scale: f32,
    o: &mut [f32],
) {
    let mut sum = [0f32; 8];
    let mut scale = [1f32; 8];
    for t in 0..nt {
        sum[t] = act.sum[t0 + t] as f32;
        scale[t] = act.scale[t0 + t];
    }
    let d = _mm256_cvtepi32_ps(dots);
    let y = _mm256_mul_ps(
        _mm256_div_ps(
            _mm256_sub_ps(d, _mm256_loadu_ps(sum.as_ptr())),
            _mm256_loadu_ps(scale.as_ptr()),
        ),
        _mm256_set1_ps(w_scale),
    );
    let mut v = [0f32; 8];
    _mm256_storeu_ps(v.as_mut_ptr(), y);
    o[..nt].copy_from_slice(&v[..nt]);
}

/// The one-token product: rows `R` at a time (the rest in smaller tiles), each row's stream
/// prefetched `PF` bytes ahead; the integer dots go into `out` as raw bits and the epilogue runs
/// vectorized afterwards. On an Intel Xeon four rows at once streamed 11.0-11.7 GB/s from DRAM
/// at 1 thread and 18-20 at 2 (2B-4T shapes), against 9.0-9.9 and 14-16 for one row at a time;
/// on a Zen 4 EPYC the four-row kernel streamed half what AVX2's one row did.
///
/// # Safety
/// Lengths as [`crate::kernels::check_i2s`] checks them for one token; this table's features available.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
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
    while r < d.rows {
        let rr = (d.rows - r).min(R);
        let row = codes.as_ptr().add(r * rb);
        macro_rules! rows {
            ($r:literal) => {{
                let dots = i2s_tile::<$r, 1, PF>(row, rb, k, q);
                for (i, v) in dots.into_iter().enumerate() {
                    out[r + i] = f32::from_bits(_mm256_cvtsi256_si32(v) as u32);
                }
            }};
        }
        match rr {
            4.. => rows!(4),
            3 => rows!(3),
            2 => rows!(2),
            _ => rows!(1),
        }
        r += rr.min(4);
    }
    avx2::i2s_epilogue_in_place(&mut out[..d.rows], act.sum[0], act.scale[0], w_scale);
}

/// The decode candidates `avx512-zmm-{R}row-pf{PF}` (R = 1, 2 or 4): one token, `R` rows per
/// pass, each row's stream prefetched `PF` bytes ahead. Other token counts go to the table's
/// product.
fn i2s_vec<const R: usize, const PF: usize>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    const { assert!(1 <= R && R <= 4, "i2s_vec: 1 to 4 rows per pass") };
    if d.n_tok != 1 {
        return i2s_matmul(codes, w_scale, act, d, out);
    }
    crate::kernels::check_i2s("avx512", codes, act, d, out);
    // SAFETY: lengths checked above; the table is only used after `detected()`.
    unsafe { i2s_vec_impl::<R, PF>(codes, w_scale, act, d, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn i2s_impl(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    let (k, n) = (d.k, d.n_tok);
    let rb = k / 4;
    let qp = |t: usize| act.q.as_ptr().add(t * k);
    if n == 1 {
        return i2s_vec_impl::<4, PREFETCH>(codes, w_scale, act, d, out);
    }
    // Several tokens: tiles of 4 rows x 4 tokens (16 accumulators, 8 code vectors): each code
    // vector feeds 4 tokens and each activation load 4 rows. Measured on the 2B-4T shapes
    // (1 thread, GOPS): 4x4 410-440, 4x5 385-420, 3x5 395-405, 5x3 380, 2x8 320-355, 3x6
    // 320-370, 5x4 and 6x4 250-270 (register spills). A band of rows is swept once per token
    // group so the group's activations stay in L1 (the band's size made no difference).
    const BAND: usize = 16;
    const GROUP: usize = 4;
    const TR: usize = 4;
    for r0 in (0..d.rows).step_by(BAND) {
        let r1 = (r0 + BAND).min(d.rows);
        let mut t = 0;
        while t < n {
            let nt = (n - t).min(GROUP);
            let mut r = r0;
            while r < r1 {
                let rr = (r1 - r).min(TR);
                let row = codes.as_ptr().add(r * rb);
                macro_rules! tile {
                    ($r:literal, $nt:literal) => {{
                        let dots = i2s_tile::<$r, $nt, PREFETCH>(row, rb, k, qp(t));
                        for (i, v) in dots.into_iter().enumerate() {
                            let o = &mut out[(r + i) * n + t..(r + i) * n + t + nt];
                            i2s_epilogue_tokens(v, act, t, nt, w_scale, o);
                        }
                    }};
                }
                macro_rules! tiles {
                    ($r:literal) => {
                        match nt {
                            4 => tile!($r, 4),
                            3 => tile!($r, 3),
                            2 => tile!($r, 2),
                            _ => tile!($r, 1),
                        }
                    };
                }
                match rr {
                    4 => tiles!(4),
                    3 => tiles!(3),
                    2 => tiles!(2),
                    _ => tiles!(1),
                }
                r += rr;
            }
            t += nt;
        }
    }
}

fn i2s_matmul(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    crate::kernels::check_i2s("avx512", codes, act, d, out);
    // SAFETY: lengths checked above; the table is only used after `detected()`.
    unsafe { i2s_impl(codes, w_scale, act, d, out) }
}

// ---------------------------------------------------------------------------------------------
// F16 matvec (the lm_head of decode)

/// [`avx2::f16_rows`] for four rows: 16 accumulators, which AVX-512's 32 vector registers hold
/// without spilling. Four streams read memory faster than two on this Xeon, as for I2_S (the
/// 2B-4T head at 1 thread: 13.5 against 11.6-13.1 GB/s; at 2 threads 26.0-26.8 against
/// 25.0-25.9; 32 KiB ahead per stream, 8 KiB was 15% slower).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn f16_four_rows(w: [&[f16]; 4], x: &[f32]) -> [f32; 4] {
    avx2::f16_rows::<4, { avx2::PREFETCH_F16_PAIR }>(w, x)
}

/// [`avx2::q6k_rows_one_token`] compiled with AVX-512 enabled: 32 vector registers hold a
/// block's activations for all `R` rows. The same arithmetic per row as AVX2, so the same bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn q6k_rows_zmm_regs<const R: usize, const PF: usize>(
    rows: [&[BlockQ6K]; R],
    act: &[BlockQ8K],
) -> [f32; R] {
    avx2::q6k_rows_one_token::<R, PF>(rows, act)
}

/// The Q6_K candidates `avx512-ymm-{R}row-pf{PF}`: the decode head `R` rows per pass through
/// [`q6k_rows_zmm_regs`] (more tokens: the AVX2 table's product).
fn q6_k_ymm<const R: usize, const PF: usize>(
    w: &[BlockQ6K],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: this table is reachable only after `detected()`, which checked the features
    // `q6k_rows_zmm_regs` enables.
    unsafe { avx2::q6_k_matmul_by::<R>(w, act, d, out, q6k_rows_zmm_regs::<R, PF>) }
}

/// The table's F16 product (`avx512-ymm-4row-pf32k`): rows four at a time through
/// [`f16_four_rows`], the same order per row as AVX2, so the same bits.
fn f16_ggml_matmul(w: &[f16], x: &[f16], d: MatDims, out: &mut [f32]) {
    // SAFETY: this table is reachable only after `detected()`, which checked the features
    // `f16_four_rows` enables.
    unsafe { avx2::f16_matmul_by::<4>(w, x, d, out, f16_four_rows) }
}

/// [`avx2::f16_rows`] with 512-bit vectors: per row one zmm holds two of the reference's 8-lane
/// accumulators (`[acc0 | acc1]` for values `[0, 16)` of each 32-value step, `[acc2 | acc3]`
/// for `[16, 32)`), so every product lands in the lane it has in AVX2 and the halves go to the
/// same [`avx2::reduce_4x8`]: the same bits at half the instructions per value. Each row is
/// prefetched `PF` bytes ahead.
///
/// # Safety
/// Every row holds at least `x.len()` values; this table's features available.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn f16_rows_zmm<const R: usize, const PF: usize>(w: [&[f16]; R], x: &[f32]) -> [f32; R] {
    let n = x.len();
    let np = n & !31;
    let px = x.as_ptr();
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    for c in (0..np).step_by(32) {
        for row in &w {
            avx2::prefetch((row.as_ptr() as *const u8).wrapping_add(2 * c + PF));
        }
        let xl = _mm512_loadu_ps(px.add(c));
        let xh = _mm512_loadu_ps(px.add(c + 16));
        for r in 0..R {
            let p = w[r].as_ptr();
            let wl = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(c) as *const __m256i));
            let wh = _mm512_cvtph_ps(_mm256_loadu_si256(p.add(c + 16) as *const __m256i));
            lo[r] = _mm512_fmadd_ps(wl, xl, lo[r]);
            hi[r] = _mm512_fmadd_ps(wh, xh, hi[r]);
        }
    }
    let mut out = [0f32; R];
    for r in 0..R {
        let acc = [
            _mm512_castps512_ps256(lo[r]),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(lo[r]))),
            _mm512_castps512_ps256(hi[r]),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(hi[r]))),
        ];
        let mut s = avx2::reduce_4x8(acc) as f64;
        for i in np..n {
            s += (w[r][i].to_f32() * x[i]) as f64;
        }
        out[r] = s as f32;
    }
    out
}

/// The F16 candidates `avx512-zmm-{R}row-pf{PF}`: [`f16_rows_zmm`] `R` rows per pass.
fn f16_ggml_zmm<const R: usize, const PF: usize>(
    w: &[f16],
    x: &[f16],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: this table is reachable only after `detected()`, which checked the features
    // `f16_rows_zmm` enables.
    unsafe { avx2::f16_matmul_by::<R>(w, x, d, out, f16_rows_zmm::<R, PF>) }
}

/// The AVX2 grouped row (`avx2::f16_row_group`) with 512-bit vectors: one zmm holds two of
/// the reference's 8-lane accumulators (`[acc0 | acc1]` for values `[0, 16)` of each 32-value
/// step, `[acc2 | acc3]` for `[16, 32)`), so every product lands in the lane it has in AVX2 and
/// the halves go to the same [`avx2::reduce_4x8`]: the same bits at half the instructions per
/// value. `pf` is a later row, prefetched line by line in step with this one.
///
/// # Safety
/// `w` and every `x[t]` readable for `n` values; AVX-512 F + AVX2 + FMA + F16C available.
#[inline(always)]
unsafe fn f16_row_group_512<const T: usize>(
    w: *const f16,
    pf: *const f16,
    x: [*const f32; T],
    n: usize,
) -> [f32; T] {
    let np = n & !31;
    let mut lo = [_mm512_setzero_ps(); T];
    let mut hi = [_mm512_setzero_ps(); T];
    for c in (0..np).step_by(32) {
        avx2::prefetch(pf.wrapping_add(c) as *const u8);
        let wl = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(c) as *const __m256i));
        let wh = _mm512_cvtph_ps(_mm256_loadu_si256(w.add(c + 16) as *const __m256i));
        for t in 0..T {
            lo[t] = _mm512_fmadd_ps(wl, _mm512_loadu_ps(x[t].add(c)), lo[t]);
            hi[t] = _mm512_fmadd_ps(wh, _mm512_loadu_ps(x[t].add(c + 16)), hi[t]);
        }
    }
    let mut acc = [[_mm256_setzero_ps(); 4]; T];
    for t in 0..T {
        acc[t] = [
            _mm512_castps512_ps256(lo[t]),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(lo[t]))),
            _mm512_castps512_ps256(hi[t]),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(hi[t]))),
        ];
    }
    avx2::group_finish(w, x, n, acc)
}

avx2::group_rows_kernel!(
    f16_group_avx512,
    f16_row_group_512,
    "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c",
    avx2::GROUP_PREFETCH_BYTES
);

avx2::group_rows_kernel!(
    f16_group_avx512_pf4k,
    f16_row_group_512,
    "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c",
    4096
);

/// Two rows against four x rows in `ggml_vec_dot_f16` order, sharing every x load between
/// the rows, then the eight reductions done side by side: [`avx2::reduce_4x8`]'s additions on
/// the same operands, lane-parallel. Per set `s`, `z_s = lo + hi` is `[acc0+acc2 | acc1+acc3]`
/// and `a_s` the sum of its halves; `[lo(a_s) + hi(a_s) | ...]` for pairs of sets, then two
/// rounds of `hadd`, give `(t0+t1)+(t2+t3)` of every set in one vector. Returns
/// `[row0 · x0..x3, row1 · x0..x3]`. Attention is compute-bound here (at depth 2048 one
/// thread's Q·K and P·V ran at 4-6 GB/s, the core's FMA rate at 21% of its peak): the shared
/// loads and the cheaper reduction are where the time was.
///
/// # Safety
/// Both rows and every `x[t]` readable for `n` values, `n % 32 == 0`; AVX-512 F + AVX2 + FMA +
/// F16C available.
#[inline(always)]
unsafe fn f16_two_rows_x4_512(
    w: [*const f16; 2],
    pf: [*const f16; 2],
    x: [*const f32; 4],
    n: usize,
) -> __m256 {
    let mut lo = [[_mm512_setzero_ps(); 4]; 2];
    let mut hi = [[_mm512_setzero_ps(); 4]; 2];
    for c in (0..n).step_by(32) {
        avx2::prefetch(pf[0].wrapping_add(c) as *const u8);
        avx2::prefetch(pf[1].wrapping_add(c) as *const u8);
        let wl = [0, 1].map(|r| _mm512_cvtph_ps(_mm256_loadu_si256(w[r].add(c) as *const __m256i)));
        let wh =
            [0, 1].map(|r| _mm512_cvtph_ps(_mm256_loadu_si256(w[r].add(c + 16) as *const __m256i)));
        for t in 0..4 {
            let xl = _mm512_loadu_ps(x[t].add(c));
            let xh = _mm512_loadu_ps(x[t].add(c + 16));
            for r in 0..2 {
                lo[r][t] = _mm512_fmadd_ps(wl[r], xl, lo[r][t]);
                hi[r][t] = _mm512_fmadd_ps(wh[r], xh, hi[r][t]);
            }
        }
    }
    // a[s], s = 4*row + t: (acc0+acc2) + (acc1+acc3).
    let a: [__m256; 8] = core::array::from_fn(|s| {
        let z = _mm512_add_ps(lo[s / 4][s % 4], hi[s / 4][s % 4]);
        _mm256_add_ps(
            _mm512_castps512_ps256(z),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(z))),
        )
    });
    // u[i] = [lo(a[2i]) + hi(a[2i]) | lo(a[2i+1]) + hi(a[2i+1])].
    let u: [__m256; 4] = core::array::from_fn(|i| {
        _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(a[2 * i], a[2 * i + 1]),
            _mm256_permute2f128_ps::<0x31>(a[2 * i], a[2 * i + 1]),
        )
    });
    // Lane order after two hadd rounds: sets [0, 2, 4, 6 | 1, 3, 5, 7].
    let h = _mm256_hadd_ps(_mm256_hadd_ps(u[0], u[1]), _mm256_hadd_ps(u[2], u[3]));
    _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// The grouped kernel two rows per pass when there are four x rows and whole 32-value steps
/// (decode attention on a GQA-4 model: Q·K and P·V); otherwise one row at a time
/// ([`f16_group_avx512`]). `avx512-zmm-2row-pf2k`.
///
/// # Safety
/// As [`avx2::GroupRows`].
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn f16_group2_avx512(
    w: *const f16,
    stride: usize,
    rows: usize,
    n: usize,
    x: &[*const f32],
    out: *mut f32,
    g: usize,
) {
    let [x0, x1, x2, x3] = *x else {
        return f16_group_avx512(w, stride, rows, n, x, out, g);
    };
    if !n.is_multiple_of(32) {
        return f16_group_avx512(w, stride, rows, n, x, out, g);
    }
    let ahead = avx2::group_prefetch_rows(n, avx2::GROUP_PREFETCH_BYTES) * stride;
    let pairs = rows / 2;
    for p in 0..pairs {
        let r = [w.add(2 * p * stride), w.add((2 * p + 1) * stride)];
        let v = f16_two_rows_x4_512(r, r.map(|q| q.wrapping_add(ahead)), [x0, x1, x2, x3], n);
        let o = out.add(2 * p * g);
        _mm_storeu_ps(o, _mm256_castps256_ps128(v));
        _mm_storeu_ps(o.add(g), _mm256_extractf128_ps::<1>(v));
    }
    if rows % 2 == 1 {
        let j = rows - 1;
        f16_group_avx512(w.add(j * stride), stride, 1, n, x, out.add(j * g), g);
    }
}

/// [`f16_group2_avx512`] through the checks (`avx512-zmm-2row-pf2k`).
fn f16_ggml_strided_group2(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    avx2::strided_group_by4(w, stride, x, g, out, f16_group2_avx512)
}

/// Single-token grouped attention (see the AVX2 entry) with [`f16_row_group_512`]
/// (`avx512-zmm-pf2k`).
fn f16_ggml_strided_group(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    avx2::strided_group_by4(w, stride, x, g, out, f16_group_avx512)
}

/// [`f16_ggml_strided_group`] prefetching 4 KiB of rows ahead (`avx512-zmm-pf4k`).
fn f16_ggml_strided_group_pf4k(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    avx2::strided_group_by4(w, stride, x, g, out, f16_group_avx512_pf4k)
}

// ---------------------------------------------------------------------------------------------
// Q8_0 matvec (the `--head-q8` lm_head)

/// [`avx2::q8_0_rows`] for four rows (four prefetched streams, as for F16 and I2_S).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vl,avx2,fma,f16c")]
unsafe fn q8_0_four_rows(w: [&[BlockQ8_0]; 4], x: &[BlockQ8_0], dx: &[f32]) -> [f32; 4] {
    avx2::q8_0_rows(w, x, dx)
}

/// One token whose activations hold no -128 (the sign trick's condition, as in AVX2): rows four
/// at a time; everything else is the AVX2 kernel.
fn q8_0_matmul(w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
    let nb = d.k / 32;
    let fast = d.n_tok == 1
        && d.k.is_multiple_of(32)
        && nb <= avx2::Q8_0_WIDE_MAX
        && d.rows >= 4
        && w.len() >= d.rows * nb
        && act.len() >= nb
        && out.len() >= d.rows
        && act[..nb].iter().all(|b| !b.qs.contains(&i8::MIN));
    if !fast {
        return avx2::q8_0_matmul(w, act, d, out);
    }
    let mut dx = [0f32; avx2::Q8_0_WIDE_MAX];
    for (f, b) in dx.iter_mut().zip(&act[..nb]) {
        *f = f16::from_bits(b.d).to_f32();
    }
    let x = &act[..nb];
    let row = |r: usize| &w[r * nb..(r + 1) * nb];
    let mut r = 0;
    while r + 4 <= d.rows {
        // SAFETY: every row has nb blocks, dx has nb values; this table is reachable only after
        // `detected()`, which checked the features `q8_0_four_rows` enables.
        let s =
            unsafe { q8_0_four_rows([row(r), row(r + 1), row(r + 2), row(r + 3)], x, &dx[..nb]) };
        out[r..r + 4].copy_from_slice(&s);
        r += 4;
    }
    if r < d.rows {
        let rest = MatDims {
            rows: d.rows - r,
            ..d
        };
        avx2::q8_0_matmul(&w[r * nb..], act, rest, &mut out[r..]);
    }
}
