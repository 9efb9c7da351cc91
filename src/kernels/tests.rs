//! Kernel tests: hand-computed cases, the scalar kernels against independent integer/dequantized
//! computations on the shared models' real tensors, every variant against scalar, error paths.

use super::*;
use crate::gguf::GgufFile;
use crate::tensor::blocks::as_bytes;
use crate::tensor::{
    dequantize_tensor, quantize_i2_s, quantize_q6_k, quantize_tq1_0, quantize_tq2_0,
};
use bitnet_testdata as testdata;

/// xorshift64*: deterministic test data without a dependency.
pub(super) struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

const Q8K_ZERO: BlockQ8K = BlockQ8K {
    d: 0.0,
    qs: [0; crate::tensor::blocks::QK_K],
    bsums: [0; crate::tensor::blocks::QK_K / 16],
};

fn scalar() -> &'static KernelTable {
    table(Kind::Scalar).unwrap()
}

fn run(kt: &KernelTable, w: &Weights, x: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; n * w.rows];
    matmul_with(kt, w, x, n, &mut y, &mut Scratch::new()).unwrap();
    y
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Owned copy of a byte buffer with 32-byte alignment (like GGUF data), so typed views work.
pub(super) struct Aligned {
    buf: Vec<u8>,
    off: usize,
    len: usize,
}
impl Aligned {
    pub fn new(bytes: &[u8]) -> Self {
        let mut buf = vec![0u8; bytes.len() + 32];
        let off = buf.as_ptr().align_offset(32);
        buf[off..off + bytes.len()].copy_from_slice(bytes);
        Aligned {
            buf,
            off,
            len: bytes.len(),
        }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed cases

#[test]
fn i2s_by_hand() {
    // Row 0 all +1, row 1: +1 at even k, -1 at odd k, 0 for k >= 64.
    let k = 128;
    let mut wf = vec![1.0f32; 2 * k];
    for j in 0..k {
        wf[k + j] = if j >= 64 {
            0.0
        } else if j % 2 == 0 {
            1.0
        } else {
            -1.0
        };
    }
    let mut data = quantize_i2_s(&wf);
    // Scale 0.5 instead of the quantizer's 1.0.
    data[2 * k / 4..2 * k / 4 + 4].copy_from_slice(&0.5f32.to_le_bytes());
    let w = Weights::new(GgmlType::I2_S, &data, 2, k).unwrap();
    // x = 1 everywhere: s = 127, q = 127. Row 0: dot - sum = 127*128, / 127 * 0.5 = 64.
    // Row 1: 32 (+1) and 32 (-1) cancel: 0.
    let x = vec![1.0f32; k];
    let y = run(scalar(), &w, &x, 1);
    assert_eq!(y, vec![64.0, 0.0]);
    // Two tokens, second is x = 2 at even k, 0 elsewhere: s = 63.5, q = 127 at even k.
    // Row 0: 64*127/63.5*0.5 = 64; row 1: 32 even k < 64 -> 32*127/63.5*0.5 = 32.
    let mut x2 = x.clone();
    x2.extend((0..k).map(|j| if j % 2 == 0 { 2.0 } else { 0.0 }));
    let y = run(scalar(), &w, &x2, 2);
    assert_eq!(y, vec![64.0, 0.0, 64.0, 32.0]);
}

#[test]
fn ggml_f32_order_by_hand() {
    // Lane 0 of accumulators 0, 2 and 1: 1e8, -1e8, 1. ggml sums (acc0+acc2)+(acc1+acc3) -> 1;
    // a left-to-right sum would lose the 1 (1e8 + 1 == 1e8 in f32).
    let mut a = vec![0f32; 32];
    a[0] = 1e8;
    a[16] = -1e8;
    a[8] = 1.0;
    let b = vec![1f32; 32];
    assert_eq!(scalar::dot_f32_ggml(&a, &b), 1.0);
    // Lanes l and l+4 are paired first: 1e8 (lane 0) + -1e8 (lane 4) + 1 (lane 1) -> 1.
    let mut a = vec![0f32; 32];
    a[0] = 1e8;
    a[4] = -1e8;
    a[1] = 1.0;
    assert_eq!(scalar::dot_f32_ggml(&a, &b), 1.0);
    // Leftovers (n % 32) come after the horizontal sum, in float: 1e8 (chunk) + 1 (tail) - 1e8
    // (tail) = 0, which shows the tail is added sequentially after the reduction.
    let mut a = vec![0f32; 34];
    a[0] = 1e8;
    a[32] = 1.0;
    a[33] = -1e8;
    let b = vec![1f32; 34];
    assert_eq!(scalar::dot_f32_ggml(&a, &b), 0.0);
    // Short vectors are all tail.
    assert_eq!(scalar::dot_f32_ggml(&[2.0, 3.0], &[4.0, 5.0]), 23.0);
    assert_eq!(scalar::dot_f32_ggml(&[], &[]), 0.0);
}

#[test]
fn ggml_f16_tail_is_summed_in_double() {
    // Chunk total 2^24, tail +1 then -2^24: in double the +1 survives (result 1); a float tail
    // would round 2^24 + 1 back to 2^24 and give 0.
    let h = f16::from_f32;
    let mut a = vec![h(0.0); 34];
    let mut b = vec![h(0.0); 34];
    a[0] = h(4096.0);
    b[0] = h(4096.0); // 2^24 in the chunk
    a[32] = h(1.0);
    b[32] = h(1.0);
    a[33] = h(-4096.0);
    b[33] = h(4096.0);
    assert_eq!(scalar::dot_f16_ggml(&a, &b), 1.0);
    // Same values in f32 ggml order (fma tail in float): 2^24 + 1 rounds back to 2^24.
    let af: Vec<f32> = a.iter().map(|v| v.to_f32()).collect();
    let bf: Vec<f32> = b.iter().map(|v| v.to_f32()).collect();
    assert_eq!(scalar::dot_f32_ggml(&af, &bf), 0.0);
}

#[test]
fn tinyblas_order_by_hand() {
    // t[l] = acc[l+4] + acc[l]; (t0+t2) + (t1+t3). 1e8 at lane 0, -1e8 at lane 2, 1 at lane 1.
    let mut a = vec![0f32; 16];
    a[0] = 1e8;
    a[2] = -1e8;
    a[1] = 1.0;
    let b = vec![1f32; 16];
    assert_eq!(scalar::dot_f32_tinyblas(&a, &b), 1.0);
    // 1e8 at lane 0 and lane 1 = 1, lane 4 = -1e8: paired first -> 1.
    let mut a = vec![0f32; 16];
    a[0] = 1e8;
    a[4] = -1e8;
    a[9] = 1.0;
    assert_eq!(scalar::dot_f32_tinyblas(&a, &b), 1.0);
    // f16 weights are converted exactly, then the same order.
    let mut rng = Rng::new(1);
    let hw: Vec<f16> = rng.vec(24).iter().map(|&v| f16::from_f32(v)).collect();
    let af: Vec<f32> = hw.iter().map(|v| v.to_f32()).collect();
    let x = rng.vec(24);
    assert_eq!(
        scalar::dot_f16_f32_tinyblas(&hw, &x).to_bits(),
        scalar::dot_f32_tinyblas(&af, &x).to_bits()
    );
}

#[test]
fn tq2_0_by_hand() {
    // One block, weights all +1 with d = 1: y = sum_k x_k rebuilt from Q8_K: q = -127 * x / m.
    let k = 256;
    let wf = vec![1.0f32; k];
    let blocks = quantize_tq2_0(&wf);
    let data = Aligned::new(as_bytes(&blocks));
    let w = Weights::new(GgmlType::TQ2_0, data.bytes(), 1, k).unwrap();
    // x: 1.0 at element 0 only. m = 1, iscale = -127, q0 = -127, d = -1/127.
    // lanes: lane 0 = code(2)*(-127) - (-127) = -127; D = (-1/127) * 1.
    let mut x = vec![0f32; k];
    x[0] = 1.0;
    let y = run(scalar(), &w, &x, 1);
    assert_eq!(y[0], -127.0f32 * (1.0f32 / -127.0f32));
}

// ---------------------------------------------------------------------------------------------
// Error paths

#[test]
fn shape_errors_are_errors() {
    let data = quantize_i2_s(&vec![1.0; 256]);
    let w = Weights::new(GgmlType::I2_S, &data, 2, 128).unwrap();
    let mut s = Scratch::new();
    let mut y = vec![0f32; 4];
    let e = matmul(&w, &[0.0; 127], 1, &mut y, &mut s).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("x has 127"), "{e}");
    let e = matmul(&w, &[0.0; 256], 2, &mut y[..3], &mut s).unwrap_err();
    assert!(e.message().contains("y has room for 3"), "{e}");
    // Binding checks the weights once: too few bytes, the scale missing, odd columns.
    let e = Weights::new(GgmlType::I2_S, &data[..64], 2, 128).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Format, "{e}");
    assert!(Weights::new(GgmlType::I2_S, &data[..64 + 2], 2, 128).is_err());
    let e = Weights::new(GgmlType::I2_S, &data, 4, 64).unwrap_err();
    assert!(e.message().contains("not whole"), "{e}");
    let e = Weights::new(GgmlType::BF16, &data, 1, 8).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::Unsupported, "{e}");
    assert!(Weights::new(GgmlType::I2_S, &data, 2, 0).is_err());
    // The I2_S scale is read at binding.
    assert_eq!(w.scale(), crate::tensor::i2s_scale(&data, 256).unwrap());
    // Zero tokens and zero rows are fine and write nothing.
    matmul(&w, &[], 0, &mut [], &mut s).unwrap();
    let none = Weights::new(GgmlType::I2_S, &data, 0, 128).unwrap();
    matmul(&none, &[0.0; 128], 1, &mut [], &mut s).unwrap();
    // Misaligned typed weights are a binding error, not UB.
    let f = Aligned::new(&[0u8; 64]);
    let e = Weights::new(GgmlType::F32, &f.bytes()[1..41], 1, 8).unwrap_err();
    assert!(e.message().contains("aligned"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Scalar kernels against independent computations on real tensors

fn open(model: &str) -> Option<GgufFile> {
    let p = testdata::path(&format!("models/{model}.gguf"))?;
    Some(GgufFile::open(p).unwrap())
}

/// I2_S through matmul equals: codes recovered from the (independent) dequantizer, exact integer
/// dot with the int8 activations, the §5 epilogue.
#[test]
fn i2s_matches_dequantized_integer_dot_on_real_tensor() {
    let Some(f) = open("tiny-spm-i2_s") else {
        return;
    };
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_k.weight",
        "blk.0.ffn_down.weight",
    ] {
        let t = f.tensor(name).unwrap();
        let w = Weights::from_view(&t).unwrap();
        let (k, m) = (w.cols, w.rows);
        let scale = crate::tensor::i2s_scale(t.data, k * m).unwrap();
        let deq = dequantize_tensor(GgmlType::I2_S, t.data, k, k * m).unwrap();
        let codes: Vec<i32> = deq
            .iter()
            .map(|&v| (v / scale).round() as i32 + 1)
            .collect();
        assert!(codes.iter().all(|&c| (0..=2).contains(&c)));
        let n = 3;
        let x = Rng::new(7).vec(n * k);
        let y = run(scalar(), &w, &x, n);
        for t in 0..n {
            let mut q = vec![0i8; k];
            let (s, sum) = quantize_row_i8(&x[t * k..(t + 1) * k], &mut q);
            for r in 0..m {
                let dot: i32 = (0..k).map(|j| codes[r * k + j] * q[j] as i32).sum();
                let want = ((dot as f32 - sum as f32) / s) * scale;
                assert_eq!(y[t * m + r].to_bits(), want.to_bits(), "{name} t{t} r{r}");
            }
        }
        // Each token alone gives the same bits (the rule is per row).
        let y1 = run(scalar(), &w, &x[k..2 * k], 1);
        assert_eq!(bits(&y1), bits(&y[m..2 * m]), "{name}");
    }
}

/// The TQ1_0 and TQ2_0 tiny models hold the same ternary matrices: bit-identical results.
#[test]
fn tq1_0_equals_tq2_0_on_real_tensors() {
    let (Some(f1), Some(f2)) = (open("tiny-spm-tq1_0-q6k"), open("tiny-spm-tq2_0-q6k")) else {
        return;
    };
    let mut rng = Rng::new(11);
    for name in [
        "blk.0.attn_q.weight",
        "blk.0.attn_v.weight",
        "blk.0.ffn_up.weight",
        "blk.0.ffn_down.weight",
    ] {
        let w1 = Weights::from_view(&f1.tensor(name).unwrap()).unwrap();
        let w2 = Weights::from_view(&f2.tensor(name).unwrap()).unwrap();
        assert_eq!((w1.ty, w2.ty), (GgmlType::TQ1_0, GgmlType::TQ2_0));
        for n in [1, 4] {
            let x = rng.vec(n * w1.cols);
            let y1 = run(scalar(), &w1, &x, n);
            let y2 = run(scalar(), &w2, &x, n);
            assert_eq!(bits(&y1), bits(&y2), "{name} n={n}");
            // And close to the plain float product (sanity: the int path is not garbage).
            check_close_to_dequantized(&w2, &x, n, &y2, 2e-2);
        }
    }
}

/// |y - W.x| <= tol * sum|W||x| per output, W dequantized, f64 sums: catches layout mistakes
/// (wrong element order gives errors of order 1), not rounding questions.
fn check_close_to_dequantized(w: &Weights, x: &[f32], n: usize, y: &[f32], tol: f64) {
    let (k, m) = (w.cols, w.rows);
    let deq = dequantize_tensor(w.ty, w.data, k, k * m).unwrap();
    for t in 0..n {
        for r in 0..m {
            let (mut s, mut a) = (0f64, 0f64);
            for j in 0..k {
                let p = deq[r * k + j] as f64 * x[t * k + j] as f64;
                s += p;
                a += p.abs();
            }
            let got = y[t * m + r] as f64;
            assert!(
                (got - s).abs() <= tol * a + 1e-6,
                "{} r{r} t{t}: {got} vs {s} (scale {a})",
                w.ty
            );
        }
    }
}

#[test]
fn q6k_head_matches_dequantized_and_is_per_token() {
    let Some(f) = open("tiny-spm-tq2_0-q6k") else {
        return;
    };
    let t = f.tensor("token_embd.weight").unwrap();
    let full = Weights::from_view(&t).unwrap();
    assert_eq!(full.ty, GgmlType::Q6_K);
    // The first 512 rows are plenty.
    let rb = full.ty.row_bytes(full.cols).unwrap();
    let w = Weights::new(full.ty, &full.data[..512 * rb], 512, full.cols).unwrap();
    let x = Rng::new(3).vec(2 * w.cols);
    let y = run(scalar(), &w, &x, 2);
    check_close_to_dequantized(&w, &x, 2, &y, 1e-2);
    let y1 = run(scalar(), &w, &x[w.cols..], 1);
    assert_eq!(bits(&y1), bits(&y[w.rows..]));
}

#[test]
fn float_types_follow_the_token_count_rule() {
    let mut rng = Rng::new(5);
    for k in [8usize, 40, 64, 100, 256] {
        let m = 3;
        let wf = rng.vec(m * k);
        let x = rng.vec(2 * k);
        let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
        let f32w = Aligned::new(as_bytes(&wf));
        let f16w = Aligned::new(as_bytes(&wh));
        let w32 = Weights::new(GgmlType::F32, f32w.bytes(), m, k).unwrap();
        let w16 = Weights::new(GgmlType::F16, f16w.bytes(), m, k).unwrap();
        let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
        let y1 = run(scalar(), &w32, &x[..k], 1);
        let y2 = run(scalar(), &w32, &x, 2);
        let h1 = run(scalar(), &w16, &x[..k], 1);
        let h2 = run(scalar(), &w16, &x, 2);
        for t in 0..2 {
            for r in 0..m {
                let wr = &wf[r * k..(r + 1) * k];
                let hr = &wh[r * k..(r + 1) * k];
                let xt = &x[t * k..(t + 1) * k];
                let xht = &xh[t * k..(t + 1) * k];
                let (e32, e16) = if k % 8 == 0 {
                    (
                        scalar::dot_f32_tinyblas(wr, xt),
                        scalar::dot_f16_f32_tinyblas(hr, xt),
                    )
                } else {
                    (scalar::dot_f32_ggml(wr, xt), scalar::dot_f16_ggml(hr, xht))
                };
                assert_eq!(y2[t * m + r].to_bits(), e32.to_bits(), "f32 k{k} t{t} r{r}");
                assert_eq!(h2[t * m + r].to_bits(), e16.to_bits(), "f16 k{k} t{t} r{r}");
                if t == 0 {
                    assert_eq!(y1[r].to_bits(), scalar::dot_f32_ggml(wr, xt).to_bits());
                    assert_eq!(h1[r].to_bits(), scalar::dot_f16_ggml(hr, xht).to_bits());
                }
            }
        }
    }
}

#[test]
fn q8_0_matches_dequantized() {
    let mut rng = Rng::new(9);
    let (k, m) = (96, 5);
    let wf = rng.vec(m * k);
    let blocks = crate::tensor::quantize_q8_0(&wf);
    let data = Aligned::new(as_bytes(&blocks));
    let w = Weights::new(GgmlType::Q8_0, data.bytes(), m, k).unwrap();
    let x = rng.vec(3 * k);
    let y = run(scalar(), &w, &x, 3);
    check_close_to_dequantized(&w, &x, 3, &y, 2e-2);
}

// ---------------------------------------------------------------------------------------------
// Threading: the split never changes a bit

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = Rng::new(21);
    let (k, m) = (512, 300);
    let wf = rng.vec(m * k);
    let i2s = quantize_i2_s(&wf);
    let tq2 = Aligned::new(as_bytes(&quantize_tq2_0(&wf)));
    let tq1 = Aligned::new(as_bytes(&quantize_tq1_0(&wf)));
    let q6 = Aligned::new(as_bytes(&quantize_q6_k(&wf)));
    let f32w = Aligned::new(as_bytes(&wf));
    let cases = [
        (GgmlType::I2_S, &i2s[..]),
        (GgmlType::TQ2_0, tq2.bytes()),
        (GgmlType::TQ1_0, tq1.bytes()),
        (GgmlType::Q6_K, q6.bytes()),
        (GgmlType::F32, f32w.bytes()),
    ];
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let (p1, p3) = (pool(1), pool(3));
    for kt in available() {
        for (ty, data) in cases {
            let w = Weights::new(ty, data, m, k).unwrap();
            for n in [1, 3] {
                let x = rng.vec(n * k);
                let a = p1.install(|| run(kt, &w, &x, n));
                let b = p3.install(|| run(kt, &w, &x, n));
                assert_eq!(bits(&a), bits(&b), "{} {ty} n={n}", kt.name());
            }
        }
    }
}

