//! Kernel benchmark: `cargo bench --bench kernels` (optionally `-- quick`).
//!
//! For every kernel variant usable here and the BitNet b1.58 2B-4T shapes, the median time of a
//! few runs of `kernels::matmul_with`, as GB/s of weight bytes streamed and GOPS (2*K*M*tokens
//! multiply-adds counted as 2 ops), on 1 and 2 threads; a memory read-bandwidth loop over a
//! 1 GiB buffer for comparison; and the per-call cost of a tiny matmul (dispatch overhead).
//! `-- candidates` runs the library's calibration instead and prints every candidate's rate.
//! The machine is shared: runs are few and short on purpose.

use bitnet::kernels::{self, Kind, Scratch, Weights};
use bitnet::tensor::GgmlType;
use std::hint::black_box;
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Random but valid tensor bytes (finite f16 scales, I2_S codes 0..2), 64-byte aligned.
fn weights(ty: GgmlType, k: usize, m: usize, rng: &mut Rng) -> (Vec<u64>, usize) {
    let n = ty.tensor_bytes(&[k, m]).unwrap();
    let mut buf = vec![0u64; n.div_ceil(8) + 8];
    // SAFETY: u64 storage viewed as bytes, same length and lifetime.
    let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, n) };
    for b in bytes.iter_mut() {
        *b = match ty {
            GgmlType::I2_S => {
                let c = rng.next();
                (0..4).fold(0u8, |v, g| v | (((c >> (8 * g)) % 3) as u8) << (2 * g))
            }
            _ => rng.next() as u8,
        };
    }
    let h = |v: f32| half::f16::from_f32(v).to_le_bytes();
    match ty {
        GgmlType::F16 => {
            for c in bytes.chunks_exact_mut(2) {
                c.copy_from_slice(&h(rng.f32()));
            }
        }
        GgmlType::I2_S => {
            let n4 = k * m / 4;
            bytes[n4..n4 + 4].copy_from_slice(&0.7f32.to_le_bytes());
        }
        _ => {
            let bb = ty.block_bytes();
            for off in (bb - 2..n).step_by(bb) {
                bytes[off..off + 2].copy_from_slice(&h(rng.f32() * 0.01));
            }
        }
    }
    (buf, n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median and minimum seconds of `runs` timed calls after one warm-up call.
fn time_runs2(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    f(); // warm-up
    let v: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    (median(v), min)
}

fn time_runs(runs: usize, f: impl FnMut()) -> f64 {
    time_runs2(runs, f).0
}

/// GB/s of a read-only pass over `buf` (sum of u64s, 4 independent chains), split over the pool.
fn read_bandwidth(buf: &[u64], pool: &rayon::ThreadPool, runs: usize) -> f64 {
    use rayon::prelude::*;
    let t = time_runs(runs, || {
        let s: u64 = pool.install(|| {
            buf.par_chunks(buf.len() / pool.current_num_threads())
                .map(|c| {
                    let mut a = [0u64; 4];
                    for q in c.chunks_exact(4) {
                        for i in 0..4 {
                            a[i] = a[i].wrapping_add(q[i]);
                        }
                    }
                    a.iter().fold(0, |x, y| x ^ y)
                })
                .reduce(|| 0, |x, y| x ^ y)
        });
        black_box(s);
    });
    (buf.len() * 8) as f64 / t / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let quick = args.iter().any(|a| a == "quick");
    // `candidates`: the calibration of the library (every candidate of every contested entry,
    // 1 thread and all threads, from DRAM) with its full report, nothing else.
    if args.iter().any(|a| a == "candidates") {
        return candidates();
    }
    // `tune`: small prompt-shaped products, many runs, for comparing kernel changes on a busy
    // machine (the best of many short runs is stable where a median is not).
    let tune = args.iter().any(|a| a == "tune");
    // Any other argument filters the matmul table by substring of "kernel type label".
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| *a != "quick" && *a != "tune")
        .collect();
    let wanted = |s: &str| filters.is_empty() || filters.iter().any(|f| s.contains(f.as_str()));
    let runs = if tune {
        41
    } else if quick {
        3
    } else {
        7
    };
    let pools: Vec<(usize, rayon::ThreadPool)> = [1usize, 2]
        .into_iter()
        .map(|n| {
            (
                n,
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap(),
            )
        })
        .collect();
    println!("active kernel set: {}", kernels::active_name());

    // Memory read bandwidth over 1 GiB.
    if filters.is_empty() || wanted("membw") {
        let buf: Vec<u64> = (0..(1usize << 27)).map(|i| i as u64).collect();
        for (n, pool) in &pools {
            println!(
                "memory read bandwidth, 1 GiB, {n} thread(s): {:.1} GB/s",
                read_bandwidth(&buf, pool, runs.min(5))
            );
        }
        drop(buf);
    }

    let mut rng = Rng(0x1234_5678_9abc_def1);
    // (type, K, M, tokens, label)
    let mut cases: Vec<(GgmlType, usize, usize, usize, &str)> = vec![];
    for (k, m, l) in [
        (2560, 2560, "q/o"),
        (2560, 640, "k/v"),
        (2560, 6912, "gate/up"),
        (6912, 2560, "down"),
    ] {
        cases.push((GgmlType::I2_S, k, m, 1, l));
    }
    cases.push((GgmlType::I2_S, 2560, 6912, 8, "gate/up"));
    cases.push((GgmlType::I2_S, 2560, 6912, 64, "gate/up"));
    cases.push((GgmlType::I2_S, 6912, 2560, 64, "down"));
    cases.push((GgmlType::TQ2_0, 2560, 6912, 64, "gate/up"));
    cases.push((GgmlType::TQ2_0, 2560, 6912, 1, "gate/up"));
    cases.push((GgmlType::TQ1_0, 2560, 6912, 1, "gate/up"));
    cases.push((GgmlType::Q6_K, 2560, 128256, 1, "head"));
    cases.push((GgmlType::Q8_0, 2560, 128256, 1, "head"));
    cases.push((GgmlType::F16, 2560, 128256, 1, "head"));
    cases.push((GgmlType::F32, 2560, 2560, 8, "tinyBLAS"));
    if tune {
        cases = vec![
            (GgmlType::I2_S, 2560, 1024, 64, "tune"),
            (GgmlType::I2_S, 6912, 512, 64, "tune"),
            (GgmlType::I2_S, 2560, 1024, 1, "tune"),
        ];
    }

    println!(
        "\n{:<7} {:<6} {:>6} {:>7} {:>4} {:>3} {:>10} {:>8} {:>8}",
        "kernel", "type", "K", "M", "tok", "thr", "median", "GB/s", "GOPS"
    );
    for kind in Kind::ALL {
        let Some(kt) = kernels::table(kind) else {
            println!("{:<7} not available on this machine", kind.name());
            continue;
        };
        for &(ty, k, m, n, label) in &cases {
            // The scalar reference is the truth, not a contender: only a small sample of it.
            if kind == Kind::Scalar && (n > 8 || m > 100_000) {
                continue;
            }
            if !wanted(&format!("{} {} {label}", kind.name(), ty.name())) {
                continue;
            }
            let (wbuf, nbytes) = weights(ty, k, m, &mut rng);
            // SAFETY: the u64 buffer holds at least nbytes bytes.
            let data = unsafe { std::slice::from_raw_parts(wbuf.as_ptr() as *const u8, nbytes) };
            let w = Weights::new(ty, data, m, k).unwrap();
            let x: Vec<f32> = (0..n * k).map(|_| rng.f32()).collect();
            let mut y = vec![0f32; n * m];
            let mut scratch = Scratch::new();
            for (threads, pool) in &pools {
                let r = if kind == Kind::Scalar { 1 } else { runs };
                let (t, best) = time_runs2(r, || {
                    pool.install(|| {
                        kernels::matmul_with(kt, &w, &x, n, &mut y, &mut scratch).unwrap()
                    });
                    black_box(&y);
                });
                println!(
                    "{:<7} {:<6} {:>6} {:>7} {:>4} {:>3} {:>8.3}ms {:>8.2} {:>8.2}   (best {:.2} GB/s)  {label}",
                    kind.name(),
                    ty.name(),
                    k,
                    m,
                    n,
                    threads,
                    t * 1e3,
                    nbytes as f64 / t / 1e9,
                    2.0 * (k * m * n) as f64 / t / 1e9,
                    nbytes as f64 / best / 1e9
                );
            }
        }
    }

    // Weights streamed from DRAM, as in a real decode step: enough copies of each matrix to
    // exceed the L3 (256 MiB in all), one call per copy, median over a few sweeps.
    if wanted("dram") || filters.is_empty() {
        println!();
        for kind in Kind::ALL {
            let Some(kt) = kernels::table(kind) else {
                continue;
            };
            if kind == Kind::Scalar {
                continue;
            }
            for (ty, k, m, label) in [
                (GgmlType::I2_S, 2560usize, 2560usize, "q/o"),
                (GgmlType::I2_S, 2560, 6912, "gate/up"),
                (GgmlType::I2_S, 6912, 2560, "down"),
                (GgmlType::TQ2_0, 2560, 6912, "gate/up"),
                (GgmlType::F16, 2560, 2560, "f16"),
            ] {
                let one = ty.tensor_bytes(&[k, m]).unwrap();
                let copies = (256usize << 20).div_ceil(one);
                let mats: Vec<(Vec<u64>, usize)> =
                    (0..copies).map(|_| weights(ty, k, m, &mut rng)).collect();
                let x: Vec<f32> = (0..k).map(|_| rng.f32()).collect();
                let mut y = vec![0f32; m];
                let mut scratch = Scratch::new();
                for (threads, pool) in &pools {
                    let (t, best) = time_runs2(runs.min(5), || {
                        pool.install(|| {
                            for (wbuf, nbytes) in &mats {
                                // SAFETY: the u64 buffer holds at least nbytes bytes.
                                let data = unsafe {
                                    std::slice::from_raw_parts(wbuf.as_ptr() as *const u8, *nbytes)
                                };
                                let w = Weights::new(ty, data, m, k).unwrap();
                                kernels::matmul_with(kt, &w, &x, 1, &mut y, &mut scratch).unwrap();
                            }
                        });
                        black_box(&y);
                    });
                    let bytes = (one * copies) as f64;
                    println!(
                        "from DRAM: {:<5} {:<6} {k}x{m} ({label}) x{copies}, {threads} thread(s): {:.2} GB/s median, {:.2} best, {:.1} us/call",
                        kind.name(),
                        ty.name(),
                        bytes / t / 1e9,
                        bytes / best / 1e9,
                        t / copies as f64 * 1e6
                    );
                }
            }
        }
    }
    if wanted("attention") {
        attention_at_depth(&pools, if quick { 5 } else { 15 }, &mut rng);
    }
    if !filters.is_empty() {
        return;
    }
    // Dispatch overhead: per-call time of matvecs from tiny to a real one, with the loop inside
    // one `install` (how a forward pass should call it) and with an `install` per call.
    println!();
    let kt = kernels::active();
    for (k, m) in [(128usize, 64usize), (2560, 64), (2560, 640), (2560, 2560)] {
        let (wbuf, nbytes) = weights(GgmlType::I2_S, k, m, &mut rng);
        // SAFETY: as above.
        let data = unsafe { std::slice::from_raw_parts(wbuf.as_ptr() as *const u8, nbytes) };
        let w = Weights::new(GgmlType::I2_S, data, m, k).unwrap();
        let x: Vec<f32> = (0..k).map(|_| rng.f32()).collect();
        let mut y = vec![0f32; m];
        let mut scratch = Scratch::new();
        let reps = (20_000_000 / (k * m)).clamp(20, 5000);
        for (threads, pool) in &pools {
            let inside = time_runs(3, || {
                pool.install(|| {
                    for _ in 0..reps {
                        kernels::matmul_with(kt, &w, &x, 1, &mut y, &mut scratch).unwrap();
                    }
                })
            }) / reps as f64;
            let per_call = time_runs(3, || {
                for _ in 0..reps {
                    pool.install(|| {
                        kernels::matmul_with(kt, &w, &x, 1, &mut y, &mut scratch).unwrap()
                    });
                }
            }) / reps as f64;
            println!(
                "I2_S {k}x{m} matvec ({}), {threads} thread(s): {:.2} us/call in one install, {:.2} us/call with install per call",
                kt.name(),
                inside * 1e6,
                per_call * 1e6
            );
        }
    }
    // The bare cost of a rayon fork-join over 2 chunks of no work.
    for (threads, pool) in &pools {
        use rayon::prelude::*;
        let mut v = [0u8; 2];
        let reps = 20000;
        let t = time_runs(3, || {
            pool.install(|| {
                for _ in 0..reps {
                    v.par_chunks_mut(1)
                        .for_each(|c| c[0] = c[0].wrapping_add(1));
                }
            })
        }) / reps as f64;
        println!(
            "rayon par_chunks_mut over 2 empty chunks, {threads} thread(s): {:.2} us",
            t * 1e6
        );
    }
}

