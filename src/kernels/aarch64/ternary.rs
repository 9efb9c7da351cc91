//! The ternary products: I2_S (int8 activations, I2_S.md §5) and TQ2_0 / TQ1_0 (Q8_K
//! activations, §6a), NEON or SDOT for the integer dot.

use super::{block_rows, dot4, dot_entries, i2s_checks};
use crate::kernels::scalar::i2s_epilogue;
use crate::kernels::{I8Rows, MatDims};
use crate::tensor::blocks::{BlockQ8K, BlockTQ1_0, BlockTQ2_0, QK_K};
use core::arch::aarch64::*;
use half::f16;

/// Tokens done per pass over a weight row: the row's codes are unpacked once for all of them.
const I2S_TOKENS: usize = 4;

/// The codes of one 128-element I2_S block (32 bytes at `p`), in element order: vector `2g + h`
/// holds elements `32g + 16h ..` (I2_S.md §2: element e in byte e % 32 at shift 6 - 2*(e/32)).
#[inline(always)]
unsafe fn i2s_block_codes(p: *const u8) -> [int8x16_t; 8] {
    // SAFETY: the caller guarantees 32 readable bytes at p; NEON is baseline.
    unsafe {
        let v = [vld1q_u8(p), vld1q_u8(p.add(16))];
        let three = vdupq_n_u8(3);
        let mut c = [vdupq_n_s8(0); 8];
        for h in 0..2 {
            c[h] = vreinterpretq_s8_u8(vshrq_n_u8::<6>(v[h]));
            c[2 + h] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<4>(v[h]), three));
            c[4 + h] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<2>(v[h]), three));
            c[6 + h] = vreinterpretq_s8_u8(vandq_u8(v[h], three));
        }
        c
    }
}

/// I2_S rows x int8 token rows: `sum code * q` per (row, token), exact in int32, then the
/// shared epilogue. Up to [`I2S_TOKENS`] tokens share one unpacking of each block.
#[inline(always)]
unsafe fn i2s_body<const SDOT: bool>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    out: &mut [f32],
) {
    i2s_checks(codes, act, d, out);
    let (k, rows, n_tok) = (d.k, d.rows, d.n_tok);
    let row_bytes = k / 4;
    for r in 0..rows {
        // SAFETY: row r's bytes are inside `codes` (checked above).
        let row = unsafe { codes.as_ptr().add(r * row_bytes) };
        for t0 in (0..n_tok).step_by(I2S_TOKENS) {
            let nt = (n_tok - t0).min(I2S_TOKENS);
            // SAFETY: NEON is baseline; every pointer below stays inside the checked slices
            // (block b of the row: 32 bytes; token t: k activations).
            unsafe {
                let q0 = act.q.as_ptr().add(t0 * k);
                let acc = i2s_tokens::<SDOT>(row, q0, k, nt);
                for (t, a) in acc.iter().enumerate().take(nt) {
                    let tt = t0 + t;
                    out[r * n_tok + tt] =
                        i2s_epilogue(vaddvq_s32(*a), act.sum[tt], act.scale[tt], w_scale);
                }
            }
        }
    }
}

/// Blocks between widenings of the int16 accumulators of [`i2s_tokens`] without `SDOT`: each
/// lane takes 8 products per block, each |code * q| <= 3 * 128 = 384, so 8 blocks stay within
/// 8 * 8 * 384 = 24576 < 32767 for any bytes (codes 3 included).
const I2S_I16_BLOCKS: usize = 8;