#[test]
fn active_table_is_available() {
    let name = active_name();
    assert!(available().iter().any(|t| t.name() == name), "{name}");
    assert_eq!(Kind::from_name(name).map(|k| k.name()), Some(name));
}

// ---------------------------------------------------------------------------------------------
// Every variant against scalar

/// Random weight bytes for `m` rows of `k`: codes/quants random (I2_S codes 0..2, or 0..3 with
/// `code3`), block scales random finite f16, I2_S tail with a random scale.
fn random_weights(ty: GgmlType, k: usize, m: usize, rng: &mut Rng, code3: bool) -> Aligned {
    let mut bytes: Vec<u8> = (0..ty.tensor_bytes(&[k, m]).unwrap())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let f16_at = |bytes: &mut [u8], off: usize, rng: &mut Rng| {
        let v = f16::from_f32(rng.f32() * 0.1).to_bits().to_le_bytes();
        bytes[off..off + 2].copy_from_slice(&v);
    };
    match ty {
        GgmlType::I2_S => {
            let n4 = k * m / 4;
            for b in &mut bytes[..n4] {
                let mut v = 0u8;
                for g in 0..4 {
                    let c = (rng.next_u64() % if code3 { 4 } else { 3 }) as u8;
                    v |= c << (2 * g);
                }
                *b = v;
            }
            bytes[n4..n4 + 4].copy_from_slice(&(0.5 + rng.f32().abs()).to_le_bytes());
        }
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                c.copy_from_slice(&rng.f32().to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for off in (0..bytes.len()).step_by(2) {
                f16_at(&mut bytes, off, rng);
            }
        }
        _ => {
            // Block types: the f16 scale is the last 2 bytes of each block.
            let bb = ty.block_bytes();
            for off in (bb - 2..bytes.len()).step_by(bb) {
                f16_at(&mut bytes, off, rng);
            }
        }
    }
    Aligned::new(&bytes)
}

