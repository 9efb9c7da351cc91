//! The matmul driver, generic over a weight type's descriptor ([`super::weight_types`]):
//! shape checks, activations prepared once per call into [`Scratch`], output rows split over
//! the current rayon pool, multi-token results scattered into token-major order.

use super::weight_types::{self as wt, WeightType};
use super::{active, KernelTable, MatDims, Weights};
use crate::error::{Error, Result};
use crate::tensor::blocks::{cast_slice, Pod};
use crate::tensor::GgmlType;
use rayon::prelude::*;

/// Reusable buffers for prepared activations and the row-major output of multi-token calls.
/// Owned by the context and grown on demand, so a warmed-up decode step does not allocate.
/// The activations of every weight type are carved from one arena (`Arena`): a weight type
/// adds no field here.
#[derive(Default)]
pub struct Scratch {
    /// The activation arena in 64-byte units, so every part (and every int8 row: k is a
    /// multiple of 128) starts on a cache line and a 512-bit load never splits one.
    act: Vec<Line64>,
    /// `[row][token]` results of a multi-token call before they are transposed into `y`.
    out_rt: Vec<f32>,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// One cache line: the storage unit of [`Scratch`]'s activation arena.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line64([u8; 64]);

/// Bytes an [`Arena::take`] of `n` values of `T` uses: whole cache lines.
pub(super) const fn part<T>(n: usize) -> usize {
    (n * std::mem::size_of::<T>()).next_multiple_of(64)
}

/// A weight type's share of the scratch: typed parts cut one after another from a 64-byte
/// aligned byte buffer, each starting on a cache line.
pub(super) struct Arena<'a> {
    rest: &'a mut [u8],
}

impl<'a> Arena<'a> {
    /// Grows `v` to hold at least `bytes` (never shrinks, so steady state does not allocate)
    /// and hands out its first `bytes`.
    fn new(v: &'a mut Vec<Line64>, bytes: usize) -> Arena<'a> {
        let lines = bytes.div_ceil(64);
        if v.len() < lines {
            v.resize(lines, Line64([0; 64]));
        }
        // SAFETY: Line64 is 64 plain u8 with no padding (repr(C), size 64), so the first
        // `lines` elements are `64 * lines >= bytes` initialized, exclusively borrowed bytes.
        let rest = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, bytes) };
        Arena { rest }
    }

    /// The next `n` values of `T`, starting on a 64-byte boundary. Panics when the weight type
    /// asked for fewer bytes ([`WeightType::scratch_bytes`]) than it takes.
    pub(super) fn take<T: Pod>(&mut self, n: usize) -> &'a mut [T] {
        const { assert!(std::mem::align_of::<T>() <= 64) };
        let bytes = part::<T>(n);
        let rest = std::mem::take(&mut self.rest);
        assert!(
            rest.len() >= bytes,
            "kernel scratch: {bytes} bytes asked, {} left",
            rest.len()
        );
        let (head, tail) = rest.split_at_mut(bytes);
        self.rest = tail;
        debug_assert!((head.as_ptr() as usize).is_multiple_of(64));
        // SAFETY: `head` starts on a 64-byte boundary (the buffer does and every part is whole
        // lines), which satisfies T's alignment (asserted <= 64); it holds `n * size_of::<T>()`
        // initialized bytes, exclusively borrowed for 'a; T is Pod (no padding, every bit
        // pattern valid), so the bytes are valid Ts and writing Ts leaves every byte initialized.
        unsafe { std::slice::from_raw_parts_mut(head.as_mut_ptr() as *mut T, n) }
    }
}

/// `y[t*rows + r] = W[r,:] . x[t*cols .. (t+1)*cols]` for `t in 0..n_tokens`, computed exactly as
/// the reference does for this weight type and number of tokens (each type's rule is on its
/// descriptor in `super::weight_types`):
/// - I2_S: each activation row quantized to int8 (I2_S.md §4), integer dot with the 2-bit codes,
///   epilogue `((float)dot - (float)sum) / s * scale` (§5).
/// - TQ1_0 / TQ2_0 / Q6_K: x quantized to Q8_K blocks, lane-ordered float accumulation (§6a).
/// - F16: 1 token: x rounded to f16, `ggml_vec_dot_f16` order; 2+ tokens and K % 8 == 0: tinyBLAS
///   with f32 x (FORWARD.md §8); 2+ tokens and K % 8 != 0: like 1 token (sgemm refuses, ggml falls
///   back to the f16 vec_dot for each row).
/// - F32: 1 token, or K % 8 != 0: `ggml_vec_dot_f32` order; otherwise tinyBLAS.
/// - Q8_0: x quantized like ggml's AVX2 `quantize_row_q8_0`, ggml's AVX2 Q8_0 dot
///   ([`quantize_row_q8_0`](super::quantize_row_q8_0)). Not validated against golden data
///   (there is no Q8_0 model).
///
/// Runs on the current rayon pool, split by output rows only. Wrap a whole forward pass in one
/// `pool.install`, not each call: measured here, an `install` per call adds 15-35 us (a cross-
/// thread wake-up), while a call inside an installed pool costs ~0.35 us over the kernel itself.
/// Small products (under [`MIN_PARALLEL_WORK`] multiply-adds) run on the calling thread.
/// Errors on shape mismatches: `x.len() != n_tokens*cols`, `y` shorter than `n_tokens*rows`,
/// `data` too short, `cols` not whole blocks; and on BF16 / Q8_K weights.
pub fn matmul(
    w: &Weights,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    matmul_with(active(), w, x, n_tokens, y, scratch)
}

