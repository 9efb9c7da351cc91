//! Model quantization: a GGUF in, a GGUF out with its weight matrices in another type
//! (`llama_model_quantize`, docs/quantize.md). The choice of type per tensor follows llama.cpp
//! 0c1e57098's `llama-quant.cpp` (which tensors may change, the tied-embedding rule, the
//! fallbacks for rows that are not whole blocks), with the fork's rule for its own I2_S file
//! type; the conversions are this library's quantizers (`tensor::quantize_*`) and
//! dequantizers. Only the types the kernels run can be written; anything else is refused
//! before a byte is written.

use super::layout;
use super::Config;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufWriter, Value};
use crate::log::{log, log_warn, Level};
use crate::tensor::blocks::{as_bytes, Pod};
use crate::tensor::i2s_layout::{I2sLayout, BLOCK_SIZE_KEY};
use crate::tensor::{self, GgmlType};
use rayon::prelude::*;
use std::path::Path;

/// `llama_ftype` values this library writes (`general.file_type`).
pub mod ftype {
    pub const ALL_F32: u32 = 0;
    pub const MOSTLY_F16: u32 = 1;
    pub const MOSTLY_Q8_0: u32 = 7;
    pub const MOSTLY_Q6_K: u32 = 18;
    pub const MOSTLY_BF16: u32 = 32;
    pub const MOSTLY_TQ1_0: u32 = 36;
    pub const MOSTLY_TQ2_0: u32 = 37;
    /// The BitNet fork's `LLAMA_FTYPE_MOSTLY_I2_S` (mainline llama.cpp numbers another type 40).
    pub const MOSTLY_I2_S: u32 = 40;
}

/// llama.h's name of a file type, for messages.
fn ftype_label(f: u32) -> &'static str {
    match f {
        0 => "ALL_F32",
        1 => "MOSTLY_F16",
        2 => "MOSTLY_Q4_0",
        3 => "MOSTLY_Q4_1",
        7 => "MOSTLY_Q8_0",
        8 => "MOSTLY_Q5_0",
        9 => "MOSTLY_Q5_1",
        10 => "MOSTLY_Q2_K",
        11 => "MOSTLY_Q3_K_S",
        12 => "MOSTLY_Q3_K_M",
        13 => "MOSTLY_Q3_K_L",
        14 => "MOSTLY_Q4_K_S",
        15 => "MOSTLY_Q4_K_M",
        16 => "MOSTLY_Q5_K_S",
        17 => "MOSTLY_Q5_K_M",
        18 => "MOSTLY_Q6_K",
        19..=31 => "an i-quant or k-quant mixture",
        32 => "MOSTLY_BF16",
        36 => "MOSTLY_TQ1_0",
        37 => "MOSTLY_TQ2_0",
        38 => "MOSTLY_MXFP4_MOE",
        39 => "MOSTLY_NVFP4",
        40 => "MOSTLY_I2_S",
        _ => "unknown",
    }
}

/// The tensor type a file type converts weight matrices to (`llama_ftype_get_default_type`),
/// or an error naming the file type when this library cannot write it.
pub fn ftype_default_type(f: u32) -> Result<GgmlType> {
    Ok(match f {
        ftype::ALL_F32 => GgmlType::F32,
        ftype::MOSTLY_F16 => GgmlType::F16,
        ftype::MOSTLY_Q8_0 => GgmlType::Q8_0,
        ftype::MOSTLY_Q6_K => GgmlType::Q6_K,
        ftype::MOSTLY_TQ1_0 => GgmlType::TQ1_0,
        ftype::MOSTLY_TQ2_0 => GgmlType::TQ2_0,
        ftype::MOSTLY_I2_S => GgmlType::I2_S,
        ftype::MOSTLY_BF16 => {
            return Err(Error::unsupported(
                "file type 32 (MOSTLY_BF16): bitnet has no BF16 matrix kernels, so it would write \
                 a model it cannot run; choose ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q6_K, \
                 MOSTLY_TQ1_0, MOSTLY_TQ2_0 or MOSTLY_I2_S",
            ))
        }
        other => {
            return Err(Error::unsupported(format!(
                "file type {other} ({}) is not supported: bitnet quantizes to ALL_F32 (0), \
                 MOSTLY_F16 (1), MOSTLY_Q8_0 (7), MOSTLY_Q6_K (18), MOSTLY_TQ1_0 (36), \
                 MOSTLY_TQ2_0 (37) and MOSTLY_I2_S (40)",
                ftype_label(other)
            )))
        }
    })
}