/// Activations with a spread of magnitudes and some exact .5 ties after scaling.
fn random_x(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| match rng.next_u64() % 16 {
            0 => 0.0,
            1 => (i % 7) as f32 * 0.5 - 1.5,
            2 => rng.f32() * 100.0,
            _ => rng.f32(),
        })
        .collect()
}

/// Every candidate of `entries` ([`candidates::candidates`]) as a table: scalar with that one
/// entry replaced, so a comparison with scalar tests exactly that candidate. Named
/// "entry=candidate".
fn candidate_tables(entries: &[Entry]) -> Vec<(String, KernelTable)> {
    let mut out = Vec::new();
    for &e in entries {
        for c in candidates::candidates(e) {
            let mut t = *scalar();
            c.apply(&mut t);
            out.push((format!("{c:?}"), t));
        }
    }
    out
}

/// The tables a product of `ty` is compared on: every variant besides scalar, then every
/// candidate of the entries that type uses.
fn variants_for(ty: GgmlType) -> Vec<(String, KernelTable)> {
    let entries: &[Entry] = match ty {
        GgmlType::I2_S => &[Entry::I2sVec, Entry::I2s],
        GgmlType::F16 => &[Entry::F16Ggml],
        GgmlType::Q8_0 => &[Entry::Q8_0],
        GgmlType::Q6_K => &[Entry::Q6K],
        _ => &[],
    };
    let mut v: Vec<(String, KernelTable)> = available()
        .into_iter()
        .filter(|t| t.kind != Kind::Scalar)
        .map(|t| (t.name().to_string(), *t))
        .collect();
    v.extend(candidate_tables(entries));
    v
}

