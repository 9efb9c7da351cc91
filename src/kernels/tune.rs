//! Measuring the running machine: its memory read bandwidth (the bound on decode speed) and,
//! in [`calibrate`], which of the bit-exact kernel candidates streams weights
//! fastest on it.
//!
//! Decode reads every weight once per token, so it can go no faster than
//! `read bandwidth / bytes per token`. Which kernel reaches that bound differs between CPUs of
//! the same ISA (an AVX-512 matvec tuned on one Xeon streamed half the bandwidth of the AVX2 one
//! on a Zen 4 EPYC), so the choice is measured here, on buffers larger than the last-level cache.

use super::{KernelTable, Scratch, Weights};
use crate::tensor::GgmlType;
use std::time::Instant;

/// Bytes of the largest data cache this CPU reports (Linux sysfs), if known.
pub fn last_level_cache_bytes() -> Option<usize> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut best: Option<(u32, usize)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        if kind.trim() == "Instruction" {
            continue;
        }
        let (Ok(level), Some(bytes)) = (level.trim().parse::<u32>(), parse_cache_size(&size))
        else {
            continue;
        };
        if best.is_none_or(|(l, _)| level > l) {
            best = Some((level, bytes));
        }
    }
    best.map(|(_, b)| b)
}

/// sysfs cache sizes: "32K", "2048K", "32M".
fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().map(|n| n * mul)
}

/// Size of a buffer that streams from DRAM rather than from cache: twice the last-level cache,
/// at least 64 MiB and at most 1 GiB (a VM may report its host's whole L3).
pub fn dram_buffer_bytes() -> usize {
    let llc = last_level_cache_bytes().unwrap_or(32 << 20);
    (2 * llc).clamp(64 << 20, 1 << 30)
}

/// The machine's memory read bandwidth in GB/s (1e9 bytes/s) with `threads` threads, each
/// streaming its own part of a [`dram_buffer_bytes`] buffer with wide loads: the best of
/// `passes` passes after one untimed pass. This is what a decode step can at most read.
pub fn read_bandwidth(threads: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = dram_buffer_bytes() / 8;
    // Non-zero contents: a zero page may be backed by the shared zero page and never hit DRAM.
    let buf: Vec<u64> = (0..words as u64).collect();
    let chunk = words.div_ceil(threads);
    let mut best = 0.0f64;
    for pass in 0..=passes.max(1) {
        let t = Instant::now();
        let sums: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || read_all(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sums);
        if pass > 0 && secs > 0.0 {
            best = best.max((words * 8) as f64 / secs / 1e9);
        }
    }
    best
}

/// Reads every word of `v` and returns a value depending on all of them (so the loads stay).
fn read_all(v: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked just above).
        return unsafe { read_all_avx2(v) };
    }
    read_all_portable(v)
}

fn read_all_portable(v: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a ^= x;
        }
    }
    let tail = chunks.remainder().iter().fold(0, |a, x| a ^ x);
    acc.iter().fold(tail, |a, x| a ^ x)
}

/// Four independent 256-bit load streams per cache line pair: the widest loop every AVX2
/// kernel could run, so its rate is the ceiling for theirs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn read_all_avx2(v: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut chunks = v.chunks_exact(16);
    for c in &mut chunks {
        let p = c.as_ptr() as *const __m256i;
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: `c` holds 16 u64 = 4 x 32 bytes; loadu needs no alignment.
            *a = _mm256_xor_si256(*a, unsafe { _mm256_loadu_si256(p.add(j)) });
        }
    }
    let x = _mm256_xor_si256(
        _mm256_xor_si256(acc[0], acc[1]),
        _mm256_xor_si256(acc[2], acc[3]),
    );
    let mut lanes = [0u64; 4];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, x) };
    lanes
        .iter()
        .fold(read_all_portable(chunks.remainder()), |a, l| a ^ l)
}

// ---------------------------------------------------------------------------------------------
// Calibration: which candidate of each contested table entry is fastest here