/// The int32 dots of one I2_S row (`row`, k/4 bytes) with `nt` <= [`I2S_TOKENS`] consecutive
/// token rows starting at `q` (k int8 each). With `SDOT` (the caller then runs with dotprod):
/// one `SDOT` per 16 codes. Without: `SMLAL` / `SMLAL2` into int16 lanes, widened into int32
/// with `SADALP` every [`I2S_I16_BLOCKS`] blocks (exact: no lane can overflow, see there).
#[inline(always)]
unsafe fn i2s_tokens<const SDOT: bool>(
    row: *const u8,
    q: *const i8,
    k: usize,
    nt: usize,
) -> [int32x4_t; I2S_TOKENS] {
    // SAFETY: the caller guarantees k/4 bytes at row and nt*k values at q; NEON is baseline,
    // SDOT only from dotprod code.
    unsafe {
        let mut acc = [vdupq_n_s32(0); I2S_TOKENS];
        let nb = k / 128;
        if SDOT {
            for b in 0..nb {
                let c = i2s_block_codes(row.add(32 * b));
                for (t, a) in acc.iter_mut().enumerate().take(nt) {
                    let qb = q.add(t * k + 128 * b);
                    for (j, &cj) in c.iter().enumerate() {
                        *a = dot4::<true>(*a, cj, vld1q_s8(qb.add(16 * j)));
                    }
                }
            }
            return acc;
        }
        for b0 in (0..nb).step_by(I2S_I16_BLOCKS) {
            let mut lo = [vdupq_n_s16(0); I2S_TOKENS];
            let mut hi = [vdupq_n_s16(0); I2S_TOKENS];
            for b in b0..(b0 + I2S_I16_BLOCKS).min(nb) {
                let c = i2s_block_codes(row.add(32 * b));
                for t in 0..nt {
                    let qb = q.add(t * k + 128 * b);
                    for (j, &cj) in c.iter().enumerate() {
                        let qv = vld1q_s8(qb.add(16 * j));
                        lo[t] = vmlal_s8(lo[t], vget_low_s8(cj), vget_low_s8(qv));
                        hi[t] = vmlal_high_s8(hi[t], cj, qv);
                    }
                }
            }
            for t in 0..nt {
                acc[t] = vpadalq_s16(vpadalq_s16(acc[t], lo[t]), hi[t]);
            }
        }
        acc
    }
}

dot_entries!(i2s_body => i2s_neon, i2s_sdot(
    codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]));

/// The 8 integer lanes of one TQ block (I2_S.md §6a) from its 256 codes (0..2) in element
/// order: lane p = sum code*q over (e % 32) / 4 == p, minus the sum of q over [32p, 32p+32).
/// Returned as lanes 0..3 and 4..7.
#[inline(always)]
unsafe fn tq_lanes<const SDOT: bool>(
    codes: &[int8x16_t; 16],
    xb: &BlockQ8K,
) -> (int32x4_t, int32x4_t) {
    // SAFETY: NEON is baseline; the loads read xb's 256 qs and 16 bsums.
    unsafe {
        let q = xb.qs.as_ptr();
        let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
        for g in 0..8 {
            lo = dot4::<SDOT>(lo, codes[2 * g], vld1q_s8(q.add(32 * g)));
            hi = dot4::<SDOT>(hi, codes[2 * g + 1], vld1q_s8(q.add(32 * g + 16)));
        }
        // bsums[2p] + bsums[2p+1] is the sum of q over [32p, 32p+32).
        let bs = xb.bsums.as_ptr();
        let corr_lo = vpaddlq_s16(vld1q_s16(bs));
        let corr_hi = vpaddlq_s16(vld1q_s16(bs.add(8)));
        (vsubq_s32(lo, corr_lo), vsubq_s32(hi, corr_hi))
    }
}

/// TQ2_0 codes in element order (I2_S.md §6: element `j*4 + l*32 + m` is bits 2l of
/// `qs[j + m]`, j in {0, 32}).
#[inline(always)]
unsafe fn tq2_0_codes(b: &BlockTQ2_0) -> [int8x16_t; 16] {
    // SAFETY: NEON is baseline; reads the block's 64 qs bytes.
    unsafe {
        let three = vdupq_n_u8(3);
        let p = b.qs.as_ptr();
        let v = [
            vld1q_u8(p),
            vld1q_u8(p.add(16)),
            vld1q_u8(p.add(32)),
            vld1q_u8(p.add(48)),
        ];
        let mut c = [vdupq_n_s8(0); 16];
        for half in 0..2 {
            for h in 0..2 {
                let x = v[2 * half + h];
                let base = 8 * half + h;
                c[base] = vreinterpretq_s8_u8(vandq_u8(x, three));
                c[base + 2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<2>(x), three));
                c[base + 4] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<4>(x), three));
                c[base + 6] = vreinterpretq_s8_u8(vshrq_n_u8::<6>(x));
            }
        }
        c
    }
}