fn compare_variants(ty: GgmlType, shapes: &[(usize, usize)], toks: &[usize], code3: bool) {
    let mut rng = Rng::new(ty.id() as u64 * 31 + shapes.len() as u64);
    let variants = variants_for(ty);
    if variants.is_empty() {
        eprintln!("SKIPPED: no kernel variant besides scalar on this machine");
        return;
    }
    for &(k, m) in shapes {
        let wb = random_weights(ty, k, m, &mut rng, code3);
        let w = Weights::new(ty, wb.bytes(), m, k).unwrap();
        for &n in toks {
            let x = random_x(n * k, &mut rng);
            let want = run(scalar(), &w, &x, n);
            for (name, kt) in &variants {
                let got = run(kt, &w, &x, n);
                if bits(&got) != bits(&want) {
                    let i = (0..want.len())
                        .find(|&i| got[i].to_bits() != want[i].to_bits())
                        .unwrap();
                    panic!(
                        "{name} {ty} k={k} m={m} n={n}: y[{i}] = {} but scalar gives {}",
                        got[i], want[i]
                    );
                }
            }
        }
    }
}

/// The 2B-4T shapes: (K, M) for q/o, k/v, gate/up, down.
const MODEL_SHAPES: [(usize, usize); 4] = [(2560, 2560), (2560, 640), (2560, 6912), (6912, 2560)];