/// [`matmul`] with an explicit kernel table (a context's, or a test's).
pub fn matmul_with(
    kt: &KernelTable,
    w: &Weights,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    checked(kt, w, x, n_tokens, y, scratch, Order::Reference)
}

/// [`matmul_with`], but every token's outputs are the bits a one-token call gives for that
/// token, whatever `n_tokens` is (batch-invariant serving): F16 and F32 weights take the
/// single-token `ggml_vec_dot` order for every token (each weight tile read once for all
/// tokens) instead of the reference's multi-token tinyBLAS order. The quantized types are
/// per-token invariant already and run as in [`matmul_with`].
pub fn matmul_per_token(
    kt: &KernelTable,
    w: &Weights,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut Scratch,
) -> Result<()> {
    checked(kt, w, x, n_tokens, y, scratch, Order::PerToken)
}

/// Which order a float product with 2+ tokens takes.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// The reference's: tinyBLAS when it applies (FORWARD.md §8).
    Reference,
    /// Each token as if alone.
    PerToken,
}

fn checked(
    kt: &KernelTable,
    w: &Weights,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut Scratch,
    order: Order,
) -> Result<()> {
    let (rows, k, ty) = (w.rows, w.cols, w.ty);
    let bad = |m: String| Error::invalid_argument(format!("matmul ({ty} {k}x{rows}): {m}"));
    if Some(x.len()) != n_tokens.checked_mul(k) {
        return Err(bad(format!(
            "x has {} values, expected {n_tokens} tokens x {k}",
            x.len()
        )));
    }
    let n_out = rows
        .checked_mul(n_tokens)
        .ok_or_else(|| bad("output size overflows".into()))?;
    if y.len() < n_out {
        return Err(bad(format!(
            "y has room for {} values, needs {n_tokens} x {rows}",
            y.len()
        )));
    }
    if n_out == 0 {
        return Ok(());
    }
    let call = Call { kt, w, x, n_tokens };
    match ty {
        GgmlType::I2_S => call.run::<wt::I2S>(y, scratch),
        GgmlType::TQ2_0 => call.run::<wt::TQ2_0>(y, scratch),
        GgmlType::TQ1_0 => call.run::<wt::TQ1_0>(y, scratch),
        GgmlType::Q6_K => call.run::<wt::Q6K>(y, scratch),
        GgmlType::Q8_0 => call.run::<wt::Q8_0>(y, scratch),
        GgmlType::F16 if order == Order::PerToken && n_tokens > 1 => {
            call.run::<wt::F16PerToken>(y, scratch)
        }
        GgmlType::F32 if order == Order::PerToken => call.run::<wt::F32PerToken>(y, scratch),
        GgmlType::F16 => call.run::<wt::F16>(y, scratch),
        GgmlType::F32 => call.run::<wt::F32>(y, scratch),
        GgmlType::BF16 | GgmlType::Q8_K => Err(Error::unsupported(format!(
            "matmul: {ty} weights are not supported"
        ))),
    }
}

/// One checked matmul call (shapes valid, at least one output).
struct Call<'a> {
    kt: &'a KernelTable,
    w: &'a Weights<'a>,
    x: &'a [f32],
    n_tokens: usize,
}

impl Call<'_> {
    /// The product for weight type `T`: prepare the activations, split the rows, scatter.
    fn run<T: WeightType>(&self, y: &mut [f32], scratch: &mut Scratch) -> Result<()> {
        let Call { kt, w, x, n_tokens } = *self;
        let (rows, k) = (w.rows, w.cols);
        // Checked by Weights::new: whole rows, aligned for the type.
        let wb: &[T::W] = typed(w.data, w.ty)?;
        let per_row = k / T::INPUTS_PER_ITEM;
        debug_assert_eq!(wb.len(), rows * per_row);
        let d = MatDims {
            k,
            rows,
            n_tok: n_tokens,
        };
        let Scratch { act, out_rt } = scratch;
        // One token: the [row][token] layout is y itself. More: each chunk of rows computes into
        // its part of out_rt and scatters it into y's token-major rows while it is still in cache.
        let (out, tm): (&mut [f32], Option<TokenMajor>) = if n_tokens == 1 {
            (&mut y[..rows], None)
        } else {
            let n_out = rows * n_tokens;
            if out_rt.len() < n_out {
                out_rt.resize(n_out, 0.0);
            }
            let tm = TokenMajor {
                y: y.as_mut_ptr(),
                rows,
                n_tok: n_tokens,
            };
            (&mut out_rt[..n_out], Some(tm))
        };
        let mut arena = Arena::new(act, T::scratch_bytes(n_tokens, k));
        let a = T::prepare(kt, x, n_tokens, k, &mut arena);
        let scale = w.scale();
        split_rows(wb, per_row, d, out, tm, |w, d, o| {
            T::kernel(kt, w, scale, &a, d, o)
        });
        Ok(())
    }
}

