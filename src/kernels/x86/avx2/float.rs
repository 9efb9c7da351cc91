//! F32 / F16 dots and matrix products in `ggml_vec_dot` and tinyBLAS order (FORWARD.md §8).

use super::*;

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
pub(super) trait FloatW: Copy {
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
pub(super) unsafe fn tinyblas_rows<const R: usize, W: FloatW>(w: [&[W]; R], x: &[f32]) -> [f32; R] {
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

pub(super) fn dot_f32_ggml(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: reads stay below min(len); table used only after `detected()`.
    unsafe { dot_f32_ggml_impl(a, b) }
}

pub(in crate::kernels::x86) fn dot_f16_ggml(a: &[f16], b: &[f16]) -> f32 {
    // SAFETY: as above.
    unsafe { dot_f16_ggml_impl(a, b) }
}

pub(super) fn dot_f32_tinyblas(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both slices cut to n; table used only after `detected()`.
    unsafe {
        let [s] = tinyblas_rows::<1, f32>([&a[..n]], &b[..n]);
        s
    }
}

pub(super) fn dot_f16_f32_tinyblas(a: &[f16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    // SAFETY: both slices cut to n; table used only after `detected()`.
    unsafe {
        let [s] = tinyblas_rows::<1, f16>([&a[..n]], &b[..n]);
        s
    }
}

pub(in crate::kernels::x86) fn check_float<W, X>(w: &[W], x: &[X], d: MatDims, out: &[f32]) {
    check("weights", w.len(), d.rows * d.k);
    check("x", x.len(), d.n_tok * d.k);
    check("out", out.len(), d.rows * d.n_tok);
}

pub(super) fn f32_ggml_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
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
pub(in crate::kernels::x86) const PREFETCH_F16_PAIR: usize = 32768;

/// `ggml_vec_dot_f16` order for `R` weight rows against one activation row already widened to
/// f32 (f16 -> f32 is exact, so the products and sums are those of [`dot_f16_ggml_impl`]); each
/// row streams with its own prefetch. Inlined into a `#[target_feature]` wrapper per variant.
#[inline(always)]
pub(in crate::kernels::x86) unsafe fn f16_rows<const R: usize, const PF: usize>(
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

/// [`f16_rows`] for two rows, each prefetched `PF` bytes ahead: with 8 accumulators and the
/// activations it fits AVX2's 16 ymm registers.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_two_rows<const PF: usize>(w: [&[f16]; 2], x: &[f32]) -> [f32; 2] {
    f16_rows::<2, PF>(w, x)
}

/// A kernel of `R` F16 rows (`ggml_vec_dot_f16` order each) against one activation row widened
/// to f32: [`f16_two_rows`] and the AVX-512 ones.
///
/// # Safety
/// Every row holds at least `x.len()` values; the kernel's CPU features are available.
pub(in crate::kernels::x86) type F16Rows<const R: usize> =
    unsafe fn([&[f16]; R], &[f32]) -> [f32; R];

/// Longest activation row the F16 matvec widens on the stack (32 KiB); longer rows take the
/// plain per-row dot.
pub(in crate::kernels::x86) const F16_WIDE_MAX: usize = 8192;

/// `x` (at most [`F16_WIDE_MAX`] values) widened exactly to f32 in the front of `buf`. The rest
/// of the buffer is left untouched: zero-filling it was a 32 KiB memset per attention call.
pub(in crate::kernels::x86) fn widen_f16<'b>(
    x: &[f16],
    buf: &'b mut [MaybeUninit<f32>; F16_WIDE_MAX],
) -> &'b [f32] {
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

/// The F16 product in `ggml_vec_dot_f16` order with `R` rows per pass through `rows`: each
/// token's activations are widened once (exact), rows go `R` at a time and the last few one at
/// a time; rows longer than [`F16_WIDE_MAX`] take the plain per-row dot. Every row gets the
/// same bits whichever way it is computed.
///
/// # Safety
/// `rows` must be callable: its CPU features are available (the tables holding the candidates
/// built on this are reachable only after their `detected()`).
pub(in crate::kernels::x86) unsafe fn f16_matmul_by<const R: usize>(
    w: &[f16],
    x: &[f16],
    d: MatDims,
    out: &mut [f32],
    rows: F16Rows<R>,
) {
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
        while r + R <= d.rows {
            let group: [&[f16]; R] = core::array::from_fn(|i| row(r + i));
            // SAFETY: every row and xt have exactly k elements; the caller vouches for `rows`.
            let s = unsafe { rows(group, xt) };
            for (i, v) in s.into_iter().enumerate() {
                out[(r + i) * n + t] = v;
            }
            r += R;
        }
        for r in r..d.rows {
            out[r * n + t] = dot_f16_ggml(row(r), &x[t * k..(t + 1) * k]);
        }
    }
}

/// The F16 candidates `avx2-ymm-2row-pf{PF}`: two rows per pass, each prefetched `PF` bytes
/// ahead.
pub(in crate::kernels::x86) fn f16_ggml_two_rows<const PF: usize>(
    w: &[f16],
    x: &[f16],
    d: MatDims,
    out: &mut [f32],
) {
    // SAFETY: this table's kernels are reachable only after `detected()`, which checked the
    // features `f16_two_rows` enables.
    unsafe { f16_matmul_by::<2>(w, x, d, out, f16_two_rows::<PF>) }
}

/// The AVX2 table's F16 product: [`f16_ggml_two_rows`] 32 KiB ahead.
pub(in crate::kernels::x86) fn f16_ggml_matmul(w: &[f16], x: &[f16], d: MatDims, out: &mut [f32]) {
    f16_ggml_two_rows::<PREFETCH_F16_PAIR>(w, x, d, out)
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

pub(super) fn f32_tinyblas_matmul(w: &[f32], x: &[f32], d: MatDims, out: &mut [f32]) {
    tinyblas_matmul(w, x, d, out)
}

pub(super) fn f16_tinyblas_matmul(w: &[f16], x: &[f32], d: MatDims, out: &mut [f32]) {
    tinyblas_matmul(w, x, d, out)
}