/// A table entry whose candidates (the same entry of every usable SIMD table, all bit-exact
/// with scalar) compete on this machine, with the product it is timed on: the 2B-4T shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// I2_S x 1 token: decode's layers, bound by memory bandwidth.
    I2sVec,
    /// I2_S x 128 tokens: prompt processing, bound by integer throughput.
    I2sGemm,
    /// F16 x 1 token: the lm_head of decode as the file has it.
    F16Vec,
    /// Q8_0 x 1 token: the lm_head with `--head-q8`.
    Q8_0Vec,
    /// Q6_K x 1 token: the lm_head of files with a Q6_K embedding.
    Q6KVec,
}

impl Entry {
    const ALL: [Entry; 5] = [
        Entry::I2sVec,
        Entry::I2sGemm,
        Entry::F16Vec,
        Entry::Q8_0Vec,
        Entry::Q6KVec,
    ];

    fn name(self) -> &'static str {
        match self {
            Entry::I2sVec => "i2s_vec",
            Entry::I2sGemm => "i2s",
            Entry::F16Vec => "f16_ggml",
            Entry::Q8_0Vec => "q8_0",
            Entry::Q6KVec => "q6_k",
        }
    }

    /// The entry's function as an address: two tables with the same address share the kernel.
    fn addr(self, t: &KernelTable) -> usize {
        match self {
            Entry::I2sVec => t.i2s_vec as usize,
            Entry::I2sGemm => t.i2s as usize,
            Entry::F16Vec => t.f16_ggml as usize,
            Entry::Q8_0Vec => t.q8_0 as usize,
            Entry::Q6KVec => t.q6_k as usize,
        }
    }

    /// Copies this entry of `src` into `dst`.
    fn take(self, dst: &mut KernelTable, src: &KernelTable) {
        match self {
            Entry::I2sVec => dst.i2s_vec = src.i2s_vec,
            Entry::I2sGemm => dst.i2s = src.i2s,
            Entry::F16Vec => dst.f16_ggml = src.f16_ggml,
            Entry::Q8_0Vec => dst.q8_0 = src.q8_0,
            Entry::Q6KVec => dst.q6_k = src.q6_k,
        }
    }

    /// Weight type, tokens, and whether the weights must stream from DRAM (matvecs) or may sit
    /// in cache (the multi-token product, compute-bound).
    fn problem(self) -> (GgmlType, usize, bool) {
        match self {
            Entry::I2sVec => (GgmlType::I2_S, 1, true),
            Entry::I2sGemm => (GgmlType::I2_S, 128, false),
            Entry::F16Vec => (GgmlType::F16, 1, true),
            Entry::Q8_0Vec => (GgmlType::Q8_0, 1, true),
            Entry::Q6KVec => (GgmlType::Q6_K, 1, true),
        }
    }
}

/// The inner dimension of every timed product: the 2B-4T model's n_embd.
const CAL_K: usize = 2560;
/// Rows of the compute-bound product: the 2B-4T FFN's n_ff.
const CAL_GEMM_ROWS: usize = 6912;

/// The outcome of a calibration: the composed table's choices and the measured rates.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// `(entry, chosen table name)` for each contested entry.
    pub choices: Vec<(&'static str, &'static str)>,
    /// One line per entry and candidate: rates at each thread count.
    pub report: Vec<String>,
    /// False when the time budget ran out before every entry was measured.
    pub complete: bool,
}

