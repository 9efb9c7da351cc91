//! The portable C99 kernel set ("c"): `*.c` in this directory, built by `build.rs` with `cc`,
//! called through these `extern "C"` declarations. It is the fallback on CPUs without a SIMD
//! variant and must match the scalar reference bit for bit (tested).
//!
//! Each wrapper checks the lengths the C code will read or write, so a misuse panics on the Rust
//! side instead of becoming an out-of-bounds access in C.

use super::{I8Rows, KernelTable, Kind, MatDims};
use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK_K};
use half::f16;

mod ffi {
    use crate::tensor::blocks::{BlockQ6K, BlockQ8K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0};
    extern "C" {
        pub(super) fn bitnet_c_i2s_matmul(
            codes: *const u8,
            w_scale: f32,
            q: *const i8,
            act_scale: *const f32,
            act_sum: *const i32,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_tq2_0_matmul(
            w: *const BlockTQ2_0,
            x: *const BlockQ8K,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_tq1_0_matmul(
            w: *const BlockTQ1_0,
            x: *const BlockQ8K,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_q6_K_matmul(
            w: *const BlockQ6K,
            x: *const BlockQ8K,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_q8_0_matmul(
            w: *const BlockQ8_0,
            x: *const BlockQ8_0,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_dot_f32_ggml(a: *const f32, b: *const f32, n: usize) -> f32;
        pub(super) fn bitnet_c_dot_f16_ggml(a: *const u16, b: *const u16, n: usize) -> f32;
        pub(super) fn bitnet_c_dot_f16_ggml_wide(a: *const u16, b: *const f32, n: usize) -> f32;
        pub(super) fn bitnet_c_dot_f32_tinyblas(a: *const f32, b: *const f32, n: usize) -> f32;
        pub(super) fn bitnet_c_dot_f16_f32_tinyblas(a: *const u16, b: *const f32, n: usize) -> f32;
        pub(super) fn bitnet_c_f32_ggml_matmul(
            w: *const f32,
            x: *const f32,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_f16_ggml_matmul(
            w: *const u16,
            x: *const u16,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_f32_tinyblas_matmul(
            w: *const f32,
            x: *const f32,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_f16_tinyblas_matmul(
            w: *const u16,
            x: *const f32,
            k: usize,
            rows: usize,
            n_tok: usize,
            out: *mut f32,
        );
        pub(super) fn bitnet_c_quantize_row_i8(
            x: *const f32,
            n: usize,
            q: *mut i8,
            scale: *mut f32,
            sum: *mut i32,
        );
        pub(super) fn bitnet_c_quantize_row_q8_K(x: *const f32, y: *mut BlockQ8K, nblocks: usize);
    }
}

pub(crate) static TABLE: KernelTable = KernelTable {
    kind: Kind::C,
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

fn check(what: &str, len: usize, need: usize) {
    assert!(len >= need, "c kernel: {what} has {len}, needs {need}");
}

/// Checks a call (`w` and `x` counted in blocks of `block` elements): the C code reads `rows * k/block` weight
/// blocks, `n_tok * k/block` activation blocks and writes `rows * n_tok` outputs.
fn check_blocks(w: usize, x: usize, out: usize, d: MatDims, block: usize) {
    assert!(
        d.k.is_multiple_of(block),
        "c kernel: k = {} is not whole blocks",
        d.k
    );
    check("weight blocks", w, d.rows * (d.k / block));
    check("activation blocks", x, d.n_tok * (d.k / block));
    check("out", out, d.rows * d.n_tok);
}

fn i2s_matmul(codes: &[u8], w_scale: f32, act: &I8Rows, d: MatDims, out: &mut [f32]) {
    // In units of 128-element blocks: 32 code bytes, 128 activation bytes.
    check_blocks(codes.len() / 32, act.q.len() / 128, out.len(), d, 128);
    check("act scales", act.scale.len().min(act.sum.len()), d.n_tok);
    // SAFETY: every length the C code touches was checked above; the pointers are valid for
    // the duration of the call and `out` is exclusively borrowed.
    unsafe {
        ffi::bitnet_c_i2s_matmul(
            codes.as_ptr(),
            w_scale,
            act.q.as_ptr(),
            act.scale.as_ptr(),
            act.sum.as_ptr(),
            d.k,
            d.rows,
            d.n_tok,
            out.as_mut_ptr(),
        )
    }
}

macro_rules! q8k_wrapper {
    ($name:ident, $block:ty, $cfn:ident) => {
        fn $name(w: &[$block], x: &[BlockQ8K], d: MatDims, out: &mut [f32]) {
            check_blocks(w.len(), x.len(), out.len(), d, QK_K);
            // SAFETY: lengths checked above; repr(C) blocks match the C structs (sizes asserted
            // on both sides).
            unsafe {
                ffi::$cfn(
                    w.as_ptr(),
                    x.as_ptr(),
                    d.k,
                    d.rows,
                    d.n_tok,
                    out.as_mut_ptr(),
                )
            }
        }
    };
}
q8k_wrapper!(tq2_0_matmul, BlockTQ2_0, bitnet_c_tq2_0_matmul);
q8k_wrapper!(tq1_0_matmul, BlockTQ1_0, bitnet_c_tq1_0_matmul);
q8k_wrapper!(q6_k_matmul, BlockQ6K, bitnet_c_q6_K_matmul);

fn q8_0_matmul(w: &[BlockQ8_0], x: &[BlockQ8_0], d: MatDims, out: &mut [f32]) {
    check_blocks(w.len(), x.len(), out.len(), d, 32);
    // SAFETY: lengths checked above; repr(C) blocks match the C struct.
    unsafe {
        ffi::bitnet_c_q8_0_matmul(
            w.as_ptr(),
            x.as_ptr(),
            d.k,
            d.rows,
            d.n_tok,
            out.as_mut_ptr(),
        )
    }
}

/// f16 slices as the raw u16 bits the C code converts itself.
fn bits(v: &[f16]) -> *const u16 {
    v.as_ptr() as *const u16
}

macro_rules! float_wrapper {
    ($name:ident, $wt:ty, $xt:ty, $cfn:ident, $wp:expr, $xp:expr) => {
        fn $name(w: &[$wt], x: &[$xt], d: MatDims, out: &mut [f32]) {
            check_blocks(w.len(), x.len(), out.len(), d, 1);
            // SAFETY: lengths checked above (f16 is a transparent u16).
            unsafe { ffi::$cfn($wp(w), $xp(x), d.k, d.rows, d.n_tok, out.as_mut_ptr()) }
        }
    };
}
float_wrapper!(
    f32_ggml_matmul,
    f32,
    f32,
    bitnet_c_f32_ggml_matmul,
    <[f32]>::as_ptr,
    <[f32]>::as_ptr
);
float_wrapper!(
    f16_ggml_matmul,
    f16,
    f16,
    bitnet_c_f16_ggml_matmul,
    bits,
    bits
);
float_wrapper!(
    f32_tinyblas_matmul,
    f32,
    f32,
    bitnet_c_f32_tinyblas_matmul,
    <[f32]>::as_ptr,
    <[f32]>::as_ptr
);
float_wrapper!(
    f16_tinyblas_matmul,
    f16,
    f32,
    bitnet_c_f16_tinyblas_matmul,
    bits,
    <[f32]>::as_ptr
);

fn dot_f32_ggml(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: both pointers valid for min(len) elements.
    unsafe { ffi::bitnet_c_dot_f32_ggml(a.as_ptr(), b.as_ptr(), a.len().min(b.len())) }
}

fn dot_f16_ggml(a: &[f16], b: &[f16]) -> f32 {
    // SAFETY: both pointers valid for min(len) elements.
    unsafe { ffi::bitnet_c_dot_f16_ggml(bits(a), bits(b), a.len().min(b.len())) }
}

fn dot_f32_tinyblas(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: both pointers valid for min(len) elements.
    unsafe { ffi::bitnet_c_dot_f32_tinyblas(a.as_ptr(), b.as_ptr(), a.len().min(b.len())) }
}

fn dot_f16_f32_tinyblas(a: &[f16], b: &[f32]) -> f32 {
    // SAFETY: both pointers valid for min(len) elements.
    unsafe { ffi::bitnet_c_dot_f16_f32_tinyblas(bits(a), b.as_ptr(), a.len().min(b.len())) }
}

fn f16_ggml_strided(w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
    super::strided_rows(w, stride, x, out, dot_f16_ggml)
}

fn f16_tinyblas_strided(w: &[f16], stride: usize, x: &[f32], out: &mut [f32]) {
    super::strided_rows(w, stride, x, out, dot_f16_f32_tinyblas)
}

fn dot_f16_ggml_wide(a: &[f16], b: &[f32]) -> f32 {
    // SAFETY: both pointers valid for min(len) elements.
    unsafe { ffi::bitnet_c_dot_f16_ggml_wide(bits(a), b.as_ptr(), a.len().min(b.len())) }
}

fn f16_ggml_strided_group(w: &[f16], stride: usize, x: &[f32], g: usize, out: &mut [f32]) {
    super::strided_group(w, stride, x, g, out, dot_f16_ggml_wide)
}

fn quantize_i8(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    check("i8 output", q.len(), x.len());
    let (mut s, mut sum) = (0f32, 0i32);
    // SAFETY: q has room for x.len() values; s and sum are valid out-pointers.
    unsafe { ffi::bitnet_c_quantize_row_i8(x.as_ptr(), x.len(), q.as_mut_ptr(), &mut s, &mut sum) }
    (s, sum)
}

fn quantize_q8k(x: &[f32], y: &mut [BlockQ8K]) {
    check("Q8_K input", x.len(), y.len() * QK_K);
    // SAFETY: x holds y.len() whole blocks; y is exclusively borrowed.
    unsafe { ffi::bitnet_c_quantize_row_q8_K(x.as_ptr(), y.as_mut_ptr(), y.len()) }
}
