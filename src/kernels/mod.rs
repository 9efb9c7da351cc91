//! The hot loop: matrix x activations for every weight type, behind one table of function
//! pointers chosen once at run time.
//!
//! - [`matmul`] is what the model calls; it validates shapes, quantizes the activations the way
//!   the reference does for the weight type (`spec/I2_S.md` §4, §6a; `spec/FORWARD.md` §5, §8),
//!   then splits the *output rows* across the current rayon pool. Every output element is computed
//!   by one kernel call in one fixed order, so results are the same bits for any thread count.
//!   What differs per weight type (activation format, its preparation into [`Scratch`], the table
//!   entry, the row granularity) is one descriptor each in `weight_types.rs`; the driver in
//!   `matmul.rs` is generic over it.
//! - [`KernelTable`] holds one variant's kernels. `scalar` (the truth, `scalar.rs`) always exists;
//!   faster variants must reproduce it bit for bit and are tested against it. A new variant (AVX-VNNI,
//!   NEON, ...) is one more module filling a `KernelTable` plus one arm in [`table`].
//! - The table is a value: each `Context` holds one (`ContextParams::kernel`, default
//!   [`active`]: picked once by CPU detection, overridable with the environment variable
//!   `BITNET_KERNEL=scalar|c|avx2|avx512vnni|neon|dotprod|i8mm`) and passes it to matmul and attention, so two
//!   contexts in one process can run two variants.
//!
//! Variants: `scalar` (plain Rust), `c` (portable C99 from `src/kernels/c`, built by `build.rs`,
//! always available: the fallback on CPUs without a SIMD variant), `avx2` (x86-64 with AVX2, FMA
//! and F16C, detected at run time; no `-C target-cpu` needed), `avx512vnni` (AVX-512 F/BW/VNNI
//! for the I2_S product, the AVX2 kernels for the rest). To add one (AVX-VNNI, NEON): a `Kind`
//! variant, a module filling a `KernelTable`, an arm in [`table`] that checks the CPU. The variant tests iterate over [`available`], so it is compared with scalar on every shape
//! automatically (only on a machine that has the instructions: do not ship untested variants).

#[cfg(target_arch = "aarch64")]
mod aarch64;
mod act;
mod c;
pub mod candidates;
mod matmul;
mod scalar;
pub mod tune;
mod weight_types;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use crate::tensor::blocks::BlockQ8K;
pub use act::{nearest_int, quantize_row_i8, quantize_row_q8_0, quantize_row_q8k};
pub use candidates::{Candidate, Entry};
pub use matmul::{matmul, matmul_per_token, matmul_with, Scratch, MIN_PARALLEL_WORK};

use crate::error::{Error, Result};
use crate::gguf::TensorView;
use crate::tensor::blocks::{cast_slice, BlockQ6K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0};
use crate::tensor::GgmlType;
use half::f16;
use std::sync::OnceLock;

/// A weight matrix as stored in the file, `rows` outputs (ne1) of `cols` inputs (ne0) each,
/// bound once: [`Weights::new`] checks the type, the byte length and the alignment of its typed
/// view and reads the I2_S per-tensor scale, so [`matmul`] only checks the activations.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    pub ty: GgmlType,
    /// The rows' bytes (for I2_S: the packed codes, without the tail that held the scale).
    pub data: &'a [u8],
    /// M = ne1: number of outputs.
    pub rows: usize,
    /// K = ne0: number of inputs (the contiguous dimension).
    pub cols: usize,
    /// The I2_S per-tensor scale (0 for other types).
    scale: f32,
}

