//! The two I2_S code layouts bitnet.cpp writes (docs/i2s-layouts.md).
//!
//! Both store 2-bit codes (0, 1, 2 for -1, 0, +1) four to a byte, MSB-first, over the
//! flattened tensor, followed by the f32 per-tensor scale and padding to a 32-byte tail
//! (`n/4 + 32` bytes in all). They differ only in the block the codes are interleaved over:
//!
//! - [`I2sLayout::X86`], `QK_I2_S = 128`: 128 elements in 32 bytes, byte `j` holding elements
//!   `j, j+32, j+64, j+96` at shifts 6, 4, 2, 0. Written by the Python converter
//!   (`convert-hf-to-gguf-bitnet.py`), by `llama-quantize` built for x86, by every bitnet.cpp
//!   build before commit 112f853, and read by the fork's `dequantize_row_i2_s` on every
//!   platform. The layout the kernels of this library read.
//! - [`I2sLayout::Arm`], `QK_I2_S = 64`: 64 elements in 16 bytes, byte `j` holding elements
//!   `j, j+16, j+32, j+48` at the same shifts. Written by `quantize_i2_s` when bitnet.cpp is
//!   built for ARM NEON (since 112f853, Nov 2025), i.e. by `setup_env.py -q i2_s` on an ARM
//!   machine, which runs `llama-quantize ... I2_S` there.
//!
//! Sizes, the scale's place and every metadata key are the same: nothing bitnet.cpp writes
//! tells the two apart. Within each 128-element span the two are a fixed permutation of each
//! other, so an ARM file is loaded by rewriting every span into the x86 layout once.

use crate::error::{Error, Result};
use rayon::prelude::*;

/// Elements of one span that both layouts cover whole (two ARM blocks, one x86 block).
pub const SPAN: usize = 128;
/// Code bytes of one span.
pub const SPAN_BYTES: usize = SPAN / 4;

/// The GGUF metadata key naming the layout of a file's I2_S tensors: `128` (x86, the
/// default when absent) or `64` (ARM). bitnet.cpp writes no such key; this library's
/// converters do.
pub const BLOCK_SIZE_KEY: &str = "bitnet.i2_s.block_size";

/// The environment variable that names the layout of files that do not say:
/// `x86` / `128` or `arm` / `64`.
pub const LAYOUT_ENV: &str = "BITNET_I2S_LAYOUT";

/// How a file's I2_S codes are interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum I2sLayout {
    /// 128 elements in 32 bytes (`QK_I2_S = 128`): the converter's and x86 layout.
    #[default]
    X86,
    /// 64 elements in 16 bytes (`QK_I2_S = 64`): bitnet.cpp's ARM `quantize_i2_s`.
    Arm,
}

impl I2sLayout {
    /// The block size (`QK_I2_S`) of the layout, as stored under [`BLOCK_SIZE_KEY`].
    pub fn block_size(self) -> u32 {
        match self {
            I2sLayout::X86 => 128,
            I2sLayout::Arm => 64,
        }
    }

    /// The layout whose block size is `qk`.
    pub fn from_block_size(qk: u64) -> Option<I2sLayout> {
        match qk {
            128 => Some(I2sLayout::X86),
            64 => Some(I2sLayout::Arm),
            _ => None,
        }
    }

    /// Parses a user's choice: `x86` / `128` or `arm` / `64` (case-insensitive).
    pub fn parse(s: &str) -> Result<I2sLayout> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x86" | "128" => Ok(I2sLayout::X86),
            "arm" | "64" => Ok(I2sLayout::Arm),
            other => Err(Error::invalid_argument(format!(
                "I2_S layout \"{other}\": expected x86 (or 128) or arm (or 64)"
            ))),
        }
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            I2sLayout::X86 => "x86 (128-element blocks)",
            I2sLayout::Arm => "ARM (64-element blocks)",
        }
    }

    /// Where element `e` (0..128) of a span lives in this layout: (byte, shift).
    fn position(self, e: usize) -> (usize, u32) {
        match self {
            I2sLayout::X86 => (e % 32, 6 - 2 * (e / 32) as u32),
            I2sLayout::Arm => {
                let (half, i) = (e / 64, e % 64);
                (16 * half + i % 16, 6 - 2 * (i / 16) as u32)
            }
        }
    }
}

/// Rewrites one span of 32 code bytes from layout `from` into layout `to`.
fn convert_span(span: &mut [u8], from: I2sLayout, to: I2sLayout) {
    let mut out = [0u8; SPAN_BYTES];
    for e in 0..SPAN {
        let (fb, fs) = from.position(e);
        let (tb, ts) = to.position(e);
        out[tb] |= ((span[fb] >> fs) & 3) << ts;
    }
    span.copy_from_slice(&out);
}

