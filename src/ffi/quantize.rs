//! Quantization (llama.h's `llama_model_quantize`, `llama_model_quantize_default_params`) and
//! the file-type and tensor-type enums its parameters name. The work is
//! [`crate::quantize::quantize_model`]; docs/quantize.md.

use super::model::bitnet_model_kv_override;
use super::{c_str, call};
use crate::error::{Error, Result};
use crate::gguf::Value;
use crate::quantize::{quantize_model, QuantizeParams};
use crate::tensor::GgmlType;
use std::ffi::{c_char, CStr};

/// File types (`llama_ftype`): what bitnet_model_quantize writes and bitnet_model_ftype reports.
/// Numbered as llama.h, except 40, which is the BitNet fork's MOSTLY_I2_S (mainline llama.cpp
/// numbers MOSTLY_Q1_0 40). bitnet writes ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_Q6_K,
/// MOSTLY_TQ1_0, MOSTLY_TQ2_0 and MOSTLY_I2_S; the others are refused with a message.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_ftype {
    BITNET_FTYPE_ALL_F32 = 0,
    BITNET_FTYPE_MOSTLY_F16 = 1,
    BITNET_FTYPE_MOSTLY_Q4_0 = 2,
    BITNET_FTYPE_MOSTLY_Q4_1 = 3,
    BITNET_FTYPE_MOSTLY_Q8_0 = 7,
    BITNET_FTYPE_MOSTLY_Q5_0 = 8,
    BITNET_FTYPE_MOSTLY_Q5_1 = 9,
    BITNET_FTYPE_MOSTLY_Q2_K = 10,
    BITNET_FTYPE_MOSTLY_Q3_K_S = 11,
    BITNET_FTYPE_MOSTLY_Q3_K_M = 12,
    BITNET_FTYPE_MOSTLY_Q3_K_L = 13,
    BITNET_FTYPE_MOSTLY_Q4_K_S = 14,
    BITNET_FTYPE_MOSTLY_Q4_K_M = 15,
    BITNET_FTYPE_MOSTLY_Q5_K_S = 16,
    BITNET_FTYPE_MOSTLY_Q5_K_M = 17,
    BITNET_FTYPE_MOSTLY_Q6_K = 18,
    BITNET_FTYPE_MOSTLY_BF16 = 32,
    BITNET_FTYPE_MOSTLY_TQ1_0 = 36,
    BITNET_FTYPE_MOSTLY_TQ2_0 = 37,
    BITNET_FTYPE_MOSTLY_I2_S = 40,
    /// Not specified in the model file.
    BITNET_FTYPE_GUESSED = 1024,
}

/// Tensor types (`ggml_type`), numbered as ggml (I2_S = 36 is the BitNet fork's): the types
/// bitnet reads. `BITNET_GGML_TYPE_COUNT` is ggml's GGML_TYPE_COUNT (43) of llama.cpp 0c1e57098:
/// as a type parameter it means "not set".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_ggml_type {
    BITNET_GGML_TYPE_F32 = 0,
    BITNET_GGML_TYPE_F16 = 1,
    BITNET_GGML_TYPE_Q8_0 = 8,
    BITNET_GGML_TYPE_Q6_K = 14,
    BITNET_GGML_TYPE_Q8_K = 15,
    BITNET_GGML_TYPE_BF16 = 30,
    BITNET_GGML_TYPE_TQ1_0 = 34,
    BITNET_GGML_TYPE_TQ2_0 = 35,
    BITNET_GGML_TYPE_I2_S = 36,
    BITNET_GGML_TYPE_COUNT = 43,
}

/// A tensor-type override (`llama_model_tensor_override`): a regular expression over tensor
/// names and the type to use. Lists end with a NULL pattern.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_tensor_override {
    pub pattern: *const c_char,
    /// `enum bitnet_ggml_type`.
    pub r#type: i32,
}

/// Importance-matrix data for one tensor (`llama_model_imatrix_data`). Lists end with a NULL
/// name.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_imatrix_data {
    pub name: *const c_char,
    pub data: *const f32,
    pub size: usize,
}