#[test]
fn variants_match_scalar_i2s() {
    let small = [
        (128, 1),
        (128, 2),
        (256, 3),
        (384, 5),
        (512, 17),
        (1024, 33),
    ];
    compare_variants(GgmlType::I2_S, &small, &[1, 2, 3, 4, 5, 6, 7, 8, 9], false);
    compare_variants(GgmlType::I2_S, &small[..4], &[1, 5], true);
    compare_variants(GgmlType::I2_S, &MODEL_SHAPES, &[1, 5], false);
}

#[test]
fn variants_match_scalar_q8k_types() {
    let small = [(256, 1), (256, 2), (512, 3), (768, 5), (1280, 9)];
    for ty in [GgmlType::TQ2_0, GgmlType::TQ1_0, GgmlType::Q6_K] {
        compare_variants(ty, &small, &[1, 2, 3, 4, 5, 7], false);
        compare_variants(ty, &[(2560, 640), (6912, 64)], &[1, 3], false);
    }
}

#[test]
fn variants_match_scalar_q8_0() {
    compare_variants(
        GgmlType::Q8_0,
        &[
            (32, 1),
            (64, 3),
            (96, 5),
            (2560, 40),
            (2560, 41),
            (16416, 3),
        ],
        &[1, 2, 5],
        false,
    );
}

#[test]
fn q8_0_kernels_exact_for_every_int8() {
    // Activation blocks holding -128 (never produced by quantize_row_q8_0, but the kernel entry
    // accepts any block) against weights holding -128 and 127: every variant equals scalar.
    let mut rng = Rng::new(808);
    let (k, rows) = (256usize, 5usize);
    let nb = k / 32;
    let block = |rng: &mut Rng, extreme: bool| {
        let mut qs = [0i8; 32];
        for (i, q) in qs.iter_mut().enumerate() {
            *q = if extreme && i % 3 == 0 {
                if i % 2 == 0 {
                    i8::MIN
                } else {
                    i8::MAX
                }
            } else {
                (rng.next_u64() & 0xff) as u8 as i8
            };
        }
        BlockQ8_0 {
            d: half::f16::from_f32(0.01 + (rng.next_u64() % 7) as f32 * 0.003).to_bits(),
            qs,
        }
    };
    let w: Vec<BlockQ8_0> = (0..rows * nb).map(|_| block(&mut rng, true)).collect();
    let x: Vec<BlockQ8_0> = (0..nb).map(|_| block(&mut rng, true)).collect();
    let d = MatDims { k, rows, n_tok: 1 };
    let mut want = vec![0f32; rows];
    (scalar().q8_0)(&w, &x, d, &mut want);
    for (name, kt) in variants_for(GgmlType::Q8_0) {
        let mut got = vec![0f32; rows];
        (kt.q8_0)(&w, &x, d, &mut got);
        assert_eq!(bits(&got), bits(&want), "{name}");
    }
}

#[test]
fn variants_match_scalar_float_types() {
    let shapes: Vec<(usize, usize)> = [1usize, 7, 8, 16, 31, 32, 33, 63, 64, 100, 256, 2560, 8200]
        .iter()
        .flat_map(|&k| [(k, 1), (k, 3), (k, 5), (k, 6)])
        .collect();
    for ty in [GgmlType::F32, GgmlType::F16] {
        compare_variants(ty, &shapes, &[1, 2, 3, 5], false);
        compare_variants(ty, &[(2560, 2560)], &[1, 2], false);
    }
}

#[test]
fn variants_match_scalar_f16_head() {
    // The 2B-4T tied lm_head: 128256 x 2560 F16, one token (x rounded to f16, ggml vec_dot).
    if std::env::var("BITNET_SKIP_BIG_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: BITNET_SKIP_BIG_TESTS=1");
        return;
    }
    compare_variants(GgmlType::F16, &[(2560, 128256)], &[1], false);
}

#[test]
fn variant_dots_match_scalar() {
    let mut rng = Rng::new(99);
    let s = scalar();
    for kt in available() {
        for n in (0..70).chain([127, 128, 129, 2560]) {
            let a = random_x(n, &mut rng);
            let b = random_x(n, &mut rng);
            let ah: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
            let bh: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
            let name = kt.name();
            assert_eq!(
                (kt.dot_f32_ggml)(&a, &b).to_bits(),
                (s.dot_f32_ggml)(&a, &b).to_bits(),
                "{name} f32 ggml n={n}"
            );
            assert_eq!(
                (kt.dot_f16_ggml)(&ah, &bh).to_bits(),
                (s.dot_f16_ggml)(&ah, &bh).to_bits(),
                "{name} f16 ggml n={n}"
            );
            assert_eq!(
                (kt.dot_f32_tinyblas)(&a, &b).to_bits(),
                (s.dot_f32_tinyblas)(&a, &b).to_bits(),
                "{name} f32 tinyblas n={n}"
            );
            assert_eq!(
                (kt.dot_f16_f32_tinyblas)(&ah, &b).to_bits(),
                (s.dot_f16_f32_tinyblas)(&ah, &b).to_bits(),
                "{name} f16xf32 tinyblas n={n}"
            );
        }
    }
}