/// Trit n of each byte: `((b * 3^n mod 256) * 3) >> 8` (I2_S.md §7), `pow` = 3^n in every lane.
#[inline(always)]
unsafe fn trits(v: uint8x16_t, pow: uint8x16_t) -> int8x16_t {
    // SAFETY: NEON is baseline.
    unsafe {
        let q = vmulq_u8(v, pow);
        let three = vdup_n_u8(3);
        let lo = vshrn_n_u16::<8>(vmull_u8(vget_low_u8(q), three));
        let hi = vshrn_n_u16::<8>(vmull_high_u8(q, vdupq_n_u8(3)));
        vreinterpretq_s8_u8(vcombine_u8(lo, hi))
    }
}

/// TQ1_0 codes in element order (I2_S.md §7).
#[inline(always)]
unsafe fn tq1_0_codes(b: &BlockTQ1_0) -> [int8x16_t; 16] {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    // SAFETY: NEON is baseline; reads the block's 48 qs and 4 qh bytes.
    unsafe {
        let p = b.qs.as_ptr();
        let (a0, a1, a2) = (vld1q_u8(p), vld1q_u8(p.add(16)), vld1q_u8(p.add(32)));
        let mut c = [vdupq_n_s8(0); 16];
        // Elements n*32 + m from qs[m], m < 32: vectors 2n (m < 16) and 2n + 1.
        for (n, &pw) in POW3.iter().enumerate() {
            let pw = vdupq_n_u8(pw);
            c[2 * n] = trits(a0, pw);
            c[2 * n + 1] = trits(a1, pw);
        }
        // Elements 160 + n*16 + m from qs[32 + m]: vector 10 + n.
        for (n, &pw) in POW3.iter().enumerate() {
            c[10 + n] = trits(a2, vdupq_n_u8(pw));
        }
        // Elements 240 + n*4 + j from qh[j]: one vector of qh[j] with 3^n per group of 4.
        let h = b.qh;
        let mut bytes = [0u8; 16];
        let mut pows = [0u8; 16];
        for i in 0..16 {
            bytes[i] = h[i % 4];
            pows[i] = POW3[i / 4];
        }
        c[15] = trits(vld1q_u8(bytes.as_ptr()), vld1q_u8(pows.as_ptr()));
        c
    }
}

/// TQ rows x Q8_K rows: per block `acc[p] = acc[p] + lane_p * (d_x * d_w)` (multiply then add,
/// no fma), then [`hsum8`](super::hsum8).
#[inline(always)]
unsafe fn tq_body<B, const SDOT: bool>(
    w: &[B],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
    decode: impl Fn(&B) -> ([int8x16_t; 16], u16),
) {
    // SAFETY: NEON is baseline (SDOT only from dotprod code); the blocks are whole references.
    unsafe {
        block_rows("tq", QK_K, w, act, d, out, |wb, xb, lo, hi| {
            let (codes, dw) = decode(wb);
            let dd = xb.d * f16::from_bits(dw).to_f32();
            let (l0, l1) = tq_lanes::<SDOT>(&codes, xb);
            (
                vaddq_f32(lo, vmulq_n_f32(vcvtq_f32_s32(l0), dd)),
                vaddq_f32(hi, vmulq_n_f32(vcvtq_f32_s32(l1), dd)),
            )
        })
    }
}

#[inline(always)]
unsafe fn tq2_0_body<const SDOT: bool>(
    w: &[BlockTQ2_0],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: forwarded contract (NEON baseline, SDOT only from dotprod code).
    unsafe { tq_body::<_, SDOT>(w, act, d, out, |b: &BlockTQ2_0| (tq2_0_codes(b), b.d)) }
}

#[inline(always)]
unsafe fn tq1_0_body<const SDOT: bool>(
    w: &[BlockTQ1_0],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: forwarded contract (NEON baseline, SDOT only from dotprod code).
    unsafe { tq_body::<_, SDOT>(w, act, d, out, |b: &BlockTQ1_0| (tq1_0_codes(b), b.d)) }
}

dot_entries!(tq2_0_body => tq2_0_neon, tq2_0_sdot(
    w: &[BlockTQ2_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]));
dot_entries!(tq1_0_body => tq1_0_neon, tq1_0_sdot(
    w: &[BlockTQ1_0], act: &[BlockQ8K], d: MatDims, out: &mut [f32]));