/// Quantization parameters: llama.h's llama_model_quantize_params field for field (the
/// enum-typed fields are int32_t holding the enum's values). Start from
/// bitnet_model_quantize_default_params().
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_quantize_params {
    /// Threads for the conversion; <= 0 = all the machine has.
    pub nthread: i32,
    /// `enum bitnet_ftype` to write (default MOSTLY_Q8_0).
    pub ftype: i32,
    /// `enum bitnet_ggml_type` of output.weight and of a tied token_embd.weight
    /// (default BITNET_GGML_TYPE_COUNT = llama.cpp's rule).
    pub output_tensor_type: i32,
    /// `enum bitnet_ggml_type` of token_embd.weight (default COUNT = llama.cpp's rule).
    pub token_embedding_type: i32,
    /// Allow converting tensors that are already quantized (default false: an error).
    pub allow_requantize: bool,
    /// Convert output.weight too (default true).
    pub quantize_output_tensor: bool,
    /// Copy every tensor as it is, only metadata changes (ftype, allow_requantize and
    /// quantize_output_tensor are ignored).
    pub only_copy: bool,
    /// Every convertible tensor gets the file type's own type (no per-tensor rules).
    pub pure: bool,
    /// Keep the input's split: bitnet reads single-file models, so the output is one file.
    pub keep_split: bool,
    /// Log the per-tensor and total sizes; write nothing.
    pub dry_run: bool,
    /// Importance matrix: NULL or an empty list, else refused (no quantizer here uses one).
    pub imatrix: *const bitnet_model_imatrix_data,
    /// Metadata set on the output, terminated by an empty key (INT is written as u32 of its
    /// absolute value, FLOAT as f32, as llama.cpp does).
    pub kv_overrides: *const bitnet_model_kv_override,
    /// Tensor-type overrides by regular expression: NULL or an empty list, else refused.
    pub tt_overrides: *const bitnet_model_tensor_override,
    /// Layers to remove, terminated by -1; the rest are renumbered and block_count updated.
    pub prune_layers: *const i32,
    /// Bytes of tensor rows kept in memory at once: bitnet converts one tensor at a time
    /// (peak memory: one tensor in f32 plus its output); not used.
    pub max_buf_size: usize,
}

/// llama.cpp's defaults: all threads, MOSTLY_Q8_0, types by llama.cpp's rules,
/// quantize_output_tensor, nothing else.
#[no_mangle]
pub extern "C" fn bitnet_model_quantize_default_params() -> bitnet_model_quantize_params {
    bitnet_model_quantize_params {
        nthread: 0,
        ftype: bitnet_ftype::BITNET_FTYPE_MOSTLY_Q8_0 as i32,
        output_tensor_type: bitnet_ggml_type::BITNET_GGML_TYPE_COUNT as i32,
        token_embedding_type: bitnet_ggml_type::BITNET_GGML_TYPE_COUNT as i32,
        allow_requantize: false,
        quantize_output_tensor: true,
        only_copy: false,
        pure: false,
        keep_split: false,
        dry_run: false,
        imatrix: std::ptr::null(),
        kv_overrides: std::ptr::null(),
        tt_overrides: std::ptr::null(),
        prune_layers: std::ptr::null(),
        max_buf_size: 0,
    }
}

/// A type parameter: COUNT (or more) = not set; else a type bitnet knows.
fn type_param(v: i32, what: &str) -> Result<Option<GgmlType>> {
    if v >= bitnet_ggml_type::BITNET_GGML_TYPE_COUNT as i32 {
        return Ok(None);
    }
    u32::try_from(v)
        .ok()
        .and_then(GgmlType::from_id)
        .map(Some)
        .ok_or_else(|| Error::unsupported(format!("{what} = {v}: not a ggml type bitnet knows")))
}

/// The text of a fixed-size, NUL-terminated C array field.
fn fixed_str<'a>(chars: &'a [c_char], what: &str) -> Result<&'a str> {
    // SAFETY: c_char and u8 have the same size and layout; the slice borrows `chars`.
    let bytes = unsafe { std::slice::from_raw_parts(chars.as_ptr().cast::<u8>(), chars.len()) };
    CStr::from_bytes_until_nul(bytes)
        .map_err(|_| Error::invalid_argument(format!("{what} is not NUL-terminated")))?
        .to_str()
        .map_err(|_| Error::invalid_argument(format!("{what} is not valid UTF-8")))
}

