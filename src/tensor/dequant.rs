//! Scalar dequantization to f32, one function per type, written straight from the layouts in
//! `spec/I2_S.md`. These are the reference for tests and for embedding-row lookup (`get_rows`),
//! which the reference also does exactly in f32.

use super::blocks::{cast_slice, BlockQ6K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK_I2_S, QK_K};
use super::GgmlType;
use crate::error::{Error, Result};
use half::f16;

fn f16_bits(b: u16) -> f32 {
    f16::from_bits(b).to_f32()
}

/// Dequantizes one row of `out.len()` elements whose bytes are `row` (exactly
/// `ty.row_bytes(out.len())` bytes). For I2_S, `i2s_scale` is the tensor's trailing scale; it is
/// ignored for every other type.
pub fn dequantize_row(ty: GgmlType, row: &[u8], out: &mut [f32], i2s_scale: f32) -> Result<()> {
    let n = out.len();
    let want = ty
        .row_bytes(n)
        .ok_or_else(|| Error::invalid_argument(format!("{ty}: row of {n} is not whole blocks")))?;
    if row.len() != want {
        return Err(Error::invalid_argument(format!(
            "{ty}: row of {n} elements needs {want} bytes, got {}",
            row.len()
        )));
    }
    let misaligned = || Error::internal(format!("{ty}: row data is not aligned"));
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f16_bits(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        GgmlType::Q8_0 => {
            let blocks: &[BlockQ8_0] = cast_slice(row).ok_or_else(misaligned)?;
            for (b, o) in blocks.iter().zip(out.chunks_exact_mut(32)) {
                let d = f16_bits(b.d);
                for (y, &q) in o.iter_mut().zip(b.qs.iter()) {
                    *y = d * q as f32;
                }
            }
        }
        GgmlType::Q6_K => {
            let blocks: &[BlockQ6K] = cast_slice(row).ok_or_else(misaligned)?;
            for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                dequant_q6k_block(b, o);
            }
        }
        GgmlType::TQ2_0 => {
            let blocks: &[BlockTQ2_0] = cast_slice(row).ok_or_else(misaligned)?;
            for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                let d = f16_bits(b.d);
                for e in 0..QK_K {
                    let byte = b.qs[32 * (e / 128) + e % 32];
                    let code = (byte >> (2 * ((e % 128) / 32))) & 3;
                    o[e] = (code as i32 - 1) as f32 * d;
                }
            }
        }
        GgmlType::TQ1_0 => {
            let blocks: &[BlockTQ1_0] = cast_slice(row).ok_or_else(misaligned)?;
            for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
                let d = f16_bits(b.d);
                let t = tq1_0_trits(b);
                for (y, &t) in o.iter_mut().zip(t.iter()) {
                    *y = (t as i32 - 1) as f32 * d;
                }
            }
        }
        GgmlType::I2_S => {
            for (blk, o) in row.chunks_exact(32).zip(out.chunks_exact_mut(QK_I2_S)) {
                for (e, y) in o.iter_mut().enumerate() {
                    let code = (blk[e % 32] >> (6 - 2 * (e / 32))) & 3;
                    *y = (code as i32 - 1) as f32 * i2s_scale;
                }
            }
        }
        GgmlType::Q8_K => {
            return Err(Error::unsupported(
                "Q8_K is an activation type, not a weight type",
            ));
        }
    }
    Ok(())
}

/// The 256 trits (0..2) of a TQ1_0 block, in element order (I2_S.md §7).
pub fn tq1_0_trits(b: &BlockTQ1_0) -> [u8; QK_K] {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let trit = |byte: u8, n: usize| (((byte.wrapping_mul(POW3[n])) as u16 * 3) >> 8) as u8;
    let mut t = [0u8; QK_K];
    for n in 0..5 {
        for m in 0..32 {
            t[n * 32 + m] = trit(b.qs[m], n);
        }
        for m in 0..16 {
            t[160 + n * 16 + m] = trit(b.qs[32 + m], n);
        }
    }
    for n in 0..4 {
        for j in 0..4 {
            t[240 + n * 4 + j] = trit(b.qh[j], n);
        }
    }
    t
}

/// The 256 signed 6-bit values (-32..31) of a Q6_K block, in element order.
pub fn q6k_values(b: &BlockQ6K) -> [i8; QK_K] {
    let mut v = [0i8; QK_K];
    for h in 0..2 {
        let ql = &b.ql[64 * h..];
        let qh = &b.qh[32 * h..];
        let base = 128 * h;
        for l in 0..32 {
            v[base + l] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            v[base + l + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            v[base + l + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            v[base + l + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
        }
    }
    v
}

fn dequant_q6k_block(b: &BlockQ6K, out: &mut [f32]) {
    let d = f16_bits(b.d);
    let v = q6k_values(b);
    for (e, y) in out.iter_mut().enumerate() {
        // Same association as ggml: (d * sc) * q.
        *y = d * b.scales[e / 16] as f32 * v[e] as f32;
    }
}

/// Dequantizes a whole tensor of `n` elements (`n` a multiple of the row length `ne0`).
pub fn dequantize_tensor(ty: GgmlType, data: &[u8], ne0: usize, n: usize) -> Result<Vec<f32>> {
    if ne0 == 0 || !n.is_multiple_of(ne0) {
        return Err(Error::invalid_argument(format!(
            "{ty}: {n} elements are not rows of {ne0}"
        )));
    }
    let row_bytes = ty.row_bytes(ne0).ok_or_else(|| {
        Error::invalid_argument(format!("{ty}: row of {ne0} is not whole blocks"))
    })?;
    let rows = n / ne0;
    let scale = if ty == GgmlType::I2_S {
        super::i2s_scale(data, n)
            .ok_or_else(|| Error::format(format!("I2_S tensor of {n} elements lacks its scale")))?
    } else {
        0.0
    };
    if data.len() < rows * row_bytes {
        return Err(Error::format(format!(
            "{ty} tensor of {n} elements needs {} bytes, has {}",
            rows * row_bytes,
            data.len()
        )));
    }
    let mut out = vec![0f32; n];
    for (r, o) in out.chunks_exact_mut(ne0).enumerate() {
        dequantize_row(ty, &data[r * row_bytes..(r + 1) * row_bytes], o, scale)?;
    }
    Ok(out)
}