/// Types a tensor may be written in: the ones the loader and kernels take.
fn check_writable(ty: GgmlType, what: &str) -> Result<GgmlType> {
    match ty {
        GgmlType::F32
        | GgmlType::F16
        | GgmlType::Q8_0
        | GgmlType::Q6_K
        | GgmlType::TQ1_0
        | GgmlType::TQ2_0
        | GgmlType::I2_S => Ok(ty),
        other => Err(Error::unsupported(format!(
            "{what}: bitnet cannot write {other} tensors (it writes F32, F16, Q8_0, Q6_K, TQ1_0, \
             TQ2_0 and I2_S)"
        ))),
    }
}

/// What [`quantize_model`] does (`llama_model_quantize_params`, llama.cpp's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeParams {
    /// Worker threads; 0 = all the machine has.
    pub nthread: usize,
    /// The `llama_ftype` to write ([`ftype`]).
    pub ftype: u32,
    /// Type of `output.weight` (and of a tied `token_embd.weight`); `None` = llama.cpp's rule.
    pub output_tensor_type: Option<GgmlType>,
    /// Type of `token_embd.weight`; `None` = llama.cpp's rule.
    pub token_embedding_type: Option<GgmlType>,
    /// Allow converting tensors that are already quantized (they are dequantized first).
    pub allow_requantize: bool,
    /// Convert `output.weight` too (when false it keeps its type).
    pub quantize_output_tensor: bool,
    /// Copy every tensor as it is; only metadata changes (`ftype` and the rest are ignored and
    /// `general.file_type` keeps the input's).
    pub only_copy: bool,
    /// Every convertible tensor gets the file type's default type (no per-tensor rules).
    pub pure: bool,
    /// Compute and log the sizes; write nothing.
    pub dry_run: bool,
    /// Metadata set on the output after copying the input's (replacing same-named keys).
    pub kv_overrides: Vec<(String, Value)>,
    /// Layers (`blk.N.*`) to leave out; the rest are renumbered and `block_count` updated.
    pub prune_layers: Vec<i64>,
}

impl Default for QuantizeParams {
    fn default() -> Self {
        QuantizeParams {
            nthread: 0,
            ftype: ftype::MOSTLY_Q8_0,
            output_tensor_type: None,
            token_embedding_type: None,
            allow_requantize: false,
            quantize_output_tensor: true,
            only_copy: false,
            pure: false,
            dry_run: false,
            kv_overrides: Vec::new(),
            prune_layers: Vec::new(),
        }
    }
}

/// One output tensor: its name in the output, and its types.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedTensor {
    pub name: String,
    pub from: GgmlType,
    pub to: GgmlType,
    pub dims: Vec<usize>,
    pub bytes_in: usize,
    pub bytes_out: usize,
}

/// What [`quantize_model`] did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeSummary {
    pub tensors: Vec<QuantizedTensor>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bytes of the written file (`None` for a dry run).
    pub file_bytes: Option<u64>,
}

/// ggml's `ggml_n_dims`: dimensions up to the last one larger than 1 (at least 1).
fn n_dims(dims: &[usize]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// The layer of a `blk.N.` tensor (llama.cpp's `sscanf("blk.%d.")`).
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let (num, _) = rest.split_once('.')?;
    num.parse().ok()
}

/// `tensor_allows_quantization` for the tensors of BitNet architectures.
fn allows_quantization(p: &QuantizeParams, name: &str, dims: &[usize]) -> bool {
    !p.only_copy
        && n_dims(dims) >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && (p.quantize_output_tensor || name != "output.weight")
}