#[test]
fn variant_activation_quantizers_match_scalar() {
    let mut rng = Rng::new(1234);
    let mut rows: Vec<Vec<f32>> = vec![
        vec![],
        vec![0.0; 40],
        vec![1e-7; 33],
        vec![f32::NAN, 1.0, 2.0],
        vec![1.0, f32::INFINITY, -2.0],
        // Exact ties: max 127 -> s = 1, x*s = k + 0.5.
        (0..64)
            .map(|i| if i == 0 { 127.0 } else { (i % 9) as f32 - 4.5 })
            .collect(),
    ];
    for n in [1usize, 7, 31, 32, 33, 100, 256, 2560, 6912] {
        rows.push(random_x(n, &mut rng));
    }
    for kt in available() {
        for x in &rows {
            let mut q1 = vec![0i8; x.len()];
            let mut q2 = vec![0i8; x.len()];
            let a = (kt.quantize_i8)(x, &mut q1);
            let b = act::quantize_row_i8(x, &mut q2);
            assert_eq!(
                (a.0.to_bits(), a.1),
                (b.0.to_bits(), b.1),
                "{} i8 n={}",
                kt.name(),
                x.len()
            );
            assert_eq!(q1, q2, "{} i8 n={}", kt.name(), x.len());
        }
        let mut blocks: Vec<Vec<f32>> = (0..6).map(|_| random_x(512, &mut rng)).collect();
        let mut ties = vec![0f32; 256];
        ties[5] = -3.0;
        ties[9] = 3.0; // same |x| later: the first (negative) one wins
        ties[200] = 3.0 / 127.0 * 2.5; // scales to an exact-ish tie
        blocks.push(ties);
        blocks.push(vec![0.0; 256]);
        let mut nan = random_x(256, &mut rng);
        nan[17] = f32::NAN;
        blocks.push(nan);
        for x in &blocks {
            let nb = x.len() / 256;
            let mut y1 = vec![Q8K_ZERO; nb];
            let mut y2 = vec![Q8K_ZERO; nb];
            (kt.quantize_q8k)(x, &mut y1);
            act::quantize_row_q8k(x, &mut y2);
            for (a, b) in y1.iter().zip(&y2) {
                assert_eq!(a.d.to_bits(), b.d.to_bits(), "{} q8k d", kt.name());
                assert_eq!(a.qs, b.qs, "{} q8k qs", kt.name());
                assert_eq!(a.bsums, b.bsums, "{} q8k bsums", kt.name());
            }
        }
    }
}

#[test]
fn every_f16_value_converts_exactly_in_every_variant() {
    // A one-element f16 dot with 1.0 is the operand itself (the product is exact), so this
    // checks each variant's f16 -> f32 conversion on all 65536 bit patterns, subnormals,
    // infinities and NaNs included.
    let one = [f16::ONE];
    for kt in available() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            let got = (kt.dot_f16_ggml)(&[h], &one);
            // The sum starts at +0, so -0 comes out as +0 (as in the reference).
            let want = h.to_f32() + 0.0;
            if want.is_nan() {
                assert!(got.is_nan(), "{} {bits:#06x}", kt.name());
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{} {bits:#06x}", kt.name());
            }
            // The same through the tinyBLAS path (f16 x f32, also all-tail here).
            let got = (kt.dot_f16_f32_tinyblas)(&[h], &[1.0]);
            if !want.is_nan() {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{} tinyblas {bits:#06x}",
                    kt.name()
                );
            }
        }
    }
}

#[test]
fn strided_dots_match_scalar() {
    // Attention's strided rows: K-cache heads (n = 128, stride = a K row) and V rows (n = cells,
    // stride = cache size), odd row counts, lengths off the 8/32 grid and past the stack widening.
    let mut rng = Rng::new(4242);
    let s = scalar();
    for &(n, stride, rows) in &[
        (128usize, 640usize, 37usize),
        (128, 128, 2),
        (5, 9, 3),
        (33, 40, 1),
        (544, 2048, 128),
        (8200, 8200, 3),
        (64, 64, 0),
    ] {
        let len = if rows == 0 {
            0
        } else {
            (rows - 1) * stride + n
        };
        let w: Vec<f16> = (0..len).map(|_| f16::from_f32(rng.f32())).collect();
        let xh: Vec<f16> = (0..n).map(|_| f16::from_f32(rng.f32())).collect();
        let xf: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
        let mut want_g = vec![0f32; rows];
        let mut want_t = vec![0f32; rows];
        (s.f16_ggml_strided)(&w, stride, &xh, &mut want_g);
        (s.f16_tinyblas_strided)(&w, stride, &xf, &mut want_t);
        for (j, (g, t)) in want_g.iter().zip(&want_t).enumerate() {
            let row = &w[j * stride..j * stride + n];
            assert_eq!(g.to_bits(), (s.dot_f16_ggml)(row, &xh).to_bits());
            assert_eq!(t.to_bits(), (s.dot_f16_f32_tinyblas)(row, &xf).to_bits());
        }
        for kt in available() {
            let mut got = vec![0f32; rows];
            (kt.f16_ggml_strided)(&w, stride, &xh, &mut got);
            assert_eq!(
                bits(&got),
                bits(&want_g),
                "{} ggml n={n} rows={rows}",
                kt.name()
            );
            (kt.f16_tinyblas_strided)(&w, stride, &xf, &mut got);
            assert_eq!(
                bits(&got),
                bits(&want_t),
                "{} tinyblas n={n} rows={rows}",
                kt.name()
            );
        }
    }
}

