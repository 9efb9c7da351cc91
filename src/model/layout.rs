//! Which I2_S layout a file's ternary tensors use ([`I2sLayout`], docs/i2s-layouts.md) and
//! the rewrite of an ARM-layout file into the layout the kernels read, once, at load.
//!
//! Nothing bitnet.cpp writes says which layout a file has, so the choice comes from, in order:
//! the file's [`BLOCK_SIZE_KEY`] (written by this library's converters), else the caller's
//! choice ([`super::Model::load_with_i2s_layout`], or the [`LAYOUT_ENV`] environment variable),
//! else the x86 layout (every published GGUF and the Python converter's output), with a
//! one-line notice ([`KEYLESS_NOTICE`]) in the log. A caller's choice that contradicts the
//! file's key is an error, as is a key with another value.

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::tensor::i2s_layout::{convert_codes, I2sLayout, BLOCK_SIZE_KEY, LAYOUT_ENV, SPAN};
use crate::tensor::GgmlType;

/// The layout the file says it has (`None` when it has no [`BLOCK_SIZE_KEY`]).
pub(crate) fn file_layout(gguf: &GgufFile) -> Result<Option<I2sLayout>> {
    let Some(v) = gguf.get(BLOCK_SIZE_KEY) else {
        return Ok(None);
    };
    let qk = v.as_i128().ok_or_else(|| {
        Error::metadata(format!(
            "metadata key {BLOCK_SIZE_KEY}: expected an integer (64 or 128)"
        ))
    })?;
    u64::try_from(qk)
        .ok()
        .and_then(I2sLayout::from_block_size)
        .map(Some)
        .ok_or_else(|| {
            Error::unsupported(format!(
                "metadata key {BLOCK_SIZE_KEY} = {qk}: I2_S layouts with {qk}-element blocks \
                 are not known (64 = bitnet.cpp's ARM quantizer, 128 = x86 and the converter)"
            ))
        })
}

/// The layout named by the [`LAYOUT_ENV`] environment variable, if set (and not empty).
pub(crate) fn env_layout() -> Result<Option<I2sLayout>> {
    match std::env::var(LAYOUT_ENV) {
        Ok(s) if !s.trim().is_empty() => I2sLayout::parse(&s)
            .map(Some)
            .map_err(|e| e.context(LAYOUT_ENV)),
        _ => Ok(None),
    }
}

/// Decides the layout of `gguf`'s I2_S tensors given the caller's choice (module docs).
pub(crate) fn resolve(gguf: &GgufFile, asked: Option<I2sLayout>) -> Result<I2sLayout> {
    match (file_layout(gguf)?, asked) {
        (Some(f), Some(a)) if f != a => Err(Error::invalid_argument(format!(
            "the file says its I2_S tensors use the {} layout ({BLOCK_SIZE_KEY} = {}) but the \
             {} layout was asked for (ModelParams / {LAYOUT_ENV}): refusing to guess",
            f.name(),
            f.block_size(),
            a.name()
        ))),
        (Some(f), _) => Ok(f),
        (None, Some(a)) => Ok(a),
        (None, None) => {
            if gguf.tensors().iter().any(|t| t.ty == GgmlType::I2_S) {
                crate::log::log(crate::log::Level::Info, KEYLESS_NOTICE);
            }
            Ok(I2sLayout::X86)
        }
    }
}

/// The one-line notice a load logs (level Info) when a file with I2_S tensors has no
/// [`BLOCK_SIZE_KEY`] and the caller named no layout: nothing in such a file tells the layouts
/// apart (docs/i2s-layouts.md §3), so it is read as x86.
pub(crate) const KEYLESS_NOTICE: &str = "bitnet: I2_S weights without a bitnet.i2_s.block_size key: reading them in the x86 layout (128-element blocks, as every published GGUF); a file quantized by bitnet.cpp on ARM needs BITNET_I2S_LAYOUT=arm (`bitnet i2s-layout MODEL` checks a trained model and can mark the file)";

/// `gguf` with every I2_S tensor in the x86 layout: unchanged (still memory-mapped) for an
/// x86-layout file; an in-memory copy with every 128-element span rewritten for an ARM one.
pub(crate) fn to_kernel_layout(gguf: GgufFile, layout: I2sLayout) -> Result<GgufFile> {
    if layout == I2sLayout::X86 || !gguf.tensors().iter().any(|t| t.ty == GgmlType::I2_S) {
        return Ok(gguf);
    }
    gguf.into_owned_with(|file, bytes| {
        for t in file.tensors().iter().filter(|t| t.ty == GgmlType::I2_S) {
            let n = t.n_elements();
            if !n.is_multiple_of(SPAN) {
                return Err(Error::unsupported(format!(
                    "tensor {}: {n} elements are not whole {SPAN}-element spans, so its {} \
                     codes cannot be rewritten into the x86 layout",
                    t.name,
                    layout.name()
                )));
            }
            let start = file.data_offset() + t.offset;
            convert_codes(&mut bytes[start..start + n / 4], n, layout, I2sLayout::X86)
                .map_err(|e| e.context(format!("tensor {}", t.name)))?;
        }
        Ok(())
    })
}
