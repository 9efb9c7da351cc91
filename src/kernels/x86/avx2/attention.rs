//! The strided f16 rows of attention: Q·K over a head's cached keys, P·V over its V rows, and
//! the grouped single-token rows shared with the AVX-512 table.

use super::*;

/// Attention's Q·K (rows = cached keys of one head) and single-token P·V (rows = V cache rows):
/// x widened once, rows in pairs through [`f16_two_rows`].
pub(super) fn f16_ggml_strided(w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
    let n = x.len();
    if n > F16_WIDE_MAX {
        return crate::kernels::strided_rows(w, stride, x, out, dot_f16_ggml);
    }
    crate::kernels::check_strided(w.len(), stride, n, out.len());
    let mut wide = [const { MaybeUninit::uninit() }; F16_WIDE_MAX];
    let xw = widen_f16(x, &mut wide);
    let row = |j: usize| &w[j * stride..j * stride + n];
    let rows = out.len();
    let mut j = 0;
    while j + 2 <= rows {
        // SAFETY: both rows and xw have n elements (checked above); `detected()` holds.
        let [a, b] = unsafe { f16_two_rows::<PREFETCH_F16_PAIR>([row(j), row(j + 1)], xw) };
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
pub(in crate::kernels::x86) unsafe fn group_finish<const T: usize>(
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

/// How far ahead (in bytes of row data) the grouped rows prefetch by default: the row that far
/// ahead is fetched line by line while the current one is computed. The cached rows are short (a key:
/// 256 B at a 1280 B stride) or page-sized (a V row of 2048 cells: 4 KiB), and the hardware
/// prefetcher stops at every 4 KiB page, so without this the kernel waited on memory: tg32 at
/// depth 2048 on the 2B-4T model (Xeon, AVX-512 kernel) went from 7.8 / 13.1 to 9.0 / 15.7 t/s
/// at 1 / 2 threads. Measured distances: 1 KiB 8.8 / 15.3, 2 KiB 9.0 / 15.7, 4 KiB 9.0 / 15.5,
/// 8 KiB 8.8 / 15.0.
pub(in crate::kernels::x86) const GROUP_PREFETCH_BYTES: usize = 2048;

/// The rows-ahead distance of `bytes` (e.g. [`GROUP_PREFETCH_BYTES`]) for rows of `n` values
/// (at least one row).
#[inline(always)]
pub(in crate::kernels::x86) fn group_prefetch_rows(n: usize, bytes: usize) -> usize {
    bytes.div_ceil(2 * n.max(1)).max(1)
}

/// One grouped kernel call over `rows` strided rows: `out[j*g + t] = row_j · x[t]` for the
/// `x.len()` (1 to 4) rows of `x` (`out` already offset to the first of them).
///
/// # Safety
/// Every row (`w + j*stride`, `n` values) and every x row readable, `out` writable at
/// `j*g + t` for all `j < rows`, `t < x.len()`; the kernel's CPU features available.
pub(in crate::kernels::x86) type GroupRows =
    unsafe fn(*const f16, usize, usize, usize, &[*const f32], *mut f32, usize);

/// Defines a [`GroupRows`] kernel `$name` with `$features`, prefetching `$pf` bytes of rows
/// ahead: the row loop around `$row::<T>` for T = the number of x rows, so each instantiation
/// inlines into this `#[target_feature]` function (a closure or generic callback would be
/// compiled without those features).
macro_rules! group_rows_kernel {
    ($name:ident, $row:ident, $features:literal, $pf:expr) => {
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
            let ahead = $crate::kernels::x86::avx2::group_prefetch_rows(n, $pf) * stride;
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
pub(in crate::kernels::x86) use group_rows_kernel;

/// Checks a grouped call and runs `kernel` over all rows, four x rows per call. Shared by the
/// AVX2 and AVX-512 tables.
pub(in crate::kernels::x86) fn strided_group_by4(
    w: &[f16],
    stride: usize,
    x: &[f32],
    g: usize,
    out: &mut [f32],
    kernel: GroupRows,
) {
    let n = crate::kernels::check_strided_group(w.len(), stride, x.len(), g, out.len());
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

group_rows_kernel!(
    f16_group_avx2,
    f16_row_group,
    "avx2,fma,f16c",
    GROUP_PREFETCH_BYTES
);

/// Single-token attention with the query heads of one KV head together: Q·K (rows = cached
/// keys, x = the group's queries) and P·V (rows = V rows, x = the group's probabilities).
pub(super) fn f16_ggml_strided_group(
    w: &[f16],
    stride: usize,
    x: &[f32],
    g: usize,
    out: &mut [f32],
) {
    strided_group_by4(w, stride, x, g, out, f16_group_avx2)
}

/// Multi-token P·V: four V rows per pass over the probabilities (tinyBLAS order per row).
pub(super) fn f16_tinyblas_strided(w: &[f16], stride: usize, x: &[f32], out: &mut [f32]) {
    let n = x.len();
    crate::kernels::check_strided(w.len(), stride, n, out.len());
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
