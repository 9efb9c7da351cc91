//! aarch64 kernel variants: `neon` (Advanced SIMD, part of every aarch64 CPU) and `dotprod`
//! (the same kernels with the integer products done by `SDOT`, ARMv8.2-A+dotprod: Apple M1 and
//! later, Graviton 2+, Ampere Altra, Neoverse N1+, Cortex-A76+ and Snapdragon 8xx) and `i8mm`
//! (`dotprod` with the multi-token I2_S product on `SMMLA`, `i8mm.rs`). `dotprod` is only handed
//! out by [`super::table`] after `is_aarch64_feature_detected!("dotprod")`, `i8mm` after that and
//! `is_aarch64_feature_detected!("i8mm")`.
//!
//! Every kernel reproduces [`super::scalar`] bit for bit: integer parts are exact (so any order
//! of integer accumulation gives the same sum), float parts keep the reference's 8 lanes (two
//! 4-lane registers: lanes 0..3 and 4..7), the same fma / no-fma choices and the same horizontal
//! sums. One file per kernel family: `ternary.rs` (I2_S, TQ2_0, TQ1_0), `kquant.rs` (Q6_K,
//! Q8_0), `float.rs` (F32 / F16 products and the strided attention rows), `act.rs` (activation
//! quantization), `i8mm.rs` (the I2_S product with `SMMLA`).
//!
//! `vdotq_s32` is unstable on stable Rust, so `SDOT` is written with `asm!` inside a
//! `#[target_feature(enable = "dotprod")]` function ([`sdot`]); the integer kernels are generic
//! over `const SDOT: bool` and instantiated twice by [`dot_entries!`]: once as plain NEON, once
//! inside a dotprod function (so the NEON-only table never contains an `SDOT`).

mod act;
mod float;
mod i8mm;
mod kquant;
mod ternary;

use super::{I8Rows, KernelTable, Kind, MatDims};
use core::arch::aarch64::*;

/// True when this CPU has the `SDOT` / `UDOT` instructions.
pub(crate) fn dotprod_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

macro_rules! aarch64_table {
    ($kind:expr, $i2s:path, $i2s_vec:path, $tq2:path, $tq1:path, $q6k:path, $q80:path) => {
        KernelTable {
            kind: $kind,
            i2s: $i2s,
            i2s_vec: $i2s_vec,
            tq2_0: $tq2,
            tq1_0: $tq1,
            q6_k: $q6k,
            q8_0: $q80,
            f16_ggml: float::f16_ggml_matmul,
            f16_tinyblas: float::f16_tinyblas_matmul,
            f32_ggml: float::f32_ggml_matmul,
            f32_tinyblas: float::f32_tinyblas_matmul,
            dot_f32_ggml: float::dot_f32_ggml,
            dot_f16_ggml: float::dot_f16_ggml,
            dot_f32_tinyblas: float::dot_f32_tinyblas,
            dot_f16_f32_tinyblas: float::dot_f16_f32_tinyblas,
            f16_ggml_strided: float::f16_ggml_strided,
            f16_tinyblas_strided: float::f16_tinyblas_strided,
            f16_ggml_strided_group: float::f16_ggml_strided_group,
            quantize_i8: act::quantize_i8,
            quantize_q8k: act::quantize_q8k,
        }
    };
}

/// NEON only (every aarch64 CPU).
pub(crate) static NEON: KernelTable = aarch64_table!(
    Kind::Neon,
    ternary::i2s_neon,
    ternary::i2s_neon,
    ternary::tq2_0_neon,
    ternary::tq1_0_neon,
    kquant::q6_k_neon,
    kquant::q8_0_neon
);

/// NEON with `SDOT` for the integer products.
pub(crate) static DOTPROD: KernelTable = aarch64_table!(
    Kind::NeonDotprod,
    ternary::i2s_sdot,
    ternary::i2s_sdot,
    ternary::tq2_0_sdot,
    ternary::tq1_0_sdot,
    kquant::q6_k_sdot,
    kquant::q8_0_sdot
);

/// [`DOTPROD`] with the multi-token I2_S product on `SMMLA` (i8mm, `i8mm.rs`); the matvec and
/// every other entry stay on `SDOT`.
pub(crate) static I8MM: KernelTable = aarch64_table!(
    Kind::NeonI8mm,
    i8mm::i2s_i8mm,
    ternary::i2s_sdot,
    ternary::tq2_0_sdot,
    ternary::tq1_0_sdot,
    kquant::q6_k_sdot,
    kquant::q8_0_sdot
);

/// True when this CPU has `SMMLA` and `SDOT` (the [`I8MM`] table needs both).
pub(crate) fn i8mm_detected() -> bool {
    i8mm::detected()
}

/// Panics unless `len >= need`: the guard in front of every raw-pointer loop.
#[inline(always)]
fn check(what: &str, len: usize, need: usize) {
    assert!(
        len >= need,
        "aarch64 kernel: {what} has {len}, needs {need}"
    );
}

/// The checks in front of every I2_S kernel ([`crate::kernels::check_i2s`]).
fn i2s_checks(codes: &[u8], act: &I8Rows, d: MatDims, out: &[f32]) {
    crate::kernels::check_i2s("aarch64", codes, act, d, out)
}