impl<'a> Weights<'a> {
    /// Binds `rows` rows of `cols` values of type `ty` in `data` (the whole tensor: for I2_S
    /// the codes followed by the f32 scale, I2_S.md §2). Errors name what is wrong: a type no
    /// kernel takes (BF16, Q8_K), columns that are not whole blocks, too few bytes, data not
    /// aligned for its block type.
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Result<Weights<'a>> {
        let what = || format!("weights ({ty} {cols}x{rows})");
        if matches!(ty, GgmlType::BF16 | GgmlType::Q8_K) {
            return Err(Error::unsupported(format!(
                "{}: {ty} weights are not supported by matmul",
                what()
            )));
        }
        if cols == 0 {
            return Err(Error::invalid_argument(format!(
                "{}: weights have no columns",
                what()
            )));
        }
        let row_bytes = ty.row_bytes(cols).ok_or_else(|| {
            Error::invalid_argument(format!(
                "{}: {cols} columns are not whole {ty} blocks of {}",
                what(),
                ty.block_size()
            ))
        })?;
        let code_bytes = rows
            .checked_mul(row_bytes)
            .ok_or_else(|| Error::invalid_argument(format!("{}: size overflows", what())))?;
        // I2_S keeps its f32 scale right after the codes (I2_S.md §2).
        let need = code_bytes + if ty == GgmlType::I2_S { 4 } else { 0 };
        if data.len() < need {
            return Err(Error::format(format!(
                "{}: data has {} bytes, needs {need}",
                what(),
                data.len()
            )));
        }
        let scale = if ty == GgmlType::I2_S {
            let b = &data[code_bytes..code_bytes + 4];
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            0.0
        };
        let w = Weights {
            ty,
            data: &data[..code_bytes],
            rows,
            cols,
            scale,
        };
        let aligned = match ty {
            GgmlType::F32 => cast_slice::<f32>(w.data).is_some(),
            GgmlType::F16 => cast_slice::<f16>(w.data).is_some(),
            GgmlType::TQ2_0 => cast_slice::<BlockTQ2_0>(w.data).is_some(),
            GgmlType::TQ1_0 => cast_slice::<BlockTQ1_0>(w.data).is_some(),
            GgmlType::Q6_K => cast_slice::<BlockQ6K>(w.data).is_some(),
            GgmlType::Q8_0 => cast_slice::<BlockQ8_0>(w.data).is_some(),
            _ => true,
        };
        if !aligned {
            return Err(Error::format(format!(
                "{}: data at {:p} is not aligned for {ty} blocks",
                what(),
                w.data.as_ptr()
            )));
        }
        Ok(w)
    }

    /// The weights of a 2-D GGUF tensor (`[ne0 = cols, ne1 = rows]`).
    pub fn from_view(t: &TensorView<'a>) -> Result<Weights<'a>> {
        if t.dims.len() != 2 && !(t.dims.len() > 2 && t.dims[2..].iter().all(|&d| d == 1)) {
            return Err(Error::format(format!(
                "tensor {}: a weight matrix must be 2-D, has dims {:?}",
                t.name, t.dims
            )));
        }
        Weights::new(t.ty, t.data, t.dims[1], t.dims[0])
            .map_err(|e| e.context(format!("tensor {}", t.name)))
    }

    /// Weights checked by [`Weights::new`] earlier (the model binds its tensors at load):
    /// `data` is the rows' bytes, `scale` the I2_S scale read then.
    pub(crate) fn bound(
        ty: GgmlType,
        data: &'a [u8],
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Weights<'a> {
        Weights {
            ty,
            data,
            rows,
            cols,
            scale,
        }
    }

    /// The I2_S per-tensor scale read at binding (0 for other types).
    pub fn scale(&self) -> f32 {
        self.scale
    }
}

