//! Q6_K x Q8_K (a Q6_K tied head, I2_S.md §6a / §8) and Q8_0 x Q8_0 (`--head-q8`), NEON or SDOT
//! for the integer dot.

use super::{block_rows, dot4, dot_entries};
use crate::kernels::MatDims;
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, QK8_0, QK_K};
use core::arch::aarch64::*;
use half::f16;

/// The 256 signed 6-bit values (-32..31) of a Q6_K block in element order, 16 per vector
/// (I2_S.md §8: per half h, l in 0..32, elements l, l+32, l+64, l+96 from ql[l], ql[l+32] low /
/// high nibbles and qh[l] bits 0-1, 2-3, 4-5, 6-7).
#[inline(always)]
unsafe fn q6k_values(b: &BlockQ6K) -> [int8x16_t; 16] {
    // SAFETY: NEON is baseline; reads the block's 128 ql and 64 qh bytes.
    unsafe {
        let (m4, m3, m32) = (vdupq_n_u8(0x0f), vdupq_n_u8(3), vdupq_n_s8(32));
        let mut v = [vdupq_n_s8(0); 16];
        for h in 0..2 {
            let ql = b.ql.as_ptr().add(64 * h);
            let qh = b.qh.as_ptr().add(32 * h);
            for s in 0..2 {
                // l = 16s .. 16s + 16.
                let a = vld1q_u8(ql.add(16 * s));
                let c = vld1q_u8(ql.add(32 + 16 * s));
                let hb = vld1q_u8(qh.add(16 * s));
                let parts = [
                    vorrq_u8(vandq_u8(a, m4), vshlq_n_u8::<4>(vandq_u8(hb, m3))),
                    vorrq_u8(
                        vandq_u8(c, m4),
                        vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(hb), m3)),
                    ),
                    vorrq_u8(
                        vshrq_n_u8::<4>(a),
                        vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(hb), m3)),
                    ),
                    vorrq_u8(vshrq_n_u8::<4>(c), vshlq_n_u8::<4>(vshrq_n_u8::<6>(hb))),
                ];
                for (i, p) in parts.into_iter().enumerate() {
                    // Element 128h + 32i + 16s ..: vector 8h + 2i + s.
                    v[8 * h + 2 * i + s] = vsubq_s8(vreinterpretq_s8_u8(p), m32);
                }
            }
        }
        v
    }
}

/// Q6_K rows x Q8_K rows: lane p = sum sc[e/16] * q6_e * q_e over (e % 32) / 4 == p; per block
/// `acc[p] = fma(d_x * d_w, lane_p, acc[p])`, then [`hsum8`](super::hsum8).
#[inline(always)]
unsafe fn q6_k_body<const SDOT: bool>(
    w: &[BlockQ6K],
    act: &[BlockQ8K],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: NEON is baseline (SDOT only from dotprod code); whole block references.
    unsafe {
        block_rows("q6_k", QK_K, w, act, d, out, |wb, xb, lo, hi| {
            let v = q6k_values(wb);
            let q = xb.qs.as_ptr();
            let (mut l0, mut l1) = (vdupq_n_s32(0), vdupq_n_s32(0));
            // Sub-block s (16 elements) lands in lanes 0..3 (s even) or 4..7 (s odd).
            for s in 0..16 {
                let p = dot4::<SDOT>(vdupq_n_s32(0), v[s], vld1q_s8(q.add(16 * s)));
                let p = vmulq_n_s32(p, wb.scales[s] as i32);
                if s % 2 == 0 {
                    l0 = vaddq_s32(l0, p);
                } else {
                    l1 = vaddq_s32(l1, p);
                }
            }
            let dd = vdupq_n_f32(xb.d * f16::from_bits(wb.d).to_f32());
            (
                vfmaq_f32(lo, dd, vcvtq_f32_s32(l0)),
                vfmaq_f32(hi, dd, vcvtq_f32_s32(l1)),
            )
        })
    }
}

/// Q8_0 rows x Q8_0 rows (ggml's AVX2 order): per block lane p = sum of w*x over elements
/// 4p..4p+3, `acc[p] = fma(d_w * d_x, lane_p, acc[p])`, then [`hsum8`](super::hsum8).
#[inline(always)]
unsafe fn q8_0_body<const SDOT: bool>(
    w: &[BlockQ8_0],
    act: &[BlockQ8_0],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: NEON is baseline (SDOT only from dotprod code); whole block references.
    unsafe {
        block_rows("q8_0", QK8_0, w, act, d, out, |wb, xb, lo, hi| {
            let (wp, xp) = (wb.qs.as_ptr(), xb.qs.as_ptr());
            let z = vdupq_n_s32(0);
            let l0 = dot4::<SDOT>(z, vld1q_s8(wp), vld1q_s8(xp));
            let l1 = dot4::<SDOT>(z, vld1q_s8(wp.add(16)), vld1q_s8(xp.add(16)));
            let dd = vdupq_n_f32(f16::from_bits(wb.d).to_f32() * f16::from_bits(xb.d).to_f32());
            (
                vfmaq_f32(lo, dd, vcvtq_f32_s32(l0)),
                vfmaq_f32(hi, dd, vcvtq_f32_s32(l1)),
            )
        })
    }
}

dot_entries!(q6_k_body => q6_k_neon, q6_k_sdot(
    w: &[BlockQ6K], act: &[BlockQ8K], d: MatDims, out: &mut [f32]));
dot_entries!(q8_0_body => q8_0_neon, q8_0_sdot(
    w: &[BlockQ8_0], act: &[BlockQ8_0], d: MatDims, out: &mut [f32]));