/// Rows of blocks `W` against token rows of blocks `A`, `d.k / qk` of each to a row (Q8_K or
/// Q8_0 activations): for every (row, token) the 8 float lanes (`lo` = 0..3, `hi` = 4..7) start
/// at zero, `block(w, a, lo, hi)` folds each pair of blocks into them in order, and [`hsum8`]
/// gives `out[row * n_tok + token]`. The lengths are checked here (`what` names the kernel).
#[inline(always)]
unsafe fn block_rows<W, A>(
    what: &str,
    qk: usize,
    w: &[W],
    act: &[A],
    d: MatDims,
    out: &mut [f32],
    block: impl Fn(&W, &A, float32x4_t, float32x4_t) -> (float32x4_t, float32x4_t),
) {
    assert!(
        d.k.is_multiple_of(qk),
        "aarch64 {what}: k = {} is not whole blocks",
        d.k
    );
    let nb = d.k / qk;
    check(what, w.len(), d.rows * nb);
    check(what, act.len(), d.n_tok * nb);
    check(what, out.len(), d.rows * d.n_tok);
    for r in 0..d.rows {
        let wrow = &w[r * nb..(r + 1) * nb];
        for t in 0..d.n_tok {
            let xrow = &act[t * nb..(t + 1) * nb];
            // SAFETY: NEON is baseline.
            let (mut lo, mut hi) = unsafe { (vdupq_n_f32(0.0), vdupq_n_f32(0.0)) };
            for (wb, xb) in wrow.iter().zip(xrow) {
                (lo, hi) = block(wb, xb, lo, hi);
            }
            // SAFETY: NEON is baseline.
            out[r * d.n_tok + t] = unsafe { hsum8(lo, hi) };
        }
    }
}

/// Defines `unsafe fn $name(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t`: the
/// instruction `$insn Vacc.4S, Va.16B, Vb.16B` (which adds its int8 products into `acc`) in a
/// `#[target_feature(enable = $feature)]` function. Written with `asm!` because the intrinsics
/// (`vdotq_s32`, `vmmlaq_s32`) are unstable on stable Rust.
macro_rules! int8_asm {
    ($(#[$doc:meta])* $name:ident, $feature:literal, $insn:literal) => {
        $(#[$doc])*
        #[target_feature(enable = $feature)]
        #[inline]
        unsafe fn $name(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
            let mut acc = acc;
            // SAFETY: a register-only instruction; this function is only compiled into and
            // called from code with the feature (the caller's contract: the CPU has it).
            unsafe {
                core::arch::asm!(
                    concat!($insn, " {acc:v}.4s, {a:v}.16b, {b:v}.16b"),
                    acc = inout(vreg) acc,
                    a = in(vreg) a,
                    b = in(vreg) b,
                    options(pure, nomem, nostack, preserves_flags)
                );
            }
            acc
        }
    };
}
use int8_asm;

int8_asm!(
    /// `SDOT`: lane i of `acc` plus the dot product of bytes 4i..4i+3 of `a` and `b` (signed).
    sdot,
    "dotprod",
    "sdot"
);

/// `acc + sdot(a, b)` lane for lane: with `SDOT` when `SDOT` is true (the caller must then run
/// with the dotprod feature), otherwise with widening multiplies and pairwise adds (every
/// product of two int8 fits an int16; the pairs are widened to int32 before they are added).
#[inline(always)]
unsafe fn dot4<const SDOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is baseline on aarch64; the SDOT branch is only instantiated by dotprod code.
    unsafe {
        if SDOT {
            sdot(acc, a, b)
        } else {
            let p0 = vmull_s8(vget_low_s8(a), vget_low_s8(b));
            let p1 = vmull_high_s8(a, b);
            vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1)))
        }
    }
}

/// ggml `hsum_float_8` / tinyBLAS `hsum` of 8 lanes held as `lo` (0..3) and `hi` (4..7):
/// `t[l] = acc[l+4] + acc[l]`, `(t0+t2) + (t1+t3)`.
#[inline(always)]
unsafe fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    // SAFETY: NEON is baseline on aarch64.
    unsafe {
        let t = vaddq_f32(hi, lo);
        let u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
        vget_lane_f32::<0>(u) + vget_lane_f32::<1>(u)
    }
}

/// Defines a NEON entry `$neon` and a dotprod entry `$sdot` (safe `fn`s with the table's
/// signature) around one `unsafe fn $body<const SDOT: bool>` that checks its own lengths.
macro_rules! dot_entries {
    ($body:ident => $neon:ident, $sdot:ident ($($a:ident: $t:ty),*)) => {
        pub(super) fn $neon($($a: $t),*) {
            // SAFETY: NEON is baseline on aarch64 and the body checks every length it reads.
            unsafe { $body::<false>($($a),*) }
        }
        pub(super) fn $sdot($($a: $t),*) {
            #[target_feature(enable = "dotprod")]
            unsafe fn tf($($a: $t),*) {
                // SAFETY: see the caller.
                unsafe { $body::<true>($($a),*) }
            }
            // SAFETY: this entry is only in `DOTPROD`, which `table()` hands out after
            // `dotprod_detected()`; the body checks every length it reads.
            unsafe { tf($($a),*) }
        }
    };
}
use dot_entries;