/// Which kernel set a [`KernelTable`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Plain Rust straight from the spec: the reference for tests.
    Scalar,
    /// Portable C99 compiled by `cc` (no intrinsics): the fallback on CPUs without a SIMD variant.
    C,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512 F/BW/VNNI for I2_S (`vpdpbusd`), the AVX2 kernels for everything else.
    Avx512Vnni,
    /// aarch64 Advanced SIMD (every aarch64 CPU).
    Neon,
    /// aarch64 Advanced SIMD with `SDOT` (ARMv8.2-A dotprod) for the integer products.
    NeonDotprod,
    /// `NeonDotprod` with the multi-token I2_S product on `SMMLA` (i8mm).
    NeonI8mm,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Scalar,
        Kind::C,
        Kind::Avx2,
        Kind::Avx512Vnni,
        Kind::Neon,
        Kind::NeonDotprod,
        Kind::NeonI8mm,
    ];

    /// Whether a CPU that runs this variant can also run `other` (its features are a superset):
    /// AVX-512 VNNI implies AVX2, i8mm implies dotprod implies NEON, every CPU runs `scalar`
    /// and `c`.
    pub fn includes(self, other: Kind) -> bool {
        self == other
            || matches!(other, Kind::Scalar | Kind::C)
            || matches!(
                (self, other),
                (Kind::Avx512Vnni, Kind::Avx2)
                    | (Kind::NeonI8mm, Kind::NeonDotprod | Kind::Neon)
                    | (Kind::NeonDotprod, Kind::Neon)
            )
    }

    /// The name used by `BITNET_KERNEL` and `system_info`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Scalar => "scalar",
            Kind::C => "c",
            Kind::Avx2 => "avx2",
            Kind::Avx512Vnni => "avx512vnni",
            Kind::Neon => "neon",
            Kind::NeonDotprod => "dotprod",
            Kind::NeonI8mm => "i8mm",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Shape of one kernel call: `rows` weight rows of `k` inputs against `n_tok` activation rows.
/// Kernels write `out[r * n_tok + t]` (row-major by weight row, so row chunks are contiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatDims {
    pub k: usize,
    pub rows: usize,
    pub n_tok: usize,
}

/// int8-quantized activation rows for I2_S (I2_S.md §4): `q` is `n_tok * k` values, one act
/// scale and one sum of q per token.
#[derive(Debug, Clone, Copy)]
pub struct I8Rows<'a> {
    pub q: &'a [i8],
    pub scale: &'a [f32],
    pub sum: &'a [i32],
}

/// One kernel variant. Matrix entries take `d.rows` weight rows (exactly `d.rows * row length`
/// elements/blocks/bytes) and `d.n_tok` prepared activation rows and fill `out[..d.rows*d.n_tok]`.
/// Callers ([`matmul`]) guarantee those lengths; kernels may index-panic on violations but never
/// read out of bounds.
#[derive(Clone, Copy)]
pub struct KernelTable {
    pub kind: Kind,
    /// I2_S packed codes (`k/4` bytes a row) x int8 rows; the f32 is the per-tensor weight scale.
    /// Used for two or more tokens (prompt processing: compute-bound).
    pub i2s: fn(&[u8], f32, &I8Rows, MatDims, &mut [f32]),
    /// The same product for one token (decode: bound by memory bandwidth). A separate entry
    /// because the fastest way to stream weights differs between CPUs that share an ISA, so
    /// calibration ([`tune`]) may take it from another variant than `i2s`.
    pub i2s_vec: fn(&[u8], f32, &I8Rows, MatDims, &mut [f32]),
    pub tq2_0: fn(&[BlockTQ2_0], &[BlockQ8K], MatDims, &mut [f32]),
    pub tq1_0: fn(&[BlockTQ1_0], &[BlockQ8K], MatDims, &mut [f32]),
    pub q6_k: fn(&[BlockQ6K], &[BlockQ8K], MatDims, &mut [f32]),
    pub q8_0: fn(&[BlockQ8_0], &[BlockQ8_0], MatDims, &mut [f32]),
    /// F16 weights x f16 activations in `ggml_vec_dot_f16` order.
    pub f16_ggml: fn(&[f16], &[f16], MatDims, &mut [f32]),
    /// F16 weights x f32 activations in tinyBLAS order.
    pub f16_tinyblas: fn(&[f16], &[f32], MatDims, &mut [f32]),
    pub f32_ggml: fn(&[f32], &[f32], MatDims, &mut [f32]),
    pub f32_tinyblas: fn(&[f32], &[f32], MatDims, &mut [f32]),
    pub dot_f32_ggml: fn(&[f32], &[f32]) -> f32,
    pub dot_f16_ggml: fn(&[f16], &[f16]) -> f32,
    pub dot_f32_tinyblas: fn(&[f32], &[f32]) -> f32,
    pub dot_f16_f32_tinyblas: fn(&[f16], &[f32]) -> f32,
    /// `out[j] = dot_f16_ggml(w[j*stride ..][..x.len()], x)` for `j in 0..out.len()`: the rows of
    /// one head in the K cache (stride = K row) or the V cache (stride = cells).
    pub f16_ggml_strided: fn(&[f16], usize, &[f16], &mut [f32]),
    /// `out[j] = dot_f16_f32_tinyblas(w[j*stride ..][..x.len()], x)` for `j in 0..out.len()`.
    pub f16_tinyblas_strided: fn(&[f16], usize, &[f32], &mut [f32]),
    /// `out[j*g + t] = dot_f16_ggml(w[j*stride ..][..n], x[t*n ..][..n])` for the `g` rows of `x`
    /// (`n = x.len() / g`), whose values are f16 values already widened to f32 (exact). One
    /// pass over each `w` row serves all `g` rows of `x`: the query heads that share a KV head
    /// in single-token attention (rows = cached keys, then V rows).
    pub f16_ggml_strided_group: fn(&[f16], usize, &[f32], usize, &mut [f32]),
    pub quantize_i8: fn(&[f32], &mut [i8]) -> (f32, i32),
    pub quantize_q8k: fn(&[f32], &mut [BlockQ8K]),
}

