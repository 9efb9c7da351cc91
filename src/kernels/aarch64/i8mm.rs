//! The I2_S multi-token product with `SMMLA` (FEAT_I8MM: Armv8.6-A, and optional from 8.2:
//! Apple M2+, Graviton 3+, Neoverse V1 / N2 / V2, Cortex-A510 / A710 / X2 and later).
//!
//! `SMMLA Vd.4S, Vn.16B, Vm.16B` adds the 2x2 matrix product of two 2x8 int8 matrices (one row
//! per 8-byte half of each source) to `Vd`: `d[2i + j] += sum_k n[8i + k] * m[8j + k]`. With two
//! weight rows' codes in `Vn` and two tokens' activations in `Vm`, one instruction does 32
//! multiply-adds for four (row, token) dots, where `SDOT` does 16 for one. Both sources are
//! made by zipping the 8-byte halves of two 16-byte vectors (`ZIP1` / `ZIP2` on 64-bit lanes).
//! The weights are zipped *before* they are unpacked (the shifts and masks act on both rows at
//! once), so a 4-row x 4-token tile costs 12 instructions per 128 weights and (row, token)
//! against 19.5 for the `SDOT` kernel's 1-row x 4-token tile (docs/portability.md).
//!
//! Every dot is an integer sum (exact in any order), finished by the shared epilogue: the
//! results are bit-identical to scalar. `vmmlaq_s32` is unstable on stable Rust, so the
//! instruction is written with `asm!` in a `#[target_feature(enable = "i8mm")]` function; the
//! table holding it ([`super::I8MM`]) is only handed out when the CPU reports i8mm and dotprod.

use super::ternary::i2s_sdot;
use super::{i2s_checks, int8_asm};
use crate::kernels::scalar::i2s_epilogue;
use crate::kernels::{I8Rows, MatDims};
use core::arch::aarch64::*;

/// True when this CPU has `SMMLA` (and `SDOT`, which the single-token entry uses).
pub(crate) fn detected() -> bool {
    std::arch::is_aarch64_feature_detected!("i8mm") && super::dotprod_detected()
}

int8_asm!(
    /// `SMMLA`: `acc[2i + j] + sum_k a[8i + k] * b[8j + k]` (signed bytes).
    smmla,
    "i8mm",
    "smmla"
);

/// The low 8 bytes of `a` then the low 8 bytes of `b` (`ZIP1 .2D`), and the high halves
/// (`ZIP2 .2D`).
#[inline(always)]
unsafe fn zip_halves(a: uint8x16_t, b: uint8x16_t) -> [uint8x16_t; 2] {
    // SAFETY: NEON is baseline.
    unsafe {
        let (a, b) = (vreinterpretq_u64_u8(a), vreinterpretq_u64_u8(b));
        [
            vreinterpretq_u8_u64(vzip1q_u64(a, b)),
            vreinterpretq_u8_u64(vzip2q_u64(a, b)),
        ]
    }
}

/// Group `G` (shift `6 - 2G`) of packed I2_S bytes, as int8 codes 0..3.
#[inline(always)]
unsafe fn group<const G: usize>(v: uint8x16_t) -> int8x16_t {
    // SAFETY: NEON is baseline.
    unsafe {
        let three = vdupq_n_u8(3);
        vreinterpretq_s8_u8(match G {
            0 => vshrq_n_u8::<6>(v),
            1 => vandq_u8(vshrq_n_u8::<4>(v), three),
            2 => vandq_u8(vshrq_n_u8::<2>(v), three),
            _ => vandq_u8(v, three),
        })
    }
}

/// The int32 dots of `2 * RP` I2_S rows with `2 * TP` token rows (`k` int8 each), as
/// `acc[p][tp]` = [row 2p x token 2tp, row 2p x token 2tp+1, row 2p+1 x token 2tp,
/// row 2p+1 x token 2tp+1]. Rows and tokens may repeat (the caller pads a partial tile).
///
/// Block b, half h (bytes 16h..16h+15 of the block's 32) of two rows zipped gives, per
/// 8-byte half z, both rows' bytes 16h + 8z .. + 8, whose group g holds elements
/// 32g + 16h + 8z .. + 8 (I2_S.md §2); the tokens' activations at the same elements are the
/// zip of their 16 values at 128b + 32g + 16h.
#[inline(always)]
unsafe fn tile<const RP: usize, const TP: usize>(
    rows: [*const u8; 4],
    toks: [*const i8; 4],
    k: usize,
) -> [[int32x4_t; TP]; RP] {
    // SAFETY: the caller guarantees k/4 bytes at each row, k values at each token, and i8mm.
    unsafe {
        let mut acc = [[vdupq_n_s32(0); TP]; RP];
        for b in 0..k / 128 {
            for h in 0..2 {
                let off = 32 * b + 16 * h;
                let w: [[uint8x16_t; 2]; RP] = core::array::from_fn(|p| {
                    zip_halves(
                        vld1q_u8(rows[2 * p].add(off)),
                        vld1q_u8(rows[2 * p + 1].add(off)),
                    )
                });
                macro_rules! group_step {
                    ($g:literal) => {{
                        let c: [[int8x16_t; 2]; RP] =
                            core::array::from_fn(|p| [group::<$g>(w[p][0]), group::<$g>(w[p][1])]);
                        let qoff = 128 * b + 32 * $g + 16 * h;
                        for tp in 0..TP {
                            let x = zip_halves(
                                vreinterpretq_u8_s8(vld1q_s8(toks[2 * tp].add(qoff))),
                                vreinterpretq_u8_s8(vld1q_s8(toks[2 * tp + 1].add(qoff))),
                            );
                            for p in 0..RP {
                                for z in 0..2 {
                                    acc[p][tp] =
                                        smmla(acc[p][tp], c[p][z], vreinterpretq_s8_u8(x[z]));
                                }
                            }
                        }
                    }};
                }
                group_step!(0);
                group_step!(1);
                group_step!(2);
                group_step!(3);
            }
        }
        acc
    }
}