#[cfg(test)]
mod tests {
    use super::*;

    /// Detection picks the SIMD tables: `neon` everywhere, `dotprod` exactly when the CPU has
    /// it (under qemu `-cpu cortex-a72` it must be absent, or the tests would SIGILL), and the
    /// active table is the best of them unless `BITNET_KERNEL` says otherwise.
    #[test]
    fn detection_picks_the_arm_tables() {
        use crate::kernels::{active_name, table, Kind};
        let i8mm = std::arch::is_aarch64_feature_detected!("i8mm");
        assert!(table(Kind::Neon).is_some());
        assert_eq!(table(Kind::NeonDotprod).is_some(), dotprod_detected());
        assert_eq!(table(Kind::NeonI8mm).is_some(), i8mm && dotprod_detected());
        assert!(table(Kind::Avx2).is_none() && table(Kind::Avx512Vnni).is_none());
        let want = if i8mm_detected() {
            "i8mm"
        } else if dotprod_detected() {
            "dotprod"
        } else {
            "neon"
        };
        match std::env::var("BITNET_KERNEL") {
            Ok(k) if !k.is_empty() => eprintln!("BITNET_KERNEL={k}: active {}", active_name()),
            _ => assert_eq!(active_name(), want),
        }
        eprintln!(
            "aarch64: dotprod detected = {}, i8mm detected = {i8mm}",
            dotprod_detected()
        );
    }

    /// The I2_S kernels at the int16 bound of the NEON path: every code 3 (never written by a
    /// quantizer, but any byte is accepted) against -128 / 127 activations, over more blocks
    /// than one widening interval, equal scalar.
    #[test]
    fn i2s_extreme_values_match_scalar() {
        use crate::kernels::table;
        let (k, rows, n_tok) = (128 * 21, 3, 5);
        let codes = vec![0xffu8; rows * k / 4];
        let q: Vec<i8> = (0..n_tok * k)
            .map(|i| if (i / k) % 2 == 0 { i8::MIN } else { i8::MAX })
            .collect();
        for kt in [Kind::Neon, Kind::NeonDotprod, Kind::NeonI8mm]
            .into_iter()
            .filter_map(table)
        {
            assert_i2s_matches_scalar(kt, &codes, &q, MatDims { k, rows, n_tok }, "extreme");
        }
    }

    /// `kt.i2s` and scalar's on `codes` (`d.rows` x `d.k`) against the int8 token rows `q`
    /// (`d.n_tok` x `d.k`, act scale 0.5 + t, weight scale 1.25) give the same bits.
    pub(super) fn assert_i2s_matches_scalar(
        kt: &KernelTable,
        codes: &[u8],
        q: &[i8],
        d: MatDims,
        what: &str,
    ) {
        let sum: Vec<i32> = q
            .chunks(d.k)
            .map(|t| t.iter().map(|&v| v as i32).sum())
            .collect();
        let scale: Vec<f32> = (0..d.n_tok).map(|t| 0.5 + t as f32).collect();
        let act = I8Rows {
            q,
            scale: &scale,
            sum: &sum,
        };
        let mut want = vec![0f32; d.rows * d.n_tok];
        (crate::kernels::table(Kind::Scalar).unwrap().i2s)(codes, 1.25, &act, d, &mut want);
        let mut got = vec![f32::NAN; d.rows * d.n_tok];
        (kt.i2s)(codes, 1.25, &act, d, &mut got);
        let b = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(b(&got), b(&want), "{} {what} {d:?}", kt.name());
    }

    /// The NEON fallback and (where the CPU has it) SDOT agree with a plain integer dot, on the
    /// extreme values too.
    #[test]
    fn dot4_matches_integer_dot() {
        let mut rng = crate::kernels::tests::Rng::new(5);
        for round in 0..200 {
            let mut a = [0i8; 16];
            let mut b = [0i8; 16];
            for i in 0..16 {
                a[i] = if round % 3 == 0 {
                    i8::MIN
                } else {
                    rng.next_u64() as i8
                };
                b[i] = if round % 5 == 0 {
                    i8::MIN
                } else {
                    rng.next_u64() as i8
                };
            }
            let want: [i32; 4] = core::array::from_fn(|l| {
                (4 * l..4 * l + 4)
                    .map(|i| a[i] as i32 * b[i] as i32)
                    .sum::<i32>()
                    + 7
            });
            // SAFETY: NEON is baseline; the SDOT path runs only when detected.
            unsafe {
                let (va, vb, acc) = (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr()), vdupq_n_s32(7));
                let mut got = [0i32; 4];
                vst1q_s32(got.as_mut_ptr(), dot4::<false>(acc, va, vb));
                assert_eq!(got, want, "neon");
                if dotprod_detected() {
                    vst1q_s32(got.as_mut_ptr(), sdot(acc, va, vb));
                    assert_eq!(got, want, "sdot");
                }
            }
        }
    }
}