/// The token-major destination `y[t * rows + r]` of a multi-token product, written through a
/// raw pointer by the chunk that computed row `r`. Chunks own disjoint row ranges, so no two
/// threads ever write the same element.
#[derive(Clone, Copy)]
struct TokenMajor {
    y: *mut f32,
    rows: usize,
    n_tok: usize,
}

// SAFETY: the pointer is only written through `scatter`, whose callers own disjoint row ranges
// of a buffer that outlives the parallel section (it is borrowed by `matmul_with`).
unsafe impl Send for TokenMajor {}
// SAFETY: as above.
unsafe impl Sync for TokenMajor {}

impl TokenMajor {
    /// Copies a chunk's `[row][token]` results `rt` (rows `r0..r0 + rt.len() / n_tok`) into
    /// place, in bands of rows so the band's reads stay in L1 and the writes run contiguously.
    ///
    /// # Safety
    /// `y` must hold `rows * n_tok` values and no other thread may touch rows `r0..` of it
    /// covered by `rt` while this runs.
    unsafe fn scatter(&self, r0: usize, rt: &[f32]) {
        const BAND: usize = 64;
        let n = self.n_tok;
        let nr = rt.len() / n;
        debug_assert!(r0 + nr <= self.rows);
        for b0 in (0..nr).step_by(BAND) {
            let b1 = (b0 + BAND).min(nr);
            for t in 0..n {
                // SAFETY: t * rows + r0 + b1 <= rows * n_tok (caller's contract).
                let dst = unsafe { self.y.add(t * self.rows + r0 + b0) };
                for i in 0..b1 - b0 {
                    // SAFETY: within this chunk's rows of token t, see above.
                    unsafe { *dst.add(i) = rt[(b0 + i) * n + t] };
                }
            }
        }
    }
}

/// Views the weight bytes as `T`s, or says the data is misaligned (GGUF data is 32-aligned, so
/// this only trips on hand-made buffers).
fn typed<T: Pod>(data: &[u8], ty: GgmlType) -> Result<&[T]> {
    cast_slice(data).ok_or_else(|| {
        Error::invalid_argument(format!(
            "matmul: {ty} weight data is not aligned to {} bytes",
            std::mem::align_of::<T>()
        ))
    })
}

/// Below this many multiply-adds a call runs on the calling thread: a rayon fork/join costs a few
/// microseconds, more than the whole product of a small matrix.
pub const MIN_PARALLEL_WORK: usize = 1 << 16;

/// Runs `f` over chunks of whole output rows, in parallel on the current rayon pool when the
/// work is big enough. `w` holds `per_row` items per row. Each output is produced by exactly one
/// kernel call whatever the chunking, so the split never changes a bit.
/// `out` is `[row][token]`; with `tm` each chunk's part is also scattered into the token-major
/// result right after it is computed.
fn split_rows<W: Sync>(
    w: &[W],
    per_row: usize,
    d: MatDims,
    out: &mut [f32],
    tm: Option<TokenMajor>,
    f: impl Fn(&[W], MatDims, &mut [f32]) + Sync,
) {
    let threads = rayon::current_num_threads();
    let work = d.rows * d.k * d.n_tok;
    if threads <= 1 || d.rows < 2 || work < MIN_PARALLEL_WORK {
        f(w, d, out);
        if let Some(tm) = tm {
            // SAFETY: the only chunk: all rows of a y checked to hold rows * n_tok values.
            unsafe { tm.scatter(0, out) };
        }
        return;
    }
    // A few chunks per thread for balance, in multiples of 4 rows so SIMD row tiles stay whole.
    let target = threads * 4;
    let chunk_rows = (d.rows.div_ceil(target)).next_multiple_of(4).max(4);
    out.par_chunks_mut(chunk_rows * d.n_tok)
        .zip(w.par_chunks(chunk_rows * per_row))
        .enumerate()
        .for_each(|(i, (o, wc))| {
            let rows = o.len() / d.n_tok;
            f(wc, MatDims { rows, ..d }, o);
            if let Some(tm) = tm {
                // SAFETY: chunk i owns rows i*chunk_rows.. exclusively; y holds rows * n_tok.
                unsafe { tm.scatter(i * chunk_rows, o) };
            }
        });
}
