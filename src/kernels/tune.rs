//! Measuring the running machine: its memory read bandwidth (the bound on decode speed) and,
//! in [`calibrate`], which of the bit-exact kernel candidates ([`super::candidates`]) is
//! fastest on it.
//!
//! Decode reads every weight once per token, so it can go no faster than
//! `read bandwidth / bytes per token`. Which kernel reaches that bound differs between CPUs of
//! the same ISA (an AVX-512 matvec tuned on one Xeon streamed half the bandwidth of the AVX2 one
//! on a Zen 4 EPYC), so the choice is measured here, on buffers larger than the last-level cache.

use super::candidates::{Candidate, Entry};
use super::{KernelTable, Kind, Scratch, Weights};
use crate::tensor::blocks::cast_slice;
use crate::tensor::GgmlType;
use half::f16;
use rayon::prelude::*;
use std::time::{Duration, Instant};

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

/// A buffer larger than the last-level cache, filled once, so that reading it streams from
/// DRAM: what [`read_bandwidth`] and [`calibrate`] read. Its 16-bit lanes hold varied finite f16
/// values below 1 in magnitude, so it is valid weights of every type (no NaN or infinity slow
/// paths), and it is not zero (a zero page may be the shared zero page and never hit DRAM).
pub struct DramBuffer {
    words: Vec<u64>,
}

impl Default for DramBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DramBuffer {
    /// [`dram_buffer_bytes`] bytes.
    pub fn new() -> DramBuffer {
        DramBuffer::with_bytes(dram_buffer_bytes())
    }

    /// `bytes` bytes (rounded up to 8; tests use small ones). Filled on the calling thread: a
    /// scoped thread here would make std allocate the caller's thread handle, which a C host
    /// under valgrind sees as a leak of the library (the C suite's memcheck runs calibrate).
    pub fn with_bytes(bytes: usize) -> DramBuffer {
        // Non-zero contents: a zero page may be backed by the shared zero page and never hit
        // DRAM; values that are finite as f16 and as f32 whichever way a kernel reads them.
        let words = (0..bytes.div_ceil(8) as u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & 0x3BFF_3BFF_3BFF_3BFF)
            .collect();
        DramBuffer { words }
    }

    /// The buffer's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the u64s are initialized plain data; u8 has no alignment or validity needs;
        // same memory and lifetime.
        unsafe {
            std::slice::from_raw_parts(self.words.as_ptr() as *const u8, self.words.len() * 8)
        }
    }

    /// Its size in bytes.
    pub fn size_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// The machine's memory read bandwidth in GB/s (1e9 bytes/s) with `threads` threads, each