/// One tile of up to 4 rows from `r0` and up to 4 tokens from `t0` into `out`: missing rows
/// and tokens repeat the last one (computed, never written).
#[inline(always)]
unsafe fn tile_out<const RP: usize, const TP: usize>(
    codes: &[u8],
    w_scale: f32,
    act: &I8Rows,
    d: MatDims,
    (r0, t0): (usize, usize),
    out: &mut [f32],
) {
    let (k, row_bytes) = (d.k, d.k / 4);
    let rows: [*const u8; 4] = core::array::from_fn(|i| {
        let r = (r0 + i).min(d.rows - 1);
        // SAFETY: r < rows, whose bytes the caller checked.
        unsafe { codes.as_ptr().add(r * row_bytes) }
    });
    let toks: [*const i8; 4] = core::array::from_fn(|j| {
        let t = (t0 + j).min(d.n_tok - 1);
        // SAFETY: t < n_tok, whose activations the caller checked.
        unsafe { act.q.as_ptr().add(t * k) }
    });
    // SAFETY: the pointers above, the caller's i8mm.
    let acc = unsafe { tile::<RP, TP>(rows, toks, k) };
    for (p, accp) in acc.iter().enumerate() {
        for (tp, a) in accp.iter().enumerate() {
            let mut lanes = [0i32; 4];
            // SAFETY: 4 writable i32s.
            unsafe { vst1q_s32(lanes.as_mut_ptr(), *a) };
            for (l, &dot) in lanes.iter().enumerate() {
                let (r, t) = (r0 + 2 * p + l / 2, t0 + 2 * tp + l % 2);
                if r < d.rows && t < d.n_tok {
                    out[r * d.n_tok + t] = i2s_epilogue(dot, act.sum[t], act.scale[t], w_scale);
                }
            }
        }
    }
}

/// I2_S rows x int8 token rows with `SMMLA`, 4-row x 4-token tiles (2-row / 2-token tiles at
/// the edges). The caller runs with i8mm.
#[inline(always)]
unsafe fn i2s_body(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    i2s_checks(codes, act, d, out);
    for r0 in (0..d.rows).step_by(4) {
        let wide_rows = d.rows - r0 > 2;
        for t0 in (0..d.n_tok).step_by(4) {
            let wide_toks = d.n_tok - t0 > 2;
            let at = (r0, t0);
            // SAFETY: lengths checked by i2s_checks; the caller's i8mm.
            unsafe {
                match (wide_rows, wide_toks) {
                    (true, true) => tile_out::<2, 2>(codes, w_scale, act, d, at, out),
                    (true, false) => tile_out::<2, 1>(codes, w_scale, act, d, at, out),
                    (false, true) => tile_out::<1, 2>(codes, w_scale, act, d, at, out),
                    (false, false) => tile_out::<1, 1>(codes, w_scale, act, d, at, out),
                }
            }
        }
    }
}

/// The table's `i2s` entry: `SMMLA` for two or more tokens, the `SDOT` kernel for one (a
/// matvec has no second token to pair).
pub(super) fn i2s_i8mm(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    if d.n_tok <= 1 {
        return i2s_sdot(codes, w_scale, act, d, out);
    }
    #[target_feature(enable = "i8mm")]
    unsafe fn tf(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
        // SAFETY: see the caller.
        unsafe { i2s_body(codes, w_scale, act, d, out) }
    }
    // SAFETY: this entry is only in `I8MM`, which `table()` hands out after `detected()`; the
    // body checks every length it reads.
    unsafe { tf(codes, w_scale, act, d, out) }
}

#[cfg(test)]
mod tests {
    use crate::kernels::aarch64::tests::assert_i2s_matches_scalar;
    use crate::kernels::tests::Rng;
    use crate::kernels::{table, Kind, MatDims};

    /// The `SMMLA` product against scalar on every tile edge: 1..9 rows (partial 4-row and
    /// 2-row tiles) x 1..9 tokens (odd counts pad a token pair), random bytes (codes 3
    /// included) and random or extreme (-128 / 127) activations, two and three blocks.
    #[test]
    fn i8mm_tiles_match_scalar_on_edge_shapes() {
        let Some(i8mm) = table(Kind::NeonI8mm) else {
            assert!(!super::detected());
            eprintln!("SKIPPED: no i8mm on this CPU (the i8mm table is not handed out)");
            return;
        };
        let mut rng = Rng::new(8);
        for k in [256, 384] {
            for rows in 1..=9 {
                for n_tok in 1..=9 {
                    for extreme in [false, true] {
                        let codes: Vec<u8> =
                            (0..rows * k / 4).map(|_| rng.next_u64() as u8).collect();
                        let q: Vec<i8> = (0..n_tok * k)
                            .map(|i| match (extreme, (i / 7) % 2) {
                                (true, 0) => i8::MIN,
                                (true, _) => i8::MAX,
                                _ => rng.next_u64() as i8,
                            })
                            .collect();
                        let d = MatDims { k, rows, n_tok };
                        let what = if extreme { "extreme" } else { "random" };
                        assert_i2s_matches_scalar(i8mm, &codes, &q, d, what);
                    }
                }
            }
        }
    }
}