/// The entries of a list that ends where `end` says (at most `limit` entries are read).
fn list<'a, T>(p: *const T, end: impl Fn(&T) -> bool, what: &str) -> Result<Vec<&'a T>> {
    const LIMIT: usize = 1 << 16;
    let mut out = Vec::new();
    if p.is_null() {
        return Ok(out);
    }
    for i in 0..LIMIT {
        // SAFETY: the header's contract: a non-NULL list pointer points to entries up to and
        // including its terminator, all valid for the call.
        let e = unsafe { &*p.add(i) };
        if end(e) {
            return Ok(out);
        }
        out.push(e);
    }
    Err(Error::invalid_argument(format!(
        "{what}: no terminator within {LIMIT} entries"
    )))
}

/// The Rust parameters for the C ones (pointer lists read and checked).
fn params_from_c(p: &bitnet_model_quantize_params) -> Result<QuantizeParams> {
    let ftype = u32::try_from(p.ftype)
        .map_err(|_| Error::invalid_argument(format!("ftype {} is negative", p.ftype)))?;
    if !list(p.imatrix, |e| e.name.is_null(), "imatrix")?.is_empty() {
        return Err(Error::unsupported(
            "imatrix: importance matrices are not supported (none of bitnet's quantizers uses \
             one); pass NULL",
        ));
    }
    if !list(p.tt_overrides, |e| e.pattern.is_null(), "tt_overrides")?.is_empty() {
        return Err(Error::unsupported(
            "tt_overrides: per-tensor type overrides are not supported; pass NULL (or use \
             output_tensor_type / token_embedding_type)",
        ));
    }
    let mut kv_overrides = Vec::new();
    for o in list(p.kv_overrides, |e| e.key[0] == 0, "kv_overrides")? {
        let key = fixed_str(&o.key, "kv_overrides key")?;
        // SAFETY (union reads): the tag says which member the caller wrote.
        let v = match o.tag {
            0 => Value::U32(unsafe { o.value.val_i64 }.unsigned_abs() as u32),
            1 => Value::F32(unsafe { o.value.val_f64 } as f32),
            2 => Value::Bool(unsafe { o.value.val_bool }),
            3 => Value::String(
                fixed_str(unsafe { &o.value.val_str }, &format!("kv_overrides {key}"))?.into(),
            ),
            t => {
                crate::log::log_warn!(
                    "bitnet_model_quantize: unknown KV override type {t} for key {key}"
                );
                continue;
            }
        };
        kv_overrides.push((key.to_string(), v));
    }
    let prune_layers = list(p.prune_layers, |&l| l == -1, "prune_layers")?
        .into_iter()
        .map(|&l| l as i64)
        .collect();
    Ok(QuantizeParams {
        nthread: usize::try_from(p.nthread).unwrap_or(0),
        ftype,
        output_tensor_type: type_param(p.output_tensor_type, "output_tensor_type")?,
        token_embedding_type: type_param(p.token_embedding_type, "token_embedding_type")?,
        allow_requantize: p.allow_requantize,
        quantize_output_tensor: p.quantize_output_tensor,
        only_copy: p.only_copy,
        pure: p.pure,
        dry_run: p.dry_run,
        kv_overrides,
        prune_layers,
    })
}

/// Quantizes the GGUF model at `fname_inp` into `fname_out` as `params` says (docs/quantize.md):
/// weight matrices converted to the file type's tensor type by llama.cpp's rules, 1-D tensors
/// kept, metadata copied with general.file_type updated. Returns 0 on success; on failure
/// (NULL arguments, a missing or malformed input, an unsupported file type, requantizing
/// without allow_requantize, an unwritable output, ...) 1, with the error logged and in
/// bitnet_last_error, and no output file.
#[no_mangle]
pub extern "C" fn bitnet_model_quantize(
    fname_inp: *const c_char,
    fname_out: *const c_char,
    params: *const bitnet_model_quantize_params,
) -> u32 {
    call(1, || {
        let result = (|| -> Result<()> {
            let inp = c_str(fname_inp, "fname_inp")?;
            let out = c_str(fname_out, "fname_out")?;
            let p = params_from_c(super::borrow(params, "params")?)?;
            quantize_model(inp, out, &p)?;
            Ok(())
        })();
        if let Err(e) = &result {
            crate::log::log(
                crate::log::Level::Error,
                &format!("bitnet_model_quantize: failed to quantize: {e}"),
            );
        }
        result.map(|()| 0)
    })
}