#[test]
fn strided_group_dots_match_scalar() {
    // Single-token attention with the query heads of a KV head together: every (row, x row)
    // output must be the plain `ggml_vec_dot_f16` of that row and that x row, for group sizes
    // on and off the kernels' 4-row blocks, lengths off the 32 grid and degenerate shapes.
    let mut rng = Rng::new(977);
    let s = scalar();
    for &(n, stride, rows, g) in &[
        (128usize, 640usize, 37usize, 4usize),
        (128, 128, 5, 1),
        (128, 640, 9, 2),
        (96, 100, 4, 3),
        (2049, 4096, 7, 4),
        (31, 40, 3, 5),
        (33, 33, 2, 8),
        (256, 300, 7, 8),
        (0, 4, 3, 4),
        (64, 64, 0, 4),
    ] {
        let len = if rows == 0 {
            0
        } else {
            (rows - 1) * stride + n
        };
        let w: Vec<f16> = (0..len).map(|_| f16::from_f32(rng.f32())).collect();
        let xh: Vec<f16> = (0..g * n).map(|_| f16::from_f32(rng.f32())).collect();
        let xw: Vec<f32> = xh.iter().map(|h| h.to_f32()).collect();
        let mut want = vec![0f32; rows * g];
        (s.f16_ggml_strided_group)(&w, stride, &xw, g, &mut want);
        for j in 0..rows {
            let row = &w[j * stride..j * stride + n];
            for t in 0..g {
                let plain = (s.dot_f16_ggml)(row, &xh[t * n..(t + 1) * n]);
                assert_eq!(want[j * g + t].to_bits(), plain.to_bits(), "n={n} g={g}");
            }
        }
        let tables = available()
            .into_iter()
            .map(|t| (t.name().to_string(), *t))
            .chain(candidate_tables(&[Entry::F16Group]));
        for (name, kt) in tables {
            let mut got = vec![f32::NAN; rows * g];
            (kt.f16_ggml_strided_group)(&w, stride, &xw, g, &mut got);
            assert_eq!(bits(&got), bits(&want), "{name} n={n} rows={rows} g={g}");
        }
    }
}

#[test]
#[should_panic(expected = "not 4 whole rows")]
fn strided_group_rejects_partial_rows() {
    let w = vec![f16::ONE; 64];
    let mut out = vec![0f32; 8];
    (scalar().f16_ggml_strided_group)(&w, 32, &[1.0; 30], 4, &mut out);
}

