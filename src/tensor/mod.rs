//! The ggml tensor types this library reads: ids, block sizes, byte sizes, and the scalar
//! dequantizers and quantizers (the reference every faster path is tested against).

pub mod blocks;
mod dequant;
pub mod i2s_layout;
mod quant;

pub use dequant::{dequantize_row, dequantize_tensor, q6k_values, tq1_0_trits};
pub use quant::{quantize_i2_s, quantize_q6_k, quantize_q8_0, quantize_tq1_0, quantize_tq2_0};

use crate::error::{Error, Result};

/// A ggml type id as it appears in GGUF tensor infos. Ids follow the BitNet fork's `ggml.h`
/// (I2_S = 36 is fork-only; mainline reuses that number for something else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[allow(non_camel_case_types)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    I2_S = 36,
}

impl GgmlType {
    pub const ALL: [GgmlType; 9] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::BF16,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::I2_S,
    ];

    /// The type for a GGUF type id, or `None` for ids this library does not read.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        GgmlType::ALL.iter().copied().find(|t| *t as u32 == id)
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// The name ggml and llama.cpp print.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::Q8_K => "Q8_K",
            GgmlType::BF16 => "BF16",
            GgmlType::TQ1_0 => "TQ1_0",
            GgmlType::TQ2_0 => "TQ2_0",
            GgmlType::I2_S => "I2_S",
        }
    }

    /// Elements per block along a row (ne0 must be a multiple of it). I2_S packs 128
    /// elements per 32-byte block, but blocks run over the flattened tensor (I2_S.md §2);
    /// rows must still be whole blocks for row-wise addressing.
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q8_0 => blocks::QK8_0,
            GgmlType::Q6_K | GgmlType::Q8_K | GgmlType::TQ1_0 | GgmlType::TQ2_0 => blocks::QK_K,
            GgmlType::I2_S => blocks::QK_I2_S,
        }
    }

    /// Bytes per block (for I2_S: the 32 code bytes of one 128-element block).
    pub fn block_bytes(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q8_0 => 34,
            GgmlType::Q6_K => 210,
            GgmlType::Q8_K => 292,
            GgmlType::TQ1_0 => 54,
            GgmlType::TQ2_0 => 66,
            GgmlType::I2_S => 32,
        }
    }

    /// Bytes of one row of `ne0` elements (for I2_S: the packed codes only, `ne0/4`).
    /// `None` if `ne0` is not a whole number of blocks.
    pub fn row_bytes(self, ne0: usize) -> Option<usize> {
        if !ne0.is_multiple_of(self.block_size()) {
            return None;
        }
        (ne0 / self.block_size()).checked_mul(self.block_bytes())
    }

    /// Bytes of a whole tensor as the reference's `ggml_nbytes` computes them: rows times row
    /// bytes, except I2_S which is `n/4` code bytes plus a 32-byte tail holding the f32
    /// per-tensor scale (I2_S.md §1). `None` on overflow or a partial block.
    pub fn tensor_bytes(self, dims: &[usize]) -> Option<usize> {
        let ne0 = *dims.first()?;
        let rows = dims[1..]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        let n = rows.checked_mul(ne0)?;
        match self {
            GgmlType::I2_S => {
                if n % 4 != 0 {
                    return None;
                }
                (n / 4).checked_add(32)
            }
            _ => self.row_bytes(ne0)?.checked_mul(rows),
        }
    }

    /// True for the ternary weight formats.
    pub fn is_ternary(self) -> bool {
        matches!(self, GgmlType::I2_S | GgmlType::TQ1_0 | GgmlType::TQ2_0)
    }
}

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Looks up a type id, with an error that names the tensor.
pub fn type_for_tensor(id: u32, tensor: &str) -> Result<GgmlType> {
    GgmlType::from_id(id).ok_or_else(|| {
        let hint = match id {
            2 | 3 | 6 | 7 | 9 => " (a legacy Q4/Q5/Q8_1 type)",
            10..=13 | 16..=23 | 29 => " (a k-quant or i-quant type other than Q6_K)",
            37 => " (I8_S, the fork's internal activation type)",
            38 | 39 => " (TL1/TL2 LUT layouts, or MXFP4 in mainline ggml)",
            _ => "",
        };
        Error::unsupported(format!(
            "tensor {tensor}: ggml type {id}{hint} is not supported"
        ))
    })
}

/// Reads the f32 per-tensor scale stored after the codes of an I2_S tensor of `n` elements.
pub fn i2s_scale(data: &[u8], n: usize) -> Option<f32> {
    let b = data.get(n / 4..n / 4 + 4)?;
    Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_reference() {
        // attn_q of the tiny models: 256 x 256.
        let n = [256usize, 256];
        assert_eq!(GgmlType::F32.tensor_bytes(&n), Some(262144));
        assert_eq!(GgmlType::I2_S.tensor_bytes(&n), Some(16416));
        assert_eq!(GgmlType::TQ2_0.tensor_bytes(&n), Some(16896));
        assert_eq!(GgmlType::TQ1_0.tensor_bytes(&n), Some(13824));
        // 2560 x 2560 I2_S from I2_S.md's worked example.
        assert_eq!(GgmlType::I2_S.tensor_bytes(&[2560, 2560]), Some(1_638_432));
        assert_eq!(
            GgmlType::Q6_K.tensor_bytes(&[256, 32000]),
            Some(210 * 32000)
        );
        assert_eq!(GgmlType::Q8_0.row_bytes(64), Some(68));
        assert_eq!(GgmlType::Q8_0.row_bytes(33), None);
        assert_eq!(GgmlType::F16.tensor_bytes(&[usize::MAX, 2]), None);
    }

    #[test]
    fn unknown_type_names_tensor_and_id() {
        let e = type_for_tensor(12, "blk.0.attn_q.weight").unwrap_err();
        assert!(e.message().contains("blk.0.attn_q.weight"), "{e}");
        assert!(e.message().contains("12"), "{e}");
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
    }
}