/// llama.cpp's choice of type for one tensor that may be converted (`llama_tensor_get_type`
/// with `llama_tensor_get_type_impl` and `tensor_type_fallback`, as far as they concern the
/// types and tensors of these architectures).
fn target_type(
    p: &QuantizeParams,
    name: &str,
    ne0: usize,
    default: GgmlType,
    tied: bool,
) -> Result<GgmlType> {
    let is_embd = name == "token_embd.weight";
    let is_output = name == "output.weight";
    if let (Some(t), true) = (p.token_embedding_type, is_embd) {
        return Ok(t);
    }
    if let (Some(t), true) = (p.output_tensor_type, is_output) {
        return Ok(t);
    }
    let quantized = !matches!(default, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
    if !quantized {
        return Ok(default);
    }
    let mut ty = default;
    if !p.pure {
        if is_output || (tied && is_embd) {
            ty = if let Some(t) = p.output_tensor_type {
                t
            } else if p.ftype == ftype::MOSTLY_I2_S {
                // The fork keeps the (tied) embedding of its ternary file types in F16.
                GgmlType::F16
            } else if !ne0.is_multiple_of(ty.block_size()) {
                GgmlType::Q8_0
            } else if ty != GgmlType::Q8_0 {
                GgmlType::Q6_K
            } else {
                ty
            };
        } else if is_embd {
            match p.ftype {
                ftype::MOSTLY_TQ1_0 | ftype::MOSTLY_TQ2_0 => {
                    return Err(Error::unsupported(format!(
                        "tensor {name}: llama.cpp's rule for an untied embedding with {} is \
                         Q4_K, which bitnet cannot write; set token_embedding_type",
                        ftype_label(p.ftype)
                    )))
                }
                ftype::MOSTLY_I2_S => ty = GgmlType::F16,
                _ => {}
            }
        }
    }
    if ne0.is_multiple_of(ty.block_size()) {
        return Ok(ty);
    }
    let fallback = match ty {
        GgmlType::Q6_K => GgmlType::Q8_0,
        GgmlType::Q8_0 | GgmlType::F16 | GgmlType::F32 => ty,
        GgmlType::TQ1_0 | GgmlType::TQ2_0 => {
            return Err(Error::unsupported(format!(
                "tensor {name}: rows of {ne0} are not whole {}-element {ty} blocks and llama.cpp's \
                 fallback (Q4_0) is a type bitnet cannot write",
                ty.block_size()
            )))
        }
        _ => {
            return Err(Error::unsupported(format!(
                "tensor {name}: rows of {ne0} are not whole {}-element {ty} blocks (no fallback \
                 type for {ty})",
                ty.block_size()
            )))
        }
    };
    let fallback = if ne0.is_multiple_of(fallback.block_size()) {
        fallback
    } else {
        GgmlType::F16
    };
    log_warn!(
        "bitnet: tensor {name}: rows of {ne0} are not whole {}-element {ty} blocks, falling back \
         to {fallback}",
        ty.block_size()
    );
    Ok(fallback)
}

/// `x` (a tensor of rows of `ne0`) in type `ty`, rows converted in parallel on the current
/// rayon pool.
fn convert(x: &[f32], ne0: usize, ty: GgmlType) -> Result<Vec<u8>> {
    fn rows<B: Pod + Send>(
        x: &[f32],
        ne0: usize,
        row_bytes: usize,
        q: impl Fn(&[f32]) -> Vec<B> + Sync,
    ) -> Vec<u8> {
        let mut out = vec![0u8; x.len() / ne0 * row_bytes];
        out.par_chunks_mut(row_bytes)
            .zip(x.par_chunks(ne0))
            .for_each(|(o, r)| o.copy_from_slice(as_bytes(&q(r))));
        out
    }
    let dims = [ne0, x.len() / ne0.max(1)];
    let size = ty.tensor_bytes(&dims).ok_or_else(|| {
        Error::invalid_argument(format!("{ty} cannot hold a {ne0}-column tensor"))
    })?;
    let row_bytes = ty.row_bytes(ne0).unwrap_or(0);
    let out = match ty {
        GgmlType::F32 => rows(x, ne0, row_bytes, |r| r.to_vec()),
        GgmlType::F16 => rows(x, ne0, row_bytes, |r| {
            r.iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect()
        }),
        GgmlType::Q8_0 => rows(x, ne0, row_bytes, tensor::quantize_q8_0),
        GgmlType::Q6_K => rows(x, ne0, row_bytes, tensor::quantize_q6_k),
        GgmlType::TQ1_0 => rows(x, ne0, row_bytes, tensor::quantize_tq1_0),
        GgmlType::TQ2_0 => rows(x, ne0, row_bytes, tensor::quantize_tq2_0),
        // One scale for the whole tensor: not split by rows.
        GgmlType::I2_S => tensor::quantize_i2_s(x),
        other => return Err(Error::internal(format!("no quantizer for {other}"))),
    };
    debug_assert_eq!(out.len(), size);
    Ok(out)
}

/// The tensor's values in f32, rows dequantized in parallel on the current rayon pool.
fn to_f32(ty: GgmlType, data: &[u8], ne0: usize, n: usize) -> Result<Vec<f32>> {
    if ty == GgmlType::I2_S {
        return tensor::dequantize_tensor(ty, data, ne0, n);
    }
    let row_bytes = ty
        .row_bytes(ne0)
        .ok_or_else(|| Error::format(format!("{ty}: rows of {ne0} are not whole blocks")))?;
    if ne0 == 0 || data.len() < n / ne0 * row_bytes {
        return Err(Error::format(format!(
            "{ty}: {} bytes cannot hold {n} elements",
            data.len()
        )));
    }
    let mut out = vec![0f32; n];
    out.par_chunks_mut(ne0)
        .zip(data.par_chunks(row_bytes))
        .try_for_each(|(o, r)| tensor::dequantize_row(ty, r, o, 0.0))?;
    Ok(out)
}

/// The input's `general.file_type`, else the type most of its tensors have (llama.cpp's guess).
fn input_ftype(g: &GgufFile) -> u32 {
    if let Some(v) = g.get("general.file_type").and_then(Value::as_i128) {
        return v as u32;
    }
    let mut counts: Vec<(GgmlType, usize)> = Vec::new();
    for t in g.tensors() {
        match counts.iter_mut().find(|(ty, _)| *ty == t.ty) {
            Some(c) => c.1 += 1,
            None => counts.push((t.ty, 1)),
        }
    }
    let most = counts
        .iter()
        .max_by_key(|c| c.1)
        .map_or(GgmlType::F32, |c| c.0);
    match most {
        GgmlType::F16 => ftype::MOSTLY_F16,
        GgmlType::BF16 => ftype::MOSTLY_BF16,
        GgmlType::Q8_0 => ftype::MOSTLY_Q8_0,
        GgmlType::Q6_K => ftype::MOSTLY_Q6_K,
        GgmlType::TQ1_0 => ftype::MOSTLY_TQ1_0,
        GgmlType::TQ2_0 => ftype::MOSTLY_TQ2_0,
        GgmlType::I2_S => ftype::MOSTLY_I2_S,
        _ => ftype::ALL_F32,
    }
}

/// llama.cpp's `remap_layer` over the tensors in their processing order: pruned layers map to
/// `None`, layers before the first listed one keep their number, later ones are renumbered
/// consecutively. Returns the map and the new layer count.
fn prune_map(names: &[&str], prune: &[i64]) -> (Vec<(i64, Option<i64>)>, i64) {
    let mut mapped: Vec<(i64, Option<i64>)> = Vec::new();
    let mut next = 0i64;
    for name in names {
        let Some(blk) = layer_of(name) else { continue };
        if mapped.iter().any(|m| m.0 == blk) {
            continue;
        }
        let to = if prune.contains(&blk) {
            None
        } else if blk < prune[0] {
            next = blk + 1;
            Some(blk)
        } else {
            next += 1;
            Some(next - 1)
        };
        mapped.push((blk, to));
    }
    (mapped, next)
}

/// Reads the GGUF at `input` and writes it to `output` with its weights in the file type
/// `p.ftype` (module docs; docs/quantize.md). The output is written under a temporary name
/// beside it and renamed into place when complete: on any error there is no output file.
/// Requantizing an already quantized tensor needs `allow_requantize`.
pub fn quantize_model(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    p: &QuantizeParams,
) -> Result<QuantizeSummary> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let shown = input.display().to_string();
    let default = if p.only_copy {
        GgmlType::F32 // unused: nothing is converted
    } else {
        ftype_default_type(p.ftype)?
    };
    for (t, what) in [
        (p.output_tensor_type, "output_tensor_type"),
        (p.token_embedding_type, "token_embedding_type"),
    ] {
        if let Some(t) = t {
            check_writable(t, what)?;
        }
    }
    let gguf = GgufFile::open(input)?;
    // ARM-layout I2_S codes are rewritten into the x86 layout first, as a load does.
    let layout = layout::resolve(&gguf, layout::env_layout()?).map_err(|e| e.context(&shown))?;
    let gguf = layout::to_kernel_layout(gguf, layout).map_err(|e| e.context(&shown))?;
    let config = Config::from_gguf(&gguf).map_err(|e| e.context(&shown))?;
    if gguf.opt("split.count", GgufFile::get_u32)?.unwrap_or(1) > 1 {
        return Err(Error::unsupported(format!(
            "{shown}: split GGUF files (split.count > 1) are not supported"
        )));
    }
    let threads = if p.nthread == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        p.nthread
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            Error::internal(format!("cannot start {threads} quantization threads: {e}"))
        })?;

    // Tensors in llama.cpp's order: by layer (non-layer tensors first), then by name.
    let mut order: Vec<usize> = (0..gguf.tensors().len()).collect();
    order.sort_by(|&a, &b| {
        let (ta, tb) = (&gguf.tensors()[a], &gguf.tensors()[b]);
        let key = |n: &str| layer_of(n).unwrap_or(-1);
        (key(&ta.name), &ta.name).cmp(&(key(&tb.name), &tb.name))
    });

    let mut prune: Vec<i64> = p.prune_layers.clone();
    let n_layer = config.n_layer as i64;
    if let Some(&bad) = prune.iter().find(|&&l| l < 0 || l >= n_layer) {
        return Err(Error::invalid_argument(format!(
            "prune_layers: layer {bad} does not exist (the model has layers 0..{n_layer})"
        )));
    }
    prune.dedup();
    let names: Vec<&str> = order
        .iter()
        .map(|&i| gguf.tensors()[i].name.as_str())
        .collect();
    let (mapping, new_layers) = if prune.is_empty() {
        (Vec::new(), n_layer)
    } else {
        prune_map(&names, &prune)
    };
    if new_layers == 0 {
        return Err(Error::invalid_argument(
            "prune_layers: pruning every layer leaves no model",
        ));
    }
    let rename = |name: &str| -> Option<String> {
        let Some(blk) = layer_of(name).filter(|_| !mapping.is_empty()) else {
            return Some(name.to_string());
        };
        let to = mapping.iter().find(|m| m.0 == blk).and_then(|m| m.1)?;
        let rest = name["blk.".len()..].split_once('.').map_or("", |r| r.1);
        Some(format!("blk.{to}.{rest}"))
    };

    // Metadata: the input's, then llama.cpp's updates, then the caller's overrides.
    let mut w = GgufWriter::new();
    for (k, v) in gguf.metadata() {
        if !k.starts_with("split.") {
            w.set(k.clone(), v.clone());
        }
    }
    if gguf.get(BLOCK_SIZE_KEY).is_some() {
        w.set(BLOCK_SIZE_KEY, Value::U32(I2sLayout::X86.block_size()));
    }
    let out_ftype = if p.only_copy {
        input_ftype(&gguf)
    } else {
        p.ftype
    };
    w.set("general.quantization_version", Value::U32(2));
    w.set("general.file_type", Value::U32(out_ftype));
    if !prune.is_empty() {
        w.set(
            format!("{}.block_count", config.arch.name()),
            Value::U32(new_layers as u32),
        );
    }
    for (k, v) in &p.kv_overrides {
        w.set(k.clone(), v.clone());
    }

    let kept: Vec<(usize, String)> = order
        .iter()
        .filter_map(|&i| rename(&gguf.tensors()[i].name).map(|n| (i, n)))
        .collect();
    let tied = !kept.iter().any(|(_, n)| n == "output.weight");
    let mut summary = QuantizeSummary {
        tensors: Vec::with_capacity(kept.len()),
        bytes_in: 0,
        bytes_out: 0,
        file_bytes: None,
    };
    for (n, (i, name)) in kept.iter().enumerate() {
        let t = &gguf.tensors()[*i];
        let to = if allows_quantization(p, &t.name, &t.dims) {
            let to = target_type(p, &t.name, t.dims[0], default, tied)?;
            check_writable(to, &format!("tensor {}", t.name))?
        } else {
            t.ty
        };
        if to != t.ty {
            if !matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
                && !p.allow_requantize
            {
                return Err(Error::invalid_argument(format!(
                    "tensor {}: requantizing from type {} is disabled (set allow_requantize)",
                    t.name, t.ty
                )));
            }
            if to == GgmlType::I2_S
                && !t
                    .n_elements()
                    .is_multiple_of(crate::tensor::blocks::QK_I2_S)
            {
                return Err(Error::unsupported(format!(
                    "tensor {}: {} elements are not whole 128-element I2_S blocks",
                    t.name,
                    t.n_elements()
                )));
            }
        }
        let bytes_out = to.tensor_bytes(&t.dims).ok_or_else(|| {
            Error::unsupported(format!(
                "tensor {}: {to} cannot hold dims {:?}",
                t.name, t.dims
            ))
        })?;
        let level = if p.dry_run { Level::Info } else { Level::Debug };
        log(
            level,
            &format!(
                "[{:4}/{:4}] {:<36} - {:?}, type = {:>6}, size = {:8.3} MiB -> {:8.3} MiB ({to})",
                n + 1,
                kept.len(),
                name,
                t.dims,
                t.ty.name(),
                t.size as f64 / 1048576.0,
                bytes_out as f64 / 1048576.0
            ),
        );
        summary.bytes_in += t.size as u64;
        summary.bytes_out += bytes_out as u64;
        summary.tensors.push(QuantizedTensor {
            name: name.clone(),
            from: t.ty,
            to,
            dims: t.dims.clone(),
            bytes_in: t.size,
            bytes_out,
        });
        if p.dry_run {
            continue;
        }
        let data = gguf.view(t).data;
        if to == t.ty {
            w.add_tensor_borrowed(name, &t.dims, to, data)?;
        } else {
            let (ty, ne0, n, tname) = (t.ty, t.dims[0], t.n_elements(), t.name.clone());
            let pool = &pool;
            w.add_tensor_lazy(name, &t.dims, to, move || {
                pool.install(|| {
                    let x = to_f32(ty, data, ne0, n)?;
                    convert(&x, ne0, to)
                })
                .map_err(|e| e.context(format!("tensor {tname}")))
            })?;
        }
    }
    log(
        Level::Info,
        &format!(
            "bitnet: quantize {shown}: {} tensors, {:.2} MiB -> {:.2} MiB ({})",
            summary.tensors.len(),
            summary.bytes_in as f64 / 1048576.0,
            summary.bytes_out as f64 / 1048576.0,
            if p.dry_run {
                "dry run, nothing written"
            } else {
                ftype_label(out_ftype)
            }
        ),
    );
    if !p.dry_run {
        summary.file_bytes = Some(super::io::write_gguf_file(w, output)?);
    }
    Ok(summary)
}