/// streaming its own part of `buf` (make it once with [`DramBuffer::new`] and pass it to every
/// measurement) with wide loads: the best of `passes` passes after one untimed pass. This is
/// what a decode step can at most read.
pub fn read_bandwidth(buf: &DramBuffer, threads: usize, passes: usize) -> f64 {
    let threads = threads.max(1);
    let words = &buf.words;
    let chunk = words.len().div_ceil(threads).max(1);
    let mut best = 0.0f64;
    for pass in 0..=passes.max(1) {
        let t = Instant::now();
        let sums: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = words
                .chunks(chunk)
                .map(|part| s.spawn(move || read_all(part)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
        });
        let secs = t.elapsed().as_secs_f64();
        std::hint::black_box(sums);
        if pass > 0 && secs > 0.0 {
            best = best.max((words.len() * 8) as f64 / secs / 1e9);
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

/// The inner dimension of every timed product: the 2B-4T model's n_embd.
const CAL_K: usize = 2560;
/// Rows of the compute-bound product: the 2B-4T FFN's n_ff.
const CAL_GEMM_ROWS: usize = 6912;
/// Tokens of the compute-bound product: a prompt batch.
const CAL_GEMM_TOKENS: usize = 128;
/// Timed calls per candidate and thread count (the fastest counts), made in rounds over all
/// candidates so that a neighbour's burst does not hit one candidate's every call.
const PASSES: usize = 3;
/// A streaming call reads one of this many windows of the buffer, in turn: between two reads of
/// a window the others (3/4 of a buffer of twice the last-level cache) pass through the cache,
/// so every call reads DRAM, in a quarter of the time a whole-buffer pass takes.
const WINDOWS: usize = 4;
/// Single-token attention of the 2B-4T model at depth 2048: 5 KV heads of 128 dimensions, 4
/// query heads each, 2048 cached cells per layer (the K rows, then the transposed V rows).
const ATT_HEAD_DIM: usize = 128;
const ATT_KV_HEADS: usize = 5;
const ATT_GROUP: usize = 4;
const ATT_CELLS: usize = 2048;
/// The task sizes of `model::attention` (cells per Q·K task, V rows per P·V task).
const ATT_QK_CELLS: usize = 256;
const ATT_PV_ROWS: usize = 32;

/// The outcome of a calibration: the chosen candidate of each contested entry and the rates.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// `(entry, chosen candidate's name)` for each contested entry.
    pub choices: Vec<(Entry, &'static str)>,
    /// One line per entry and candidate: rates at each thread count.
    pub report: Vec<String>,
    /// False when the time budget ran out before every entry was measured.
    pub complete: bool,
}

impl Calibration {
    /// "i2s_vec=avx2-ymm-1row-pf3k i2s=avx512-zmm-4row-4tok ...", without the entries in `skip`.
    pub fn summary(&self, skip: &[Entry]) -> String {
        self.choices
            .iter()
            .filter(|(e, _)| !skip.contains(e))
            .map(|(e, k)| format!("{}={k}", e.name()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `base` with every chosen entry taken from its winner among `candidates`.
    pub fn compose(&self, base: &KernelTable, candidates: &[Candidate]) -> KernelTable {
        let mut t = *base;
        for (entry, name) in &self.choices {
            if let Some(c) = candidates
                .iter()
                .find(|c| c.entry() == *entry && c.name() == *name)
            {
                c.apply(&mut t);
            }
        }
        t
    }
}

/// What an entry is timed on.
enum Problem<'a> {
    /// A one-token product streaming one window of weights from DRAM per call.
    Stream(Vec<Weights<'a>>),
    /// The multi-token product on cache-resident weights (compute-bound).
    Gemm(Weights<'a>),
    /// Single-token attention over one window of K and V rows per call: `cells` per layer.
    Attention {
        windows: Vec<&'a [f16]>,
        cells: usize,
    },
}

/// The activations and outputs of the timed calls, allocated once.
struct Io {
    x: Vec<f32>,
    y: Vec<f32>,
    scratch: Scratch,
    /// Attention: the queries, the probabilities, the Q·K and P·V outputs.
    q: Vec<f32>,
    p: Vec<f32>,
    scores: Vec<f32>,
    grouped: Vec<f32>,
}

impl<'a> Problem<'a> {
    /// The problem of `entry` on `buf` (`gemm_rows` rows for the multi-token product), or
    /// `None` when the buffer is too small for it.
    fn new(entry: Entry, buf: &'a DramBuffer, gemm_rows: usize) -> Option<Problem<'a>> {
        let bytes = buf.bytes();
        let wb = (bytes.len() / WINDOWS) & !63;
        let windows = (0..WINDOWS).map(|i| &bytes[i * wb..(i + 1) * wb]);
        let stream = |ty: GgmlType| -> Option<Problem<'a>> {
            let rb = ty.row_bytes(CAL_K)?;
            // I2_S keeps its 4-byte scale after the codes.
            let rows = wb.checked_sub(4)? / rb;
            let ws = windows
                .clone()
                .map(|w| Weights::new(ty, &w[..rows * rb + 4], rows, CAL_K).ok())
                .collect::<Option<Vec<_>>>()?;
            (rows > 0).then_some(Problem::Stream(ws))
        };
        match entry {
            Entry::I2sVec => stream(GgmlType::I2_S),
            Entry::F16Ggml => stream(GgmlType::F16),
            Entry::Q8_0 => stream(GgmlType::Q8_0),
            Entry::Q6K => stream(GgmlType::Q6_K),
            Entry::I2s => {
                let rb = GgmlType::I2_S.row_bytes(CAL_K)?;
                let data = bytes.get(..gemm_rows * rb + 4)?;
                Some(Problem::Gemm(
                    Weights::new(GgmlType::I2_S, data, gemm_rows, CAL_K).ok()?,
                ))
            }
            Entry::F16Group => {
                let kv_dim = ATT_KV_HEADS * ATT_HEAD_DIM;
                // K and V of `cells` cells, f16.
                let cells = (wb / (4 * kv_dim)).min(ATT_CELLS) & !31;
                if cells == 0 {
                    return None;
                }
                let windows = windows.map(cast_slice::<f16>).collect::<Option<Vec<_>>>()?;
                Some(Problem::Attention { windows, cells })
            }
        }
    }

    /// Bytes read (streaming, attention) or operations (product) per call, and the rate's unit.
    fn work(&self) -> (f64, &'static str) {
        match self {
            Problem::Stream(ws) => (ws[0].data.len() as f64, "GB/s"),
            Problem::Gemm(w) => ((2 * w.rows * w.cols * CAL_GEMM_TOKENS) as f64, "GOPS"),
            Problem::Attention { windows, cells } => {
                let layer = 2 * cells * ATT_KV_HEADS * ATT_HEAD_DIM;
                ((windows[0].len() / layer * layer * 2) as f64, "GB/s")
            }
        }
    }

    fn io(&self) -> Io {
        let cells = match self {
            Problem::Attention { cells, .. } => *cells,
            _ => 0,
        };
        let (n_tok, rows) = match self {
            Problem::Stream(ws) => (1, ws[0].rows),
            Problem::Gemm(w) => (CAL_GEMM_TOKENS, w.rows),
            Problem::Attention { .. } => (0, 0),
        };
        // f16-representable values (attention takes them widened from f16).
        let wide = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| f16::from_f32(((i * 7919 + seed) % 2001) as f32 / 1000.0 - 1.0).to_f32())
                .collect()
        };
        let heads = ATT_KV_HEADS * ATT_GROUP;
        Io {
            x: wide(n_tok * CAL_K, 0),
            y: vec![0.0; rows * n_tok],
            scratch: Scratch::new(),
            q: wide(if cells > 0 { heads * ATT_HEAD_DIM } else { 0 }, 1),
            p: wide(ATT_GROUP * cells, 2)
                .iter()
                .map(|v| v.abs() / 1024.0)
                .collect(),
            scores: vec![0.0; heads * cells],
            grouped: vec![0.0; heads * ATT_HEAD_DIM],
        }
    }

    /// Seconds of one call with `t` on window `window` (in the current rayon pool), or `None`
    /// if the call failed.
    fn time(&self, t: &KernelTable, window: usize, io: &mut Io) -> Option<f64> {
        let t0 = Instant::now();
        match self {
            Problem::Stream(ws) => {
                let w = &ws[window % ws.len()];
                t.matmul(w, &io.x, 1, &mut io.y, &mut io.scratch).ok()?;
            }
            Problem::Gemm(w) => {
                let n = CAL_GEMM_TOKENS;
                t.matmul(w, &io.x, n, &mut io.y, &mut io.scratch).ok()?;
            }
            Problem::Attention { windows, cells } => {
                attention_layers(t, windows[window % windows.len()], *cells, io)
            }
        }
        Some(t0.elapsed().as_secs_f64())
    }
}

/// Single-token attention as `model::attention` runs it, over each layer of K rows (`cells`
/// rows of all KV heads) and transposed V rows (one row of `cells` per dimension) in `kv`.
fn attention_layers(t: &KernelTable, kv: &[f16], cells: usize, io: &mut Io) {
    let (g, hd) = (ATT_GROUP, ATT_HEAD_DIM);
    let kv_dim = ATT_KV_HEADS * hd;
    let (q, p) = (&io.q, &io.p);
    for layer in kv.chunks_exact(2 * cells * kv_dim) {
        let (k, v) = layer.split_at(cells * kv_dim);
        io.scores
            .par_chunks_mut(g * cells)
            .enumerate()
            .for_each(|(h, sg)| {
                let qg = &q[h * g * hd..(h + 1) * g * hd];
                sg.par_chunks_mut(g * ATT_QK_CELLS)
                    .enumerate()
                    .for_each(|(i, part)| {
                        let keys = &k[i * ATT_QK_CELLS * kv_dim + h * hd..];
                        (t.f16_ggml_strided_group)(keys, kv_dim, qg, g, part)
                    });
            });
        io.grouped
            .par_chunks_mut(g * ATT_PV_ROWS)
            .enumerate()
            .for_each(|(i, part)| {
                let per_head = hd / ATT_PV_ROWS;
                let (h, d0) = (i / per_head, (i % per_head) * ATT_PV_ROWS);
                let rows = &v[(h * hd + d0) * cells..];
                (t.f16_ggml_strided_group)(rows, cells, &p[..g * cells], g, part)
            });
    }
}

/// Times every entry that has two or more distinct `candidates` on this machine, each candidate
/// in `base` (the table the other entries come from), and picks per entry the candidate with the
/// lowest time summed over 1 thread and all threads, each time relative to the best
/// candidate's. The matvecs and attention stream windows of `buf` (make it with
/// [`DramBuffer::new`]: larger than the cache); the multi-token product runs `gemm_rows` rows
/// (the 2B-4T FFN's 6912 when the library calibrates itself) from the cache. `budget` stops the
/// measurement early (`complete` false; the remaining entries keep `base`'s).
pub fn calibrate(
    base: &KernelTable,
    candidates: &[Candidate],
    buf: &DramBuffer,
    gemm_rows: usize,
    budget: Duration,
) -> Calibration {
    let start = Instant::now();
    let mut cal = Calibration {
        choices: Vec::new(),
        report: Vec::new(),
        complete: true,
    };
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pools = Vec::new();
    for n in if all > 1 { vec![1, all] } else { vec![1] } {
        if let Ok(p) = rayon::ThreadPoolBuilder::new().num_threads(n).build() {
            pools.push((n, p));
        }
    }
    let mut call = 0usize;
    'entries: for entry in Entry::ALL {
        let mut cands: Vec<&Candidate> = Vec::new();
        for c in candidates.iter().filter(|c| c.entry() == entry) {
            if !cands.iter().any(|d| d.addr() == c.addr()) {
                cands.push(c);
            }
        }
        if cands.len() < 2 {
            continue;
        }
        if start.elapsed() > budget {
            cal.complete = false;
            break;
        }
        let Some(problem) = Problem::new(entry, buf, gemm_rows) else {
            continue;
        };
        let mut io = problem.io();
        if let (Problem::Gemm(_), Some((_, pool))) = (&problem, pools.last()) {
            // Bring the product's weights into the cache.
            let mut t = *base;
            cands[0].apply(&mut t);
            pool.install(|| problem.time(&t, 0, &mut io));
        }
        // secs[candidate][pool]
        let mut secs = vec![vec![f64::INFINITY; pools.len()]; cands.len()];
        for pass in 0..PASSES {
            if pass > 0 && start.elapsed() > budget {
                cal.complete = false;
                choose(entry, &cands, &secs, &pools, &problem, &mut cal);
                break 'entries;
            }
            for (ci, c) in cands.iter().enumerate() {
                let mut t = *base;
                c.apply(&mut t);
                for (pi, (_, pool)) in pools.iter().enumerate() {
                    if let Some(s) = pool.install(|| problem.time(&t, call, &mut io)) {
                        secs[ci][pi] = secs[ci][pi].min(s);
                    }
                    call += 1;
                }
            }
        }
        choose(entry, &cands, &secs, &pools, &problem, &mut cal);
    }
    cal
}

/// Picks `entry`'s winner from the measured `secs[candidate][pool]` into `cal` with one report
/// line per candidate. Candidates that failed a call are never chosen.
fn choose(
    entry: Entry,
    cands: &[&Candidate],
    secs: &[Vec<f64>],
    pools: &[(usize, rayon::ThreadPool)],
    problem: &Problem,
    cal: &mut Calibration,
) {
    let best_per_pool: Vec<f64> = (0..pools.len())
        .map(|pi| secs.iter().map(|s| s[pi]).fold(f64::INFINITY, f64::min))
        .collect();
    if best_per_pool.iter().any(|b| !b.is_finite()) {
        return;
    }
    let score = |s: &Vec<f64>| -> f64 { s.iter().zip(&best_per_pool).map(|(a, b)| a / b).sum() };
    let Some(winner) = (0..cands.len())
        .filter(|&c| secs[c].iter().all(|s| s.is_finite()))
        .min_by(|&a, &b| score(&secs[a]).total_cmp(&score(&secs[b])))
    else {
        return;
    };
    let (work, unit) = problem.work();
    for (ci, c) in cands.iter().enumerate() {
        let rates: Vec<String> = pools
            .iter()
            .zip(&secs[ci])
            .map(|((n, _), s)| format!("{n}t {:.1} {unit}", work / s / 1e9))
            .collect();
        cal.report.push(format!(
            "{:<22} {:<22} {}{}",
            entry.name(),
            c.name(),
            rates.join(", "),
            if ci == winner { "  <- chosen" } else { "" }
        ));
    }
    cal.choices.push((entry, cands[winner].name()));
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
    Some(cache_dir()?.join(CACHE_FILE))
}

/// [`cache_path`] of the calibration `BITNET_KERNEL=<kind>` makes: `kernels-v2-avx2.txt`, ...
/// (the candidates differ from the automatic choice's, so it has a file of its own).
pub fn cache_path_for(kind: Kind) -> Option<std::path::PathBuf> {
    let stem = CACHE_FILE.trim_end_matches(".txt");
    Some(cache_dir()?.join(format!("{stem}-{}.txt", kind.name())))
}

fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("BITNET_CACHE_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| std::path::Path::new(&d).join("bitnet"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| std::path::Path::new(&d).join(".cache/bitnet"))
        })
}

/// The name of the calibration cache file (the number changes with its format).
const CACHE_FILE: &str = "kernels-v2.txt";

/// The key a cached calibration must match: this library's version, the CPU and the candidates
/// it chose among (a hash of their names: a new candidate measures again).
fn cache_key(candidates: &[Candidate]) -> String {
    // FNV-1a: stable across Rust versions, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in candidates {
        for b in format!("{}={};", c.entry().name(), c.name()).bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!(
        "bitnet {} | {} | candidates {h:016x}",
        env!("CARGO_PKG_VERSION"),
        cpu_model()
    )
}

/// Reads a cached calibration made with the same key whose every choice is one of
/// `candidates`; anything else (another machine, a damaged file) is `None`: measure again.
fn load_cached(path: &std::path::Path, key: &str, candidates: &[Candidate]) -> Option<Calibration> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    if lines.next()?.strip_prefix("key = ")? != key {
        return None;
    }
    let mut choices = Vec::new();
    for l in lines {
        let (e, k) = l.split_once(" = ")?;
        let entry = Entry::from_name(e.trim())?;
        let c = candidates
            .iter()
            .find(|c| c.entry() == entry && c.name() == k.trim())?;
        choices.push((entry, c.name()));
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
         # Delete this file to measure again. BITNET_CALIBRATE=0 skips the measurement;\n\
         # BITNET_KERNEL_<ENTRY>=<candidate> forces one entry.\n",
    );
    for l in &cal.report {
        text.push_str(&format!("# {l}\n"));
    }
    text.push_str(&format!("key = {key}\n"));
    for (e, k) in &cal.choices {
        text.push_str(&format!("{} = {k}\n", e.name()));
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

/// The default table of this process before forcing: `base` (the best variant by CPU
/// features) with each contested entry taken from the candidate measured fastest here, and how
/// it was chosen (the entries in `forced` are left out of the description: the caller puts them
/// in). The measurement runs once per machine (about a second; cached, see [`cache_path`]);
/// `BITNET_CALIBRATE=0` skips it and keeps `base`.
pub(crate) fn tuned(base: &'static KernelTable, forced: &[Candidate]) -> (KernelTable, String) {
    tuned_among(base, &super::candidates::all(), cache_path(), forced, None)
}

/// [`tuned`] for `BITNET_KERNEL=<variant>`: `base` is that variant's table, and the candidates
/// are those a CPU with just its features has ([`super::candidates::all_for`]), so
/// `BITNET_KERNEL=avx2` on an AVX-512 machine runs what an AVX2-only CPU of the same
/// microarchitecture would choose. Cached in a file of its own ([`cache_path_for`]).
pub(crate) fn tuned_for(base: &'static KernelTable, forced: &[Candidate]) -> (KernelTable, String) {
    let all = super::candidates::all_for(base.kind);
    let path = cache_path_for(base.kind);
    tuned_among(base, &all, path, forced, Some("BITNET_KERNEL"))
}

/// [`tuned`] among `all`, cached in `path`. `base` was chosen by CPU features, or by the
/// variable `chosen_by` (which the description then names: "avx2 (BITNET_KERNEL); tuned: ...").
fn tuned_among(
    base: &'static KernelTable,
    all: &[Candidate],
    path: Option<std::path::PathBuf>,
    forced: &[Candidate],
    chosen_by: Option<&str>,
) -> (KernelTable, String) {
    let why = chosen_by.unwrap_or("CPU features");
    let contested = Entry::ALL
        .iter()
        .any(|&e| all.iter().filter(|c| c.entry() == e).count() >= 2);
    if !contested {
        return (*base, format!("{} ({why})", base.name()));
    }
    if std::env::var("BITNET_CALIBRATE").is_ok_and(|v| v == "0") {
        return (
            *base,
            format!("{} ({why}; BITNET_CALIBRATE=0)", base.name()),
        );
    }
    let prefix = chosen_by.map_or(String::new(), |v| format!("{} ({v}); ", base.name()));
    let key = cache_key(all);
    let (cal, how) = match path.as_deref().and_then(|p| load_cached(p, &key, all)) {
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
            let buf = DramBuffer::new();
            let c = calibrate(base, all, &buf, CAL_GEMM_ROWS, Duration::from_secs(10));
            drop(buf);
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
    let skip: Vec<Entry> = forced.iter().map(|c| c.entry()).collect();
    (
        cal.compose(base, all),
        format!("{prefix}tuned: {} ({how})", cal.summary(&skip)),
    )
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
        // The scalar and C tables exist everywhere and differ in every contested entry, so the
        // test runs on every machine (small shapes: the scalar candidates run under qemu in CI).
        let (s, c) = (&super::super::scalar::TABLE, &super::super::c::TABLE);
        let cands: Vec<Candidate> = Entry::ALL
            .into_iter()
            .flat_map(|e| [Candidate::of_table(e, c), Candidate::of_table(e, s)])
            .collect();
        let buf = DramBuffer::with_bytes(1 << 20);
        let cal = calibrate(s, &cands, &buf, 64, Duration::from_secs(600));
        assert!(cal.complete);
        let measured: Vec<Entry> = cal.choices.iter().map(|(e, _)| *e).collect();
        assert_eq!(
            measured,
            Entry::ALL,
            "every entry is timed: {:?}",
            cal.report
        );
        assert_eq!(cal.report.len(), 2 * Entry::ALL.len());
        let composed = cal.compose(s, &cands);
        for (entry, name) in &cal.choices {
            let src = if *name == "c" { c } else { s };
            assert_eq!(
                entry.addr(&composed),
                entry.addr(src),
                "{entry:?} not taken from {name}"
            );
        }
        assert!(!cal.summary(&[]).is_empty());
        assert!(!cal.summary(&[Entry::I2sVec]).contains("i2s_vec="));
        let dir = std::env::temp_dir().join(format!("bitnet-cal-{}", std::process::id()));
        let path = dir.join(CACHE_FILE);
        store(&path, "k1", &cal);
        let back = load_cached(&path, "k1", &cands).expect("cached calibration reads back");
        assert_eq!(back.choices, cal.choices);
        assert!(load_cached(&path, "another cpu", &cands).is_none());
        assert!(
            load_cached(&path, "k1", &cands[..2]).is_none(),
            "a choice that is no longer a candidate is measured again"
        );
        std::fs::write(&path, "key = k1\ni2s = no-such-kernel\n").unwrap();
        assert!(
            load_cached(&path, "k1", &cands).is_none(),
            "a damaged file is measured again"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn calibration_budget_stops_early() {
        let (s, c) = (&super::super::scalar::TABLE, &super::super::c::TABLE);
        let cands: Vec<Candidate> = Entry::ALL
            .into_iter()
            .flat_map(|e| [Candidate::of_table(e, s), Candidate::of_table(e, c)])
            .collect();
        let buf = DramBuffer::with_bytes(1 << 18);
        let cal = calibrate(s, &cands, &buf, 16, Duration::ZERO);
        assert!(!cal.complete);
        assert!(cal.choices.len() < Entry::ALL.len());
        // A single candidate per entry is nothing to measure.
        let one: Vec<Candidate> = cands.iter().step_by(2).copied().collect();
        let cal = calibrate(s, &one, &buf, 16, Duration::ZERO);
        assert!(cal.complete && cal.choices.is_empty());
    }

    #[test]
    fn cache_key_names_the_candidates() {
        let s = &super::super::scalar::TABLE;
        let a = [Candidate::of_table(Entry::I2sVec, s)];
        let b = [Candidate::of_table(Entry::I2s, s)];
        assert_ne!(cache_key(&a), cache_key(&b));
        assert_eq!(cache_key(&a), cache_key(&a));
        assert!(cache_key(&a).contains(&cpu_model()));
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

    #[test]
    fn dram_buffer_is_valid_f16_and_measurable() {
        let buf = DramBuffer::with_bytes(1 << 16);
        assert_eq!(buf.size_bytes(), 1 << 16);
        let h: &[f16] = cast_slice(buf.bytes()).unwrap();
        assert!(h.iter().all(|v| v.is_finite() && v.to_f32().abs() < 1.0));
        assert!(h.iter().any(|v| v.to_f32() != 0.0));
        assert!(read_bandwidth(&buf, 2, 1) > 0.0);
    }
}