/// `cargo bench --bench kernels -- candidates`: what `kernels::active()` measures on first use,
/// with every candidate's rate printed (the cached file keeps the same lines as comments).
fn candidates() {
    let base = *kernels::available()
        .last()
        .expect("scalar is always available");
    let all = kernels::candidates::all();
    let t = Instant::now();
    let buf = kernels::tune::DramBuffer::new();
    let fill = t.elapsed();
    let cal = kernels::tune::calibrate(base, &all, &buf, 6912, std::time::Duration::from_secs(600));
    println!(
        "calibration over {} candidates, {} MiB buffer (filled in {:.0} ms), {:.0} ms in all",
        all.len(),
        buf.size_bytes() >> 20,
        fill.as_secs_f64() * 1e3,
        t.elapsed().as_secs_f64() * 1e3
    );
    for l in &cal.report {
        println!("{l}");
    }
    println!("chosen: {}", cal.summary(&[]));
}

/// Single-token attention's two products at depth 2048 on the 2B-4T shape (30 layers, 5 KV
/// heads of 128, 4 query heads per KV head), each layer's cache its own buffer (157 MB in all,
/// so it streams from DRAM as in decode), for every candidate of `f16_ggml_strided_group`:
/// Q·K over the strided K rows, cell-major as `attention_token` runs it, and P·V over the
/// cell-contiguous V rows. The candidates take turns, round after round, so a
/// noisy neighbour hits them alike; per token: the best and the median ms of the 30 layers.
fn attention_at_depth(pools: &[(usize, rayon::ThreadPool)], rounds: usize, rng: &mut Rng) {
    use bitnet::kernels::candidates::{self, Entry};
    use half::f16;
    use rayon::prelude::*;
    const LAYERS: usize = 30;
    const SPAN: usize = 256;
    let (n_kv_head, g, hd, cells) = (5usize, 4usize, 128usize, 2048usize);
    let width = n_kv_head * hd;
    let v_stride = 4096;
    let rnd16 = |rng: &mut Rng, n: usize| -> Vec<f16> {
        (0..n).map(|_| f16::from_f32(rng.f32())).collect()
    };
    let ks: Vec<Vec<f16>> = (0..LAYERS).map(|_| rnd16(rng, cells * width)).collect();
    let vs: Vec<Vec<f16>> = (0..LAYERS).map(|_| rnd16(rng, width * v_stride)).collect();
    let q: Vec<f32> = (0..n_kv_head * g * hd)
        .map(|_| f16::from_f32(rng.f32()).to_f32())
        .collect();
    let p: Vec<f32> = (0..n_kv_head * g * cells)
        .map(|_| f16::from_f32(rng.f32().abs() / cells as f32).to_f32())
        .collect();
    let mut scores = vec![0f32; n_kv_head * g * cells];
    let mut out = vec![0f32; n_kv_head * g * hd];
    let tables: Vec<(&str, kernels::KernelTable)> = candidates::candidates(Entry::F16Group)
        .into_iter()
        .map(|c| {
            let mut t = *kernels::active();
            c.apply(&mut t);
            (c.name(), t)
        })
        .collect();
    println!();
    for (threads, pool) in pools {
        // [table][QK, PV, QK from L2] -> seconds per round
        let mut times = vec![[Vec::new(), Vec::new(), Vec::new()]; tables.len()];
        for _ in 0..rounds {
            for ((_, kt), tt) in tables.iter().zip(&mut times) {
                let t0 = Instant::now();
                pool.install(|| {
                    for k in &ks {
                        // As `attention_token`: a task per span of cells, every KV head of a
                        // 16-cell block before the next block.
                        scores
                            .par_chunks_mut(n_kv_head * g * SPAN)
                            .enumerate()
                            .for_each(|(i, task)| {
                                for (b, blk) in task.chunks_mut(n_kv_head * g * 16).enumerate() {
                                    let c0 = i * SPAN + b * 16;
                                    for (h, part) in blk.chunks_mut(g * 16).enumerate() {
                                        let qg = &q[h * g * hd..(h + 1) * g * hd];
                                        let keys = &k[c0 * width + h * hd..];
                                        kt.dot_f16_ggml_strided_group(keys, width, qg, g, part);
                                    }
                                }
                            });
                    }
                });
                tt[0].push(t0.elapsed().as_secs_f64());
                black_box(&scores);
                let t0 = Instant::now();
                pool.install(|| {
                    for v in &vs {
                        out.par_chunks_mut(g * 32)
                            .enumerate()
                            .for_each(|(i, part)| {
                                let (h, d0) = (i / (hd / 32), (i % (hd / 32)) * 32);
                                let rows = &v[(h * hd + d0) * v_stride..];
                                let pg = &p[h * g * cells..(h + 1) * g * cells];
                                kt.dot_f16_ggml_strided_group(rows, v_stride, pg, g, part);
                            });
                    }
                });
                tt[1].push(t0.elapsed().as_secs_f64());
                black_box(&out);
                // The kernel's compute alone: 256 keys of one layer (L2-resident), 30x20
                // times, about as many dots as a token's Q·K.
                let t0 = Instant::now();
                for _ in 0..600 {
                    kt.dot_f16_ggml_strided_group(
                        &ks[0],
                        width,
                        &q[..g * hd],
                        g,
                        &mut scores[..g * SPAN],
                    );
                }
                tt[2].push(t0.elapsed().as_secs_f64());
            }
        }
        for ((name, _), [qk, pv, hot]) in tables.iter().zip(times) {
            let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min) * 1e3;
            let (bq, bp) = (best(&qk), best(&pv));
            println!(
                "attention d{cells} {name:<22} {threads} thread(s): Q·K {bq:5.2} ms (median {:5.2}), P·V {bp:5.2} ms (median {:5.2}), best sum {:5.2} ms/token; Q·K from L2 {:5.2} ms",
                median(qk) * 1e3,
                median(pv) * 1e3,
                bq + bp,
                best(&hot)
            );
        }
    }
}
