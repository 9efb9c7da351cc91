//! AVX2 + FMA + F16C kernels. Every one reproduces [`super::super::scalar`] bit for bit:
//! integer parts are exact (the bounds that keep int16 partial sums from saturating are noted
//! where they are used), float parts use the same lanes, the same fma/no-fma choices and the
//! same horizontal sums.
//!
//! The table's entries are safe `fn`s: each checks the slice lengths it is going to read with raw
//! pointers (a misuse panics instead of reading out of bounds) and then calls the
//! `#[target_feature]` code, which is sound because [`TABLE`] is only reachable through
//! [`super::super::table`] after [`detected`] returned true.
//!
//! One file per kernel family, as `kernels/aarch64/`: `ternary.rs` (I2_S, TQ2_0, TQ1_0),
//! `kquant.rs` (Q6_K, Q8_0), `float.rs` (F32 / F16 dots and products), `attention.rs` (the
//! strided and grouped f16 rows of attention), `act.rs` (activation quantization). This file
//! holds the table and the helpers they share; the AVX-512 table reuses several of them.

mod act;
mod attention;
mod float;
mod kquant;
mod ternary;

use super::super::candidates::{Candidate, Entry, EntryFn};
use super::super::scalar::i2s_epilogue;
use super::super::{I8Rows, KernelTable, Kind, MatDims};
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK_K};
use core::arch::x86_64::*;
use core::mem::MaybeUninit;
use half::f16;

// The families' entries (for TABLE) and what they share with each other.
use act::{quantize_i8, quantize_q8k};
use attention::{f16_ggml_strided, f16_ggml_strided_group, f16_tinyblas_strided};
use float::{
    dot_f16_f32_tinyblas, dot_f32_ggml, dot_f32_tinyblas, f16_tinyblas_matmul, f16_two_rows,
    f32_ggml_matmul, f32_tinyblas_matmul, load_h, tinyblas_rows,
};
use kquant::{q6_k_matmul, q6_k_rows_avx2};
use ternary::{
    banded, check_q8k, f16_bits_to_f32, i2s_matmul, i2s_matmul_by, i2s_vec, tq1_0_matmul,
    tq2_0_matmul,
};

// Shared with the AVX-512 table.
pub(super) use attention::{
    group_finish, group_prefetch_rows, group_rows_kernel, strided_group_by4, GROUP_PREFETCH_BYTES,
};
pub(super) use float::{
    dot_f16_ggml, f16_ggml_matmul, f16_ggml_two_rows, f16_matmul_by, f16_rows, widen_f16,
    F16_WIDE_MAX, PREFETCH_F16_PAIR,
};
pub(super) use kquant::{
    q6_k_matmul_by, q6k_rows_one_token, q8_0_matmul, q8_0_rows, Q8_0_WIDE_MAX,
};
pub(super) use ternary::i2s_epilogue_in_place;

/// True when this CPU can run these kernels.
pub(crate) fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

pub(crate) static TABLE: KernelTable = KernelTable {
    kind: Kind::Avx2,
    i2s: i2s_matmul,
    i2s_vec: i2s_vec::<1, PREFETCH>,
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

/// This table's candidates for `entry` (see [`super::super::candidates`]); the table's own
/// entry is among them.
pub(in crate::kernels) fn candidates(entry: Entry, out: &mut Vec<Candidate>) {
    let mut add = |name, f| out.push(Candidate::new(Kind::Avx2, entry, name, f));
    match entry {
        Entry::I2sVec => {
            add("avx2-ymm-1row-pf3k", EntryFn::I2s(i2s_vec::<1, PREFETCH>));
            add("avx2-ymm-1row-pf8k", EntryFn::I2s(i2s_vec::<1, 8192>));
            add("avx2-ymm-2row-pf3k", EntryFn::I2s(i2s_vec::<2, PREFETCH>));
            add("avx2-ymm-2row-pf8k", EntryFn::I2s(i2s_vec::<2, 8192>));
            add("avx2-ymm-4row-pf8k", EntryFn::I2s(i2s_vec::<4, 8192>));
        }
        Entry::I2s => {
            add("avx2-ymm-1row-8tok", EntryFn::I2s(i2s_matmul));
            add("avx2-ymm-1row-4tok", EntryFn::I2s(i2s_matmul_by::<false>));
        }
        Entry::F16Ggml => {
            add("avx2-ymm-2row-pf32k", EntryFn::F16(f16_ggml_matmul));
            add(
                "avx2-ymm-2row-pf8k",
                EntryFn::F16(f16_ggml_two_rows::<8192>),
            );
        }
        Entry::Q8_0 => add("avx2-ymm-2row-pf32k", EntryFn::Q8_0(q8_0_matmul)),
        Entry::Q6K => {
            add("avx2-ymm-1row-4tok", EntryFn::Q6K(q6_k_matmul));
            add(
                "avx2-ymm-1row-pf8k",
                EntryFn::Q6K(q6_k_rows_avx2::<1, 8192>),
            );
            add(
                "avx2-ymm-2row-pf8k",
                EntryFn::Q6K(q6_k_rows_avx2::<2, 8192>),
            );
        }
        Entry::F16Group => add("avx2-ymm-pf2k", EntryFn::Group(f16_ggml_strided_group)),
    }
}

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