/// Rewrites the codes of one I2_S tensor of `n` elements (`data` = its `n/4` code bytes; the
/// scale tail is not touched) from layout `from` into layout `to`, in place. `n` must be a
/// multiple of 128 (every tensor this library accepts is: its rows are whole 128-blocks).
pub fn convert_codes(codes: &mut [u8], n: usize, from: I2sLayout, to: I2sLayout) -> Result<()> {
    if !n.is_multiple_of(SPAN) || codes.len() != n / 4 {
        return Err(Error::invalid_argument(format!(
            "I2_S layout conversion needs whole {SPAN}-element spans and n/4 code bytes \
             ({n} elements, {} bytes)",
            codes.len()
        )));
    }
    if from != to {
        codes.par_chunks_mut(SPAN_BYTES * 1024).for_each(|chunk| {
            for span in chunk.chunks_exact_mut(SPAN_BYTES) {
                convert_span(span, from, to);
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs codes the way bitnet.cpp's ARM `quantize_i2_s` does (read from its source:
    /// `group_idx = j / 16`, `group_pos = j % 16`, byte `i*16 + group_pos`, shift
    /// `6 - 2*group_idx`, over 64-element blocks), written independently of `position`.
    fn pack_arm(codes: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; codes.len() / 4];
        for (i, blk) in codes.chunks_exact(64).enumerate() {
            for (j, &c) in blk.iter().enumerate() {
                out[i * 16 + j % 16] |= c << (6 - 2 * (j / 16));
            }
        }
        out
    }

    fn pack_x86(codes: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; codes.len() / 4];
        for (i, blk) in codes.chunks_exact(128).enumerate() {
            for (j, &c) in blk.iter().enumerate() {
                out[i * 32 + j % 32] |= c << (6 - 2 * (j / 32));
            }
        }
        out
    }

    fn codes(n: usize, seed: u32) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((s >> 24) % 3) as u8
            })
            .collect()
    }

    #[test]
    fn arm_codes_become_the_x86_packing_of_the_same_weights() {
        let c = codes(128 * 40, 7);
        let mut arm = pack_arm(&c);
        let x86 = pack_x86(&c);
        assert_ne!(arm, x86, "the two layouts differ on random codes");
        convert_codes(&mut arm, c.len(), I2sLayout::Arm, I2sLayout::X86).unwrap();
        assert_eq!(arm, x86);
        convert_codes(&mut arm, c.len(), I2sLayout::X86, I2sLayout::Arm).unwrap();
        assert_eq!(arm, pack_arm(&c));
    }

    #[test]
    fn worked_example() {
        // Elements 0, 16, 32, 48 = +1, 0, -1, +1 (codes 2, 1, 0, 2), the rest 0: in the ARM
        // layout all four share byte 0 (0x92); in the x86 layout 0 and 32 share byte 0
        // (2<<6 | 0<<4 | 1<<2 | 1 = 0x85), 16 and 48 byte 16 (1<<6 | 2<<4 | 1<<2 | 1 = 0x65).
        let mut c = vec![1u8; 128];
        (c[0], c[16], c[32], c[48]) = (2, 1, 0, 2);
        let mut arm = pack_arm(&c);
        assert_eq!(arm[0], 0x92);
        convert_codes(&mut arm, 128, I2sLayout::Arm, I2sLayout::X86).unwrap();
        assert_eq!(arm[0], 0x85);
        assert_eq!(arm[16], 0x65);
        assert!(arm
            .iter()
            .enumerate()
            .all(|(i, &b)| i == 0 || i == 16 || b == 0x55));
    }

    #[test]
    fn parse_and_block_size() {
        assert_eq!(I2sLayout::parse("ARM").unwrap(), I2sLayout::Arm);
        assert_eq!(I2sLayout::parse(" 64 ").unwrap(), I2sLayout::Arm);
        assert_eq!(I2sLayout::parse("x86").unwrap(), I2sLayout::X86);
        assert_eq!(I2sLayout::parse("128").unwrap(), I2sLayout::X86);
        assert!(I2sLayout::parse("32")
            .unwrap_err()
            .message()
            .contains("\"32\""));
        for l in [I2sLayout::X86, I2sLayout::Arm] {
            assert_eq!(I2sLayout::from_block_size(l.block_size() as u64), Some(l));
        }
        assert_eq!(I2sLayout::from_block_size(256), None);
        let mut b = vec![0u8; 31];
        assert!(convert_codes(&mut b, 124, I2sLayout::Arm, I2sLayout::X86).is_err());
    }
}