impl KernelTable {
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// The table of a given variant, or `None` when it is not built for this target or this CPU lacks
/// the instructions it needs.
pub fn table(kind: Kind) -> Option<&'static KernelTable> {
    match kind {
        Kind::Scalar => Some(&scalar::TABLE),
        Kind::C => Some(&c::TABLE),
        #[cfg(target_arch = "x86_64")]
        Kind::Avx2 => {
            static OK: OnceLock<bool> = OnceLock::new();
            OK.get_or_init(x86::avx2::detected)
                .then_some(&x86::avx2::TABLE)
        }
        #[cfg(target_arch = "x86_64")]
        Kind::Avx512Vnni => {
            static OK: OnceLock<bool> = OnceLock::new();
            OK.get_or_init(x86::avx512::detected)
                .then_some(&x86::avx512::TABLE)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Kind::Avx2 | Kind::Avx512Vnni => None,
        #[cfg(target_arch = "aarch64")]
        Kind::Neon => Some(&aarch64::NEON),
        #[cfg(target_arch = "aarch64")]
        Kind::NeonDotprod => {
            static OK: OnceLock<bool> = OnceLock::new();
            OK.get_or_init(aarch64::dotprod_detected)
                .then_some(&aarch64::DOTPROD)
        }
        #[cfg(target_arch = "aarch64")]
        Kind::NeonI8mm => {
            static OK: OnceLock<bool> = OnceLock::new();
            OK.get_or_init(aarch64::i8mm_detected)
                .then_some(&aarch64::I8MM)
        }
        #[cfg(not(target_arch = "aarch64"))]
        Kind::Neon | Kind::NeonDotprod | Kind::NeonI8mm => None,
    }
}

/// Every variant usable on this machine, fastest last (tests iterate over these).
pub fn available() -> Vec<&'static KernelTable> {
    Kind::ALL.into_iter().filter_map(table).collect()
}

