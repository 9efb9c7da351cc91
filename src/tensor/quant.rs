//! Scalar quantizers used to write models. I2_S, TQ1_0, TQ2_0 and Q8_0 follow the reference's
//! `quantize_i2_s` / `quantize_row_*_ref` exactly (a test compares against the shared files
//! byte for byte); Q6_K is a simple valid encoder (see [`quantize_q6_k`]).

use super::blocks::{BlockQ6K, BlockQ8_0, BlockTQ1_0, BlockTQ2_0, QK8_0, QK_I2_S, QK_K};
use half::f16;

fn f16_of(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// I2_S: one per-tensor scale = max |x| (computed in double like the reference), codes
/// 0/1/2 for -1/0/+1 (|x| < 1e-6 is zero), packed 128 elements per 32 bytes MSB-first, then
/// the f32 scale and 28 zero bytes. `n = x.len()` must be a multiple of 128.
pub fn quantize_i2_s(x: &[f32]) -> Vec<u8> {
    assert!(
        x.len().is_multiple_of(QK_I2_S),
        "I2_S needs a multiple of 128 elements"
    );
    let scale = x.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let code = |v: f32| -> u8 {
        if (v as f64).abs() < 1e-6 {
            1
        } else if v as f64 * scale > 0.0 {
            2
        } else {
            0
        }
    };
    let mut out = vec![0u8; x.len() / 4 + 32];
    for (blk, src) in out.chunks_exact_mut(32).zip(x.chunks_exact(QK_I2_S)) {
        for (j, byte) in blk.iter_mut().enumerate() {
            *byte = code(src[j]) << 6
                | code(src[j + 32]) << 4
                | code(src[j + 64]) << 2
                | code(src[j + 96]);
        }
    }
    let n4 = x.len() / 4;
    out[n4..n4 + 4].copy_from_slice(&(scale as f32).to_le_bytes());
    out
}

fn amax_and_inverse(x: &[f32]) -> (f32, f32) {
    let d = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// TQ2_0 (`quantize_row_tq2_0_ref`): per 256-block `d = max|x|`, code = `lroundf(x/d) + 1`,
/// four codes per byte LSB-first.
pub fn quantize_tq2_0(x: &[f32]) -> Vec<BlockTQ2_0> {
    assert!(
        x.len().is_multiple_of(QK_K),
        "TQ2_0 needs a multiple of 256 elements"
    );
    x.chunks_exact(QK_K)
        .map(|src| {
            let (d, id) = amax_and_inverse(src);
            let mut b = BlockTQ2_0 {
                qs: [0; 64],
                d: f16_of(d),
            };
            for j in (0..64).step_by(32) {
                for m in 0..32 {
                    let mut q = 0u8;
                    for n in 0..4 {
                        let xi = (src[j * 4 + m + n * 32] * id).round() as i32 + 1;
                        q += ((xi & 3) as u8) << (2 * n);
                    }
                    b.qs[j + m] = q;
                }
            }
            b
        })
        .collect()
}

/// TQ1_0 (`quantize_row_tq1_0_ref`): base-3 packing, 5 trits per byte in `qs`, 4 in `qh`, stored
/// as `ceil(q * 256 / 243)`.
pub fn quantize_tq1_0(x: &[f32]) -> Vec<BlockTQ1_0> {
    assert!(
        x.len().is_multiple_of(QK_K),
        "TQ1_0 needs a multiple of 256 elements"
    );
    x.chunks_exact(QK_K)
        .map(|src| {
            let (d, id) = amax_and_inverse(src);
            let trit = |v: f32| ((v * id).round() as i32 + 1) as u16;
            let pack = |q: u16| (q * 256).div_ceil(243) as u8;
            let mut b = BlockTQ1_0 {
                qs: [0; 48],
                qh: [0; 4],
                d: f16_of(d),
            };
            for m in 0..32 {
                let q = (0..5).fold(0u16, |q, n| q * 3 + trit(src[m + n * 32]));
                b.qs[m] = pack(q);
            }
            for m in 0..16 {
                let q = (0..5).fold(0u16, |q, n| q * 3 + trit(src[160 + m + n * 16]));
                b.qs[32 + m] = pack(q);
            }
            for j in 0..4 {
                let q = (0..4).fold(0u16, |q, m| q * 3 + trit(src[240 + j + m * 4]));
                b.qh[j] = pack(q * 3);
            }
            b
        })
        .collect()
}

/// Q8_0 (`quantize_row_q8_0_ref`): per 32-block `d = max|x|/127`, `q = roundf(x/d)`.
pub fn quantize_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    assert!(
        x.len().is_multiple_of(QK8_0),
        "Q8_0 needs a multiple of 32 elements"
    );
    x.chunks_exact(QK8_0)
        .map(|src| {
            let amax = src.iter().fold(0f32, |m, &v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut b = BlockQ8_0 {
                d: f16_of(d),
                qs: [0; 32],
            };
            for (q, &v) in b.qs.iter_mut().zip(src) {
                *q = (v * id).round() as i8;
            }
            b
        })
        .collect()
}

/// Q6_K: a straightforward encoder (per 16-element sub-block scale from its max |x|, int8
/// sub-scales relative to one f16 super-scale). Not the reference's RMSE-searching
/// `quantize_row_q6_K_ref`, so files differ bit-wise from llama-quantize's, but every block is
/// valid Q6_K and decodes to within the format's error. Used only to make benchmark models.
pub fn quantize_q6_k(x: &[f32]) -> Vec<BlockQ6K> {
    assert!(
        x.len().is_multiple_of(QK_K),
        "Q6_K needs a multiple of 256 elements"
    );
    x.chunks_exact(QK_K)
        .map(|src| {
            let mut sub = [0f32; 16];
            for (s, c) in sub.iter_mut().zip(src.chunks_exact(16)) {
                *s = c.iter().fold(0f32, |m, &v| m.max(v.abs())) / 31.0;
            }
            let max_sub = sub.iter().fold(0f32, |m, &v| m.max(v));
            let d = max_sub / 127.0;
            let d16 = f16::from_f32(d).to_f32();
            let mut b = BlockQ6K {
                ql: [0; 128],
                qh: [0; 64],
                scales: [0; 16],
                d: f16_of(d),
            };
            let mut q = [0u8; QK_K];
            for (i, c) in src.chunks_exact(16).enumerate() {
                let sc = if d16 > 0.0 {
                    (sub[i] / d16).round().clamp(-128.0, 127.0) as i8
                } else {
                    0
                };
                b.scales[i] = sc;
                let step = d16 * sc as f32;
                for (j, &v) in c.iter().enumerate() {
                    let qi = if step != 0.0 {
                        (v / step).round().clamp(-32.0, 31.0) as i32
                    } else {
                        0
                    };
                    q[i * 16 + j] = (qi + 32) as u8;
                }
            }
            for h in 0..2 {
                let (ql, qh, q) = (&mut b.ql[64 * h..], &mut b.qh[32 * h..], &q[128 * h..]);
                for l in 0..32 {
                    ql[l] = (q[l] & 0xF) | ((q[l + 64] & 0xF) << 4);
                    ql[l + 32] = (q[l + 32] & 0xF) | ((q[l + 96] & 0xF) << 4);
                    qh[l] = (q[l] >> 4)
                        | ((q[l + 32] >> 4) << 2)
                        | ((q[l + 64] >> 4) << 4)
                        | ((q[l + 96] >> 4) << 6);
                }
            }
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{blocks::as_bytes, dequantize_tensor, GgmlType};
    use super::*;

    fn ternary(n: usize, seed: u32, s: f32) -> Vec<f32> {
        let mut r = seed;
        (0..n)
            .map(|_| {
                r = r.wrapping_mul(1664525).wrapping_add(1013904223);
                ((r >> 16) % 3) as f32 * s - s
            })
            .collect()
    }

    #[test]
    fn i2s_worked_example() {
        let mut x = vec![0f32; 128];
        x[0] = 1.0;
        x[64] = -1.0;
        x[96] = 1.0;
        let q = quantize_i2_s(&x);
        assert_eq!(q[0], 0x92);
        assert!(q[1..32].iter().all(|&b| b == 0x55));
        assert_eq!(q.len(), 64);
        assert_eq!(f32::from_le_bytes(q[32..36].try_into().unwrap()), 1.0);
    }

    #[test]
    fn ternary_round_trips() {
        let x = ternary(512 * 3, 7, 0.02);
        let i2 = quantize_i2_s(&x);
        assert_eq!(
            dequantize_tensor(GgmlType::I2_S, &i2, 512, x.len()).unwrap(),
            x
        );
        let d16 = f16::from_f32(0.02).to_f32();
        let xr: Vec<f32> = x
            .iter()
            .map(|v| v.signum() * if *v == 0.0 { 0.0 } else { d16 })
            .collect();
        let t2 = quantize_tq2_0(&x);
        assert_eq!(
            dequantize_tensor(GgmlType::TQ2_0, as_bytes(&t2), 512, x.len()).unwrap(),
            xr
        );
        let t1 = quantize_tq1_0(&x);
        assert_eq!(
            dequantize_tensor(GgmlType::TQ1_0, as_bytes(&t1), 512, x.len()).unwrap(),
            xr
        );
    }

    #[test]
    fn q8_0_and_q6_k_within_format_error() {
        let x: Vec<f32> = (0..1024)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let q8 = quantize_q8_0(&x);
        let y = dequantize_tensor(GgmlType::Q8_0, as_bytes(&q8), 256, 1024).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 1.25 / 127.0 * 0.51 + 1e-3, "{a} {b}");
        }
        let q6 = quantize_q6_k(&x);
        let y = dequantize_tensor(GgmlType::Q6_K, as_bytes(&q6), 256, 1024).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 1.25 / 31.0 * 0.6 + 1e-2, "{a} {b}");
        }
    }
}