#[test]
fn per_token_order_is_batch_invariant() {
    // matmul_per_token (batch-invariant serving): every token's outputs are the bits of a
    // one-token call, for F16 and F32, with token counts on and off the grouped kernels' 4, row
    // counts on and off the 64-row tiles and 4-row blocks, lengths on and off the 8/32 grids,
    // in one thread and split over a pool.
    let mut rng = Rng::new(4242);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for &(m, k) in &[
        (3usize, 40usize),
        (70, 64),
        (133, 256),
        (257, 100),
        (300, 2560),
    ] {
        let wf = rng.vec(m * k);
        let wh: Vec<f16> = wf.iter().map(|&v| f16::from_f32(v)).collect();
        let f32w = Aligned::new(as_bytes(&wf));
        let f16w = Aligned::new(as_bytes(&wh));
        let w32 = Weights::new(GgmlType::F32, f32w.bytes(), m, k).unwrap();
        let w16 = Weights::new(GgmlType::F16, f16w.bytes(), m, k).unwrap();
        for n in [1usize, 2, 5, 8] {
            let x = rng.vec(n * k);
            for kt in available() {
                for w in [&w32, &w16] {
                    let mut one = vec![0f32; m];
                    let mut ks = Scratch::new();
                    for threads in [false, true] {
                        let mut got = vec![f32::NAN; n * m];
                        let mut call =
                            || matmul_per_token(kt, w, &x, n, &mut got, &mut ks).unwrap();
                        if threads {
                            pool.install(call);
                        } else {
                            call();
                        }
                        for t in 0..n {
                            kt.matmul(w, &x[t * k..(t + 1) * k], 1, &mut one, &mut ks)
                                .unwrap();
                            assert_eq!(
                                bits(&got[t * m..(t + 1) * m]),
                                bits(&one),
                                "{} {} m{m} k{k} n{n} t{t} pool={threads}",
                                kt.name(),
                                w.ty
                            );
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Candidates

#[test]
fn candidates_cover_every_simd_table_and_are_named_once() {
    let simd: Vec<&KernelTable> = [Kind::Avx512Vnni, Kind::Avx2, Kind::NeonDotprod, Kind::Neon]
        .into_iter()
        .filter_map(table)
        .collect();
    for e in Entry::ALL {
        let cands = candidates::candidates(e);
        // The default table is composed from candidates: each SIMD table's entry is one, so a
        // description can always name what runs.
        for t in &simd {
            assert!(
                cands.iter().any(|c| c.addr() == e.addr(t)),
                "{}'s {} is not a candidate",
                t.name(),
                e.name()
            );
        }
        for (i, c) in cands.iter().enumerate() {
            assert_eq!(c.entry(), e);
            assert!(
                cands[..i]
                    .iter()
                    .all(|d| d.name() != c.name() && d.addr() != c.addr()),
                "{c:?} twice"
            );
            let mut t = *scalar();
            c.apply(&mut t);
            assert_eq!(e.addr(&t), c.addr(), "{c:?} applies to its entry");
            // Found by name, as BITNET_KERNEL_<ENTRY> does.
            assert_eq!(candidates::find(e, c.name()).unwrap().addr(), c.addr());
        }
        assert_eq!(Entry::from_name(e.name()), Some(e));
        assert!(e.env_var().starts_with("BITNET_KERNEL_"));
        // A variant name picks that variant's entry.
        let s = candidates::find(e, "scalar").unwrap();
        assert_eq!(s.addr(), e.addr(scalar()));
        let err = candidates::find(e, "no-such-kernel").unwrap_err();
        assert!(
            err.contains(&e.env_var()) && err.contains("scalar"),
            "{err}"
        );
    }
    assert_eq!(
        Entry::F16Group.env_var(),
        "BITNET_KERNEL_F16_GGML_STRIDED_GROUP"
    );
    #[cfg(target_arch = "x86_64")]
    if table(Kind::Avx512Vnni).is_some() {
        // The decode matvec has 1, 2 and 4-row candidates, on 256- and 512-bit lanes.
        let names: Vec<&str> = candidates::candidates(Entry::I2sVec)
            .iter()
            .map(|c| c.name())
            .collect();
        for want in [
            "avx2-ymm-1row-pf3k",
            "avx2-ymm-2row-pf3k",
            "avx512-zmm-1row-pf3k",
            "avx512-zmm-4row-pf8k",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}

#[test]
fn a_forced_variant_calibrates_among_what_its_cpu_would_have() {
    for t in available() {
        let kind = t.kind;
        let cands = candidates::all_for(kind);
        // Every candidate needs no feature the variant lacks ...
        for c in &cands {
            assert!(kind.includes(c.kind()), "{c:?} in {}", kind.name());
        }
        // ... and the variant's own entries are among them, so its table is one of the choices.
        for e in Entry::ALL {
            let of_e: Vec<_> = cands.iter().filter(|c| c.entry() == e).collect();
            if of_e.len() >= 2 {
                assert!(
                    of_e.iter().any(|c| c.addr() == e.addr(t)),
                    "{}'s {} is not among its candidates",
                    kind.name(),
                    e.name()
                );
            }
        }
    }
    assert!(Kind::Avx512Vnni.includes(Kind::Avx2) && !Kind::Avx2.includes(Kind::Avx512Vnni));
    assert!(Kind::NeonI8mm.includes(Kind::Neon) && !Kind::Neon.includes(Kind::NeonDotprod));
    assert!(Kind::Avx2.includes(Kind::Scalar) && Kind::Neon.includes(Kind::C));
    #[cfg(target_arch = "x86_64")]
    if table(Kind::Avx512Vnni).is_some() {
        // On an AVX-512 machine BITNET_KERNEL=avx2 chooses among the AVX2 candidates only.
        let avx2 = candidates::all_for(Kind::Avx2);
        assert!(
            avx2.iter().all(|c| c.name().starts_with("avx2")),
            "{avx2:?}"
        );
        assert!(
            avx2.len() > Entry::ALL.len(),
            "avx2 has contested entries: {avx2:?}"
        );
        assert!(candidates::all_for(Kind::Avx512Vnni).len() > avx2.len());
        // Cached apart, beside the automatic choice's file (no cache directory at all where
        // neither BITNET_CACHE_DIR, XDG_CACHE_HOME nor HOME is set, as under wine).
        let (f, auto) = (tune::cache_path_for(Kind::Avx2), tune::cache_path());
        assert_eq!(f.is_some(), auto.is_some());
        if let (Some(f), Some(auto)) = (f, auto) {
            assert!(f.ends_with("kernels-v2-avx2.txt"), "{}", f.display());
            assert_eq!(f.parent(), auto.parent());
        }
    }
}

#[test]
fn forced_candidates_replace_their_entry_and_say_so() {
    let Some(c) = candidates::candidates(Entry::I2sVec).into_iter().last() else {
        eprintln!("SKIPPED: no I2_S matvec candidates on this machine");
        return;
    };
    let (t, how) = candidates::apply_forced(*scalar(), "scalar (x)".into(), &[c]);
    assert_eq!(Entry::I2sVec.addr(&t), c.addr());
    assert_eq!(Entry::I2s.addr(&t), Entry::I2s.addr(scalar()));
    assert_eq!(
        how,
        format!("scalar (x); i2s_vec={} [BITNET_KERNEL_I2S_VEC]", c.name())
    );
    let (_, same) = candidates::apply_forced(*scalar(), "scalar (x)".into(), &[]);
    assert_eq!(same, "scalar (x)");
}

#[test]
fn active_table_is_composed_of_candidates_and_forced_ones() {
    let how = active_description();
    eprintln!("kernels: {how}");
    assert!(!how.is_empty());
    let t = active();
    for e in Entry::ALL {
        let cands = candidates::candidates(e);
        // Unforced, a contested entry of the default table is one of its candidates (the
        // calibration's choice or the base variant's own).
        if cands.len() >= 2 && std::env::var("BITNET_KERNEL").is_err() {
            let forced_elsewhere = std::env::var(e.env_var()).is_ok();
            assert!(
                forced_elsewhere || cands.iter().any(|c| c.addr() == e.addr(t)),
                "{} of the default table is no candidate",
                e.name()
            );
        }
        // `BITNET_KERNEL_<ENTRY>=<name>` (the golden traces run once under each) reaches it.
        if let Some(c) = std::env::var(e.env_var())
            .ok()
            .and_then(|n| candidates::find(e, n.trim()).ok())
        {
            assert_eq!(e.addr(t), c.addr(), "{} not forced", e.name());
            let said = format!("{}={} [{}]", e.name(), c.name(), e.env_var());
            assert!(how.contains(&said), "{how}");
        }
    }
}