/// The default table, which a context uses unless its `ContextParams::kernel` names another,
/// chosen once per process:
/// - `BITNET_KERNEL=<variant>` (if usable here): that variant's table, each contested entry
///   taken from the fastest of the candidates a CPU with just that variant's features has
///   ([`candidates::all_for`]: `avx2` chooses among the AVX2 candidates, as an AVX2-only CPU
///   does; cached in a file of its own);
/// - otherwise (or `BITNET_KERNEL=auto`): the best variant by CPU features, with each entry
///   that has several candidates (the I2_S matvec and product, the F16 / Q8_0 / Q6_K heads,
///   single-token attention: [`candidates`]) taken from the candidate measured fastest on this
///   machine ([`tune::calibrate`]: once per machine, cached in a file; `BITNET_CALIBRATE=0`
///   skips the measurement);
/// - either way, `BITNET_KERNEL_<ENTRY>=<candidate>` (`BITNET_KERNEL_I2S_VEC=avx2-ymm-1row-pf3k`,
///   see [`Entry::env_var`]) forces that entry's candidate.
pub fn active() -> &'static KernelTable {
    active_choice().0
}

/// [`active`] and how it was chosen.
fn active_choice() -> &'static (&'static KernelTable, String) {
    static ACTIVE: OnceLock<(&'static KernelTable, String)> = OnceLock::new();
    ACTIVE.get_or_init(|| {
        let by_features = [
            Kind::Avx512Vnni,
            Kind::Avx2,
            Kind::NeonI8mm,
            Kind::NeonDotprod,
            Kind::Neon,
            Kind::C,
            Kind::Scalar,
        ];
        let best = by_features
            .into_iter()
            .find_map(table)
            .unwrap_or(&scalar::TABLE);
        let forced = candidates::forced_by_env();
        let (t, how) = match std::env::var("BITNET_KERNEL") {
            Ok(name) if !name.is_empty() && name != "auto" => {
                match Kind::from_name(&name).and_then(table) {
                    Some(t) => tune::tuned_for(t, &forced),
                    None => {
                        let chosen = tune::tuned(best, &forced);
                        crate::log::log_warn!(
                            "bitnet: BITNET_KERNEL={name} is not available here (choose from: auto, {}); using {}",
                            available().iter().map(|t| t.name()).collect::<Vec<_>>().join(", "),
                            chosen.1
                        );
                        chosen
                    }
                }
            }
            _ => tune::tuned(best, &forced),
        };
        let (t, how) = candidates::apply_forced(t, how, &forced);
        // One table per process: leaked, so every context shares a `&'static` to it.
        let t: &'static KernelTable = Box::leak(Box::new(t));
        (t, how)
    })
}

/// The default kernel set's name ("avx512vnni", "avx2", "i8mm", "dotprod", "neon", "c", "scalar"), for
/// `system_info`; a calibrated table is named by its base variant (see [`active_description`]).
pub fn active_name() -> &'static str {
    active().name()
}

/// What the default table is and how it was chosen, e.g. "tuned: i2s_vec=avx2-ymm-1row-pf3k
/// i2s=avx512-zmm-4row-4tok f16_ggml=avx512-zmm-4row-pf32k ... (cached in
/// ~/.cache/bitnet/kernels-v2.txt)", for `bitnet bench` and `system_info`.
pub fn active_description() -> &'static str {
    &active_choice().1
}

impl KernelTable {
    /// [`matmul`] with this table: `y = W·x` for `n_tokens` rows of `x`.
    pub fn matmul(
        &self,
        w: &Weights,
        x: &[f32],
        n_tokens: usize,
        y: &mut [f32],
        scratch: &mut Scratch,
    ) -> Result<()> {
        matmul_with(self, w, x, n_tokens, y, scratch)
    }

    /// [`KernelTable::f16_ggml_strided`]: `out[j]` = `ggml_vec_dot_f16` of row `j` of a
    /// strided f16 matrix (`w[j*stride..j*stride + x.len()]`) with `x`.
    pub fn dot_f16_ggml_strided(&self, w: &[f16], stride: usize, x: &[f16], out: &mut [f32]) {
        (self.f16_ggml_strided)(w, stride, x, out)
    }

    /// [`KernelTable::f16_tinyblas_strided`] (tinyBLAS order, f32 `x`).
    pub fn dot_f16_f32_tinyblas_strided(
        &self,
        w: &[f16],
        stride: usize,
        x: &[f32],
        out: &mut [f32],
    ) {
        (self.f16_tinyblas_strided)(w, stride, x, out)
    }