impl Calibration {
    /// "i2s_vec=avx2 i2s=avx512vnni ...".
    pub fn summary(&self) -> String {
        self.choices
            .iter()
            .map(|(e, k)| format!("{e}={k}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `base` with every chosen entry taken from its winner among `candidates`.
    fn compose(&self, base: &KernelTable, candidates: &[&'static KernelTable]) -> KernelTable {
        let mut t = *base;
        for (name, kind) in &self.choices {
            let entry = Entry::ALL.iter().find(|e| e.name() == *name);
            let src = candidates.iter().find(|c| c.name() == *kind);
            if let (Some(e), Some(src)) = (entry, src) {
                e.take(&mut t, src);
            }
        }
        t
    }
}

/// Times every contested entry of `candidates` (one table per variant, all usable here) on the
/// machine and picks, per entry, the candidate with the lowest time summed over 1 thread and
/// all threads, each time relative to the best candidate's. `buffer_bytes` is the weight
/// buffer of the streaming products (use [`dram_buffer_bytes`]), `gemm_rows` the rows of the
/// multi-token product (the 2B-4T FFN's 6912 when the library calibrates itself); `budget` stops the
/// measurement early (the remaining entries keep the first candidate).
pub fn calibrate(
    candidates: &[&'static KernelTable],
    buffer_bytes: usize,
    gemm_rows: usize,
    budget: std::time::Duration,
) -> Calibration {
    let start = Instant::now();
    let mut choices = Vec::new();
    let mut report = Vec::new();
    let Some(first) = candidates.first() else {
        return Calibration {
            choices,
            report,
            complete: true,
        };
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pools = Vec::new();
    for n in if all > 1 { vec![1, all] } else { vec![1] } {
        if let Ok(p) = rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            pools.push((n, p));
        }
    }
    let words = buffer_bytes.max(gemm_rows * CAL_K * 2) / 8;
    // Finite f16 values of magnitude below 1 in every 16-bit lane, varied: valid weights of
    // every type, with no NaN or subnormal slow paths.
    let buf: Vec<u64> = (0..words as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0x3BFF_3BFF_3BFF_3BFF)
        .collect();
    // SAFETY: the u64s are initialized plain data; u8 has no alignment or validity needs.
    let bytes: &[u8] =
        unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, buf.len() * 8) };
    let x: Vec<f32> = (0..128 * CAL_K)
        .map(|i| ((i * 7919 % 2001) as f32 - 1000.0) / 1000.0)
        .collect();
    let mut scratch = Scratch::new();
    let mut complete = true;
    for entry in Entry::ALL {
        let mut distinct: Vec<&'static KernelTable> = Vec::new();
        for c in candidates {
            if !distinct.iter().any(|d| entry.addr(d) == entry.addr(c)) {
                distinct.push(c);
            }
        }
        if distinct.len() < 2 {
            continue;
        }
        if start.elapsed() > budget {
            complete = false;
            break;
        }
        let (ty, n_tok, stream) = entry.problem();
        let row_bytes = ty.row_bytes(CAL_K).unwrap_or(CAL_K);
        let rows = if stream {
            (bytes.len() - 64) / row_bytes
        } else {
            gemm_rows
        };
        let Ok(w) = Weights::new(ty, &bytes[..rows * row_bytes + 4], rows, CAL_K) else {
            continue;
        };
        let xs = &x[..n_tok * CAL_K];
        let mut y = vec![0.0f32; rows * n_tok];
        // secs[candidate][pool]
        let mut secs = vec![vec![f64::INFINITY; pools.len()]; distinct.len()];
        for (ci, cand) in distinct.iter().enumerate() {
            let mut t = **first;
            entry.take(&mut t, cand);
            for (pi, (_, pool)) in pools.iter().enumerate() {
                pool.install(|| {
                    // The streaming buffer was written just before and is larger than the
                    // cache: every pass reads DRAM, so no warm-up pass is needed. The product
                    // warms its cache-sized weights first.
                    let warm = usize::from(!stream);
                    for pass in 0..2 + warm {
                        let t0 = Instant::now();
                        if t.matmul(&w, xs, n_tok, &mut y, &mut scratch).is_err() {
                            return;
                        }
                        if pass >= warm {
                            secs[ci][pi] = secs[ci][pi].min(t0.elapsed().as_secs_f64());
                        }
                    }
                });
            }
        }
        let best_per_pool: Vec<f64> = (0..pools.len())
            .map(|pi| secs.iter().map(|s| s[pi]).fold(f64::INFINITY, f64::min))
            .collect();
        let score =
            |s: &Vec<f64>| -> f64 { s.iter().zip(&best_per_pool).map(|(a, b)| a / b).sum() };
        let winner = (0..distinct.len())
            .min_by(|&a, &b| score(&secs[a]).total_cmp(&score(&secs[b])))
            .unwrap_or(0);
        for (ci, cand) in distinct.iter().enumerate() {
            let rates: Vec<String> = pools
                .iter()
                .zip(&secs[ci])
                .map(|((n, _), s)| {
                    if stream {
                        format!("{n}t {:.1} GB/s", (rows * row_bytes) as f64 / s / 1e9)
                    } else {
                        format!(
                            "{n}t {:.0} GOPS",
                            (2 * rows * CAL_K * n_tok) as f64 / s / 1e9
                        )
                    }
                })
                .collect();
            report.push(format!(
                "{} {:<10} {}{}",
                entry.name(),
                cand.name(),
                rates.join(", "),
                if ci == winner { "  <- chosen" } else { "" }
            ));
        }
        choices.push((entry.name(), distinct[winner].name()));
    }
    Calibration {
        choices,
        report,
        complete,
    }
}

/// The CPU's model name (`/proc/cpuinfo`), which keys the calibration cache.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Where the calibration of this machine is kept: `$BITNET_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/bitnet`, else `$HOME/.cache/bitnet`; the file may be deleted at any time
/// (the next process measures again).
pub fn cache_path() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("BITNET_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| std::path::Path::new(&d).join("bitnet"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| std::path::Path::new(&d).join(".cache/bitnet"))
        })?;
    Some(dir.join("kernels-v1.txt"))
}

/// The key a cached calibration must match: the CPU and the candidates it chose among.
fn cache_key(candidates: &[&'static KernelTable]) -> String {
    let names: Vec<&str> = candidates.iter().map(|c| c.name()).collect();
    format!("{} | {}", cpu_model(), names.join(","))
}

/// Reads a cached calibration made with the same key.
fn load_cached(path: &std::path::Path, key: &str) -> Option<Calibration> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    if lines.next()?.strip_prefix("key = ")? != key {
        return None;
    }
    let mut choices = Vec::new();
    for l in lines {
        let (e, k) = l.split_once(" = ")?;
        let entry = Entry::ALL.iter().find(|x| x.name() == e.trim())?;
        let kind = super::Kind::from_name(k.split_whitespace().next()?)?;
        choices.push((entry.name(), kind.name()));
    }
    Some(Calibration {
        choices,
        report: Vec::new(),
        complete: true,
    })
}

/// Writes a calibration atomically (temporary file, then rename), so concurrent processes
/// never read half a file. Failure only costs a new measurement next time.
fn store(path: &std::path::Path, key: &str, cal: &Calibration) {
    let mut text = String::from(
        "# bitnet kernel calibration: the fastest candidate of each entry on this CPU.\n\
         # Delete this file to measure again; BITNET_KERNEL=<variant> forces one table.\n",
    );
    for l in &cal.report {
        text.push_str(&format!("# {l}\n"));
    }
    text.push_str(&format!("key = {key}\n"));
    for (e, k) in &cal.choices {
        text.push_str(&format!("{e} = {k}\n"));
    }
    let Some(dir) = path.parent() else { return };
    let tmp = dir.join(format!(".kernels-{}.tmp", std::process::id()));
    if std::fs::create_dir_all(dir).is_ok()
        && std::fs::write(&tmp, text).is_ok()
        && std::fs::rename(&tmp, path).is_err()
    {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// The default table of this process: `base` (the best variant by CPU features) with each
/// contested entry taken from the candidate measured fastest here, and how it was chosen.
/// The measurement runs once per machine (about a second; cached, see [`cache_path`]);
/// `BITNET_CALIBRATE=0` skips it and keeps `base`.
pub(crate) fn tuned(
    base: &'static KernelTable,
    candidates: &[&'static KernelTable],
) -> (&'static KernelTable, String) {
    let contested = |first: &KernelTable| {
        Entry::ALL
            .iter()
            .any(|e| candidates.iter().any(|c| e.addr(c) != e.addr(first)))
    };
    if !candidates.first().is_some_and(|f| contested(f)) {
        return (base, format!("{} (CPU features)", base.name()));
    }
    if std::env::var("BITNET_CALIBRATE").is_ok_and(|v| v == "0") {
        return (
            base,
            format!("{} (CPU features; BITNET_CALIBRATE=0)", base.name()),
        );
    }
    let key = cache_key(candidates);
    let path = cache_path();
    let (cal, how) = match path.as_deref().and_then(|p| load_cached(p, &key)) {
        Some(c) => (
            c,
            format!(
                "cached in {}",
                path.as_deref()
                    .map_or(String::new(), |p| p.display().to_string())
            ),
        ),
        None => {
            let t = Instant::now();
            let c = calibrate(
                candidates,
                dram_buffer_bytes(),
                CAL_GEMM_ROWS,
                std::time::Duration::from_secs(10),
            );
            // A measurement cut short by the budget (a loaded machine) is used by this process
            // only; the next one measures again.
            if let (Some(p), true) = (&path, c.complete) {
                store(p, &key, &c);
            }
            (
                c,
                format!("measured in {:.0} ms", t.elapsed().as_secs_f64() * 1e3),
            )
        }
    };
    let table: &'static KernelTable = Box::leak(Box::new(cal.compose(base, candidates)));
    (table, format!("tuned: {} ({how})", cal.summary()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_sizes_parse() {
        assert_eq!(parse_cache_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_cache_size("30M"), Some(30 << 20));
        assert_eq!(parse_cache_size("512"), Some(512));
        assert_eq!(parse_cache_size("x"), None);
    }

    #[test]
    fn calibration_chooses_among_candidates_and_round_trips() {
        use super::super::Kind;
        let simd: Vec<&'static KernelTable> = [
            Kind::Avx512Vnni,
            Kind::Avx2,
            Kind::NeonI8mm,
            Kind::NeonDotprod,
            Kind::Neon,
        ]
        .into_iter()
        .filter_map(super::super::table)
        .collect();
        // Scalar and C always exist, so the test runs everywhere: they differ in every entry.
        let cands: Vec<&'static KernelTable> = if simd.len() >= 2 {
            simd
        } else {
            vec![&super::super::c::TABLE, &super::super::scalar::TABLE]
        };
        // Small shapes: the scalar candidates run this under qemu in CI.
        let cal = calibrate(&cands, 1 << 20, 64, std::time::Duration::from_secs(600));
        assert!(cal.complete);
        assert!(!cal.choices.is_empty());
        // Every entry whose candidates differ was timed (on an i8mm CPU: the `i2s` product of
        // i8mm, dotprod and neon).
        for e in Entry::ALL {
            if cands.iter().any(|c| e.addr(c) != e.addr(cands[0])) {
                assert!(
                    cal.choices.iter().any(|(n, _)| *n == e.name()),
                    "{} not calibrated",
                    e.name()
                );
            }
        }
        let composed = cal.compose(cands[0], &cands);
        for (entry, kind) in &cal.choices {
            let e = Entry::ALL.iter().find(|e| e.name() == *entry).unwrap();
            let src = cands.iter().find(|c| c.name() == *kind).unwrap();
            assert_eq!(
                e.addr(&composed),
                e.addr(src),
                "{entry} not taken from {kind}"
            );
        }
        let dir = std::env::temp_dir().join(format!("bitnet-cal-{}", std::process::id()));
        let path = dir.join("kernels-v1.txt");
        store(&path, "k1", &cal);
        let back = load_cached(&path, "k1").expect("cached calibration reads back");
        assert_eq!(back.choices, cal.choices);
        assert!(load_cached(&path, "another cpu").is_none());
        std::fs::write(&path, "key = k1\ni2s = no-such-kernel\n").unwrap();
        assert!(
            load_cached(&path, "k1").is_none(),
            "a damaged file is measured again"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn read_loops_agree() {
        let v: Vec<u64> = (0..1003u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .collect();
        let want = v.iter().fold(0, |a, x| a ^ x);
        assert_eq!(read_all_portable(&v), want);
        assert_eq!(read_all(&v), want);
    }
}