    /// [`KernelTable::f16_ggml_strided_group`]: `out[j*g + t]` = `ggml_vec_dot_f16` of row `j`
    /// of a strided f16 matrix with row `t` of `x` (`g` rows of f16-representable f32 values),
    /// each weight row read once for all `g`.
    pub fn dot_f16_ggml_strided_group(
        &self,
        w: &[f16],
        stride: usize,
        x: &[f32],
        g: usize,
        out: &mut [f32],
    ) {
        (self.f16_ggml_strided_group)(w, stride, x, g, out)
    }
}

/// The guard in front of every SIMD I2_S kernel (`isa` names it in the message): panics
/// unless `k` is whole 128-element blocks and the codes, activations, their scales and the
/// outputs of `d` are all present.
#[allow(dead_code)] // used by whichever SIMD modules this target builds
pub(crate) fn check_i2s(isa: &str, codes: &[u8], act: &I8Rows, d: MatDims, out: &[f32]) {
    assert!(
        d.k.is_multiple_of(128),
        "{isa} i2s: k = {} is not whole blocks",
        d.k
    );
    let need = |what: &str, len: usize, need: usize| {
        assert!(len >= need, "{isa} kernel: {what} has {len}, needs {need}")
    };
    need("i2s codes", codes.len(), d.rows * d.k / 4);
    need("i2s activations", act.q.len(), d.n_tok * d.k);
    need(
        "i2s act scales",
        act.scale.len().min(act.sum.len()),
        d.n_tok,
    );
    need("i2s out", out.len(), d.rows * d.n_tok);
}

/// Checks a strided-group call and returns the row length `n`: `x` is `g` whole rows and
/// `out` holds `g` outputs for each of its `out.len() / g` strided rows of `w`.
fn check_strided_group(
    w_len: usize,
    stride: usize,
    x_len: usize,
    g: usize,
    out_len: usize,
) -> usize {
    assert!(
        g > 0 && x_len.is_multiple_of(g) && out_len.is_multiple_of(g),
        "strided group: {x_len} x values and {out_len} outputs are not {g} whole rows"
    );
    let n = x_len / g;
    check_strided(w_len, stride, n, out_len / g);
    n
}

/// The portable [`KernelTable::f16_ggml_strided_group`]: one `dot` per (row, x row).
fn strided_group(
    w: &[f16],
    stride: usize,
    x: &[f32],
    g: usize,
    out: &mut [f32],
    dot: fn(&[f16], &[f32]) -> f32,
) {
    let n = check_strided_group(w.len(), stride, x.len(), g, out.len());
    for (j, o) in out.chunks_exact_mut(g).enumerate() {
        let row = &w[j * stride..j * stride + n];
        for (t, ot) in o.iter_mut().enumerate() {
            *ot = dot(row, &x[t * n..(t + 1) * n]);
        }
    }
}

/// Checks a strided-rows call: `out.len()` rows of `n` values `stride` apart fit in `w_len`.
fn check_strided(w_len: usize, stride: usize, n: usize, rows: usize) {
    if rows > 0 {
        let need = (rows - 1)
            .checked_mul(stride)
            .and_then(|v| v.checked_add(n))
            .expect("strided rows: size overflows");
        assert!(
            w_len >= need,
            "strided rows: {rows} rows of {n} at stride {stride} need {need} values, have {w_len}"
        );
    }
}

/// The strided entries of the scalar and C tables: one dot per row.
fn strided_rows<X>(
    w: &[f16],
    stride: usize,
    x: &[X],
    out: &mut [f32],
    dot: fn(&[f16], &[X]) -> f32,
) {
    let n = x.len();
    check_strided(w.len(), stride, n, out.len());
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot(&w[j * stride..j * stride + n], x);
    }
}

#[cfg(test)]
mod tests;
