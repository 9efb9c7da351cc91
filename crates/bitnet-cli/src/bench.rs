//! `bitnet bench`: prompt-processing and generation speed, like llama-bench.

use super::args::Args;
use crate::modelgen::{Params, Shape};
use bitnet::tensor::GgmlType;
use bitnet::{Batch, Context, ContextParams};
use bitnet::{Error, Result};
use bitnet::{Model, ModelParams};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str =
    "usage: bitnet bench [-m MODEL[,MODEL...]] [--weights i2_s,tq2_0,tq1_0] [--embd f16,q6_k]
                    [-t 1,2] [-p 128] [-n 64] [-d 0] [-r 5] [--head-q8]

Measures pp (one batch of -p tokens from an empty cache) and tg (-n tokens decoded one at a
time from an empty cache) in tokens/s: the median and the range of -r runs after one warm-up,
for each model and thread count, plus load time and peak RSS (per model, from its load).
-d 0,512,2048 also times tg with that many tokens already in the cache (filled by an untimed
prompt batch; the test is named tg64@d512), for the attention cost at long context. Without
-m it makes (once, cached next to the binary) a model of the real BitNet-b1.58-2B-4T shape
with random weights for each --weights x --embd combination (default: i2_s with f16).
Before and after the runs it measures the machine's read bandwidth at each thread count (a wide read
loop over a buffer larger than the last-level cache); each tg row then shows the bound that
bandwidth sets (bandwidth / bytes read per token: the weights, plus the KV cache at depth) and
the share of it reached. Prints the kernels in use and a markdown table.";

fn list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .map_err(|_| Error::invalid_argument(format!("{what}: cannot parse {x:?}")))
        })
        .collect()
}

/// What `bitnet bench` was asked to run.
struct Options {
    paths: Vec<PathBuf>,
    threads: Vec<i32>,
    n_prompt: usize,
    n_gen: usize,
    reps: usize,
    depths: Vec<usize>,
    mparams: ModelParams,
}

impl Options {
    /// Reads the command line; without `-m`, makes (or finds) the generated models.
    fn parse(mut args: Args) -> Result<Options> {
        let models = args.value(&["-m", "--model"])?;
        let weights = args.value(&["--weights"])?.unwrap_or_else(|| "i2_s".into());
        let embds = args.value(&["--embd"])?.unwrap_or_else(|| "f16".into());
        let threads = list(
            &args
                .value(&["-t", "--threads"])?
                .unwrap_or_else(|| "1,2".into()),
            "-t",
        )?;
        let n_prompt = args.parse(&["-p", "--n-prompt"], 128)?;
        let n_gen = args.parse(&["-n", "--n-gen"], 64)?;
        let reps = args.parse(&["-r", "--repetitions"], 5)?;
        let depths = list(
            &args
                .value(&["-d", "--depth"])?
                .unwrap_or_else(|| "0".into()),
            "-d",
        )?;
        let mparams = ModelParams {
            head_q8_0: args.switch(&["--head-q8"]),
        };
        super::no_positionals(&mut args)?;
        let paths = match models {
            Some(m) => m.split(',').map(PathBuf::from).collect(),
            None => generated_models(&weights, &embds)?,
        };
        Ok(Options {
            paths,
            threads,
            n_prompt,
            n_gen,
            reps,
            depths,
            mparams,
        })
    }

    fn max_depth(&self) -> usize {
        self.depths.iter().copied().max().unwrap_or(0)
    }
}

pub fn run(args: Args) -> Result<()> {
    let opts = Options::parse(args)?;
    // First, so that a calibration (its own buffer) is done before ours is filled.
    println!("kernels: {}", bitnet::kernels::active_description());
    // Measured before the runs and again after them, keeping the higher: on a shared machine a
    // neighbour's burst during one measurement must not lower the bound below what the runs
    // themselves reached. One buffer per round, freed during the runs (held, it would count in
    // every model's peak RSS).
    let before = measure_bandwidth(&opts.threads);
    let mut rows = Vec::new();
    for path in &opts.paths {
        rows.extend(bench_model(&opts, path)?);
    }
    let after = measure_bandwidth(&opts.threads);
    let mut bandwidth = Vec::new();
    for ((t, bw), (_, bw2)) in before.iter().zip(&after) {
        println!(
            "read bandwidth, {t} thread(s): {:.1} GB/s (before {bw:.1}, after {bw2:.1})",
            bw.max(*bw2)
        );
        bandwidth.push((*t, bw.max(*bw2)));
    }
    print_table(&rows, &bandwidth);
    Ok(())
}

/// The machine's read bandwidth at each thread count, from one buffer larger than the cache.
fn measure_bandwidth(threads: &[i32]) -> Vec<(i32, f64)> {
    let buf = bitnet::kernels::tune::DramBuffer::new();
    threads
        .iter()
        .map(|&t| {
            let bw = bitnet::kernels::tune::read_bandwidth(&buf, t.max(1) as usize, 5);
            (t, bw)
        })
        .collect()
}

/// One model at every thread count: pp, then tg at each depth.
fn bench_model(opts: &Options, path: &std::path::Path) -> Result<Vec<Row>> {
    // Peak RSS per model: the generator that may have just written it, or the previous model,
    // must not count.
    reset_peak_rss();
    let t = Instant::now();
    let model = Arc::new(Model::load_with(path, opts.mparams)?);
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n_vocab = model.vocab().n_tokens() as i32;
    let weight_bytes = model.bytes_per_token() as f64;
    let cfg = model.config();
    // K and V of every cached cell, f16, read once per decoded token.
    let kv_bytes_per_cell =
        (cfg.n_layer * cfg.n_head_kv * (cfg.head_dim + cfg.head_dim_v) * 2) as f64;
    let (n_prompt, n_gen, max_depth) = (opts.n_prompt, opts.n_gen, opts.max_depth());
    // Token ids spread over the vocabulary; the values do not matter for speed.
    let tokens: Vec<i32> = (0..n_prompt.max(n_gen + max_depth))
        .map(|i| (i as i32 * 7919 + 13) % n_vocab)
        .collect();
    let mut rows = Vec::new();
    for &threads in &opts.threads {
        let params = ContextParams {
            n_ctx: (n_prompt.max(n_gen + max_depth) + 32) as u32,
            n_batch: n_prompt.max(max_depth).max(1) as u32,
            n_ubatch: n_prompt.max(max_depth).clamp(1, 512) as u32,
            n_threads: threads,
            n_threads_batch: threads,
            ..Default::default()
        };
        let mut ctx = Context::new(model.clone(), params)?;
        let mut tests = vec![Test::Prompt(n_prompt)];
        tests.extend(opts.depths.iter().map(|&d| Test::Generate(n_gen, d)));
        for test in tests {
            let rates = time_test(&mut ctx, &tokens, test, opts.reps)?;
            if rates.is_empty() {
                continue;
            }
            let median = rates[rates.len() / 2];
            rows.push(Row {
                line: format!(
                    "| {name} | {:.2} GB | {threads} | {} | {median:.2} | {:.2} - {:.2} |",
                    size as f64 / 1e9,
                    test.label(),
                    rates[0],
                    rates[rates.len() - 1],
                ),
                tail: format!(" {load_ms:.0} | {:.0} |", peak_rss_mib()),
                threads,
                // Weights plus the mean KV cache over the n decoded tokens.
                bytes_per_token: match test {
                    Test::Generate(n, depth) => {
                        Some(weight_bytes + (depth as f64 + n as f64 / 2.0) * kv_bytes_per_cell)
                    }
                    Test::Prompt(_) => None,
                },
                median,
            });
        }
    }
    Ok(rows)
}

/// One timed test.
#[derive(Clone, Copy)]
enum Test {
    /// One batch of this many tokens from an empty cache.
    Prompt(usize),
    /// This many tokens one at a time, after a depth of cached tokens.
    Generate(usize, usize),
}

impl Test {
    /// "pp128", "tg64", "tg64@d512".
    fn label(self) -> String {
        match self {
            Test::Prompt(n) => format!("pp{n}"),
            Test::Generate(n, 0) => format!("tg{n}"),
            Test::Generate(n, d) => format!("tg{n}@d{d}"),
        }
    }
}

/// Tokens/s of `reps` runs of `test` after one warm-up run, sorted; empty for a test of no
/// tokens.
fn time_test(ctx: &mut Context, tokens: &[i32], test: Test, reps: usize) -> Result<Vec<f64>> {
    let (n, depth) = match test {
        Test::Prompt(n) => (n, 0),
        Test::Generate(n, d) => (n, d),
    };
    let mut rates = Vec::new();
    if n == 0 {
        return Ok(rates);
    }
    for rep in 0..=reps {
        ctx.kv_mut().clear();
        if depth > 0 {
            ctx.decode(&Batch::get_one(&tokens[..depth]))?;
        }
        let t0 = Instant::now();
        match test {
            Test::Prompt(_) => ctx.decode(&Batch::get_one(&tokens[..n]))?,
            Test::Generate(..) => {
                for tok in &tokens[depth..depth + n] {
                    ctx.decode(&Batch::get_one(&[*tok]))?;
                }
            }
        }
        let s = t0.elapsed().as_secs_f64();
        if rep > 0 {
            rates.push(n as f64 / s);
        }
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    Ok(rates)
}

/// The markdown table: every row with its bound at its thread count's `bandwidth` (GB/s).
fn print_table(rows: &[Row], bandwidth: &[(i32, f64)]) {
    println!();
    println!(
        "| model | size | threads | test | t/s (median) | min - max | bound t/s | % of bound | load ms | peak RSS MiB |"
    );
    println!("|---|---:|---:|---|---:|---|---:|---:|---:|---:|");
    for r in rows {
        let bw = bandwidth
            .iter()
            .find(|(t, _)| *t == r.threads)
            .map(|(_, b)| *b);
        let (bound, share) = bound_columns(r, bw);
        println!("{} {bound} | {share} |{}", r.line, r.tail);
    }
}

/// The bound (bandwidth / bytes per token) and the share of it reached, for tg rows with a
/// measured bandwidth; empty otherwise.
fn bound_columns(r: &Row, bandwidth_gbs: Option<f64>) -> (String, String) {
    match (bandwidth_gbs, r.bytes_per_token) {
        (Some(bw), Some(bytes)) => {
            let bound = bw * 1e9 / bytes;
            (
                format!("{bound:.2}"),
                format!("{:.0}%", 100.0 * r.median / bound),
            )
        }
        _ => (String::new(), String::new()),
    }
}

/// One result line of the table, printed after the closing bandwidth measurement.
struct Row {
    /// Model to range columns.
    line: String,
    /// Load time and peak RSS columns.
    tail: String,
    threads: i32,
    /// Bytes one decoded token reads (tg rows only).
    bytes_per_token: Option<f64>,
    median: f64,
}

/// Starts a new peak-RSS measurement (Linux: `/proc/self/clear_refs` value 5 resets the
/// high-water mark that `VmHWM` reports). Elsewhere the peak stays the process's.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size in MiB: `VmHWM` (since the last [`reset_peak_rss`]) where
/// `/proc/self/status` has it, else the process's `ru_maxrss`.
pub fn peak_rss_mib() -> f64 {
    let hwm_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        });
    if let Some(kib) = hwm_kib {
        return kib / 1024.0;
    }
    peak_rss_os()
}

/// Peak resident set from the OS when `/proc` is missing (macOS, BSDs): `getrusage`.
#[cfg(unix)]
fn peak_rss_os() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) == 0 {
            u.ru_maxrss as f64 / 1024.0
        } else {
            0.0
        }
    }
}

/// Peak working set on Windows (`K32GetProcessMemoryInfo`, kernel32 since Windows 7).
#[cfg(windows)]
fn peak_rss_os() -> f64 {
    /// `PROCESS_MEMORY_COUNTERS` (psapi.h).
    #[repr(C)]
    #[derive(Default)]
    struct Counters {
        cb: u32,
        page_fault_count: u32,
        peak_working_set_size: usize,
        working_set_size: usize,
        quota_peak_paged_pool_usage: usize,
        quota_paged_pool_usage: usize,
        quota_peak_non_paged_pool_usage: usize,
        quota_non_paged_pool_usage: usize,
        pagefile_usage: usize,
        peak_pagefile_usage: usize,
    }
    #[link(name = "kernel32")]
    extern "system" {
        fn GetCurrentProcess() -> *mut std::ffi::c_void;
        fn K32GetProcessMemoryInfo(p: *mut std::ffi::c_void, c: *mut Counters, cb: u32) -> i32;
    }
    let mut c = Counters {
        cb: std::mem::size_of::<Counters>() as u32,
        ..Counters::default()
    };
    let cb = c.cb;
    // SAFETY: the pseudo-handle of the current process needs no closing; the call writes at
    // most `cb` bytes into `c`.
    let ok = unsafe { K32GetProcessMemoryInfo(GetCurrentProcess(), &mut c, cb) };
    if ok != 0 {
        c.peak_working_set_size as f64 / (1024.0 * 1024.0)
    } else {
        0.0
    }
}

#[cfg(not(any(unix, windows)))]
fn peak_rss_os() -> f64 {
    0.0
}

/// The generated models for each `--weights` x `--embd` pair (comma lists).
fn generated_models(weights: &str, embds: &str) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for w in weights.split(',') {
        for e in embds.split(',') {
            v.push(generated_model(
                super::make_model::parse_weight_type(w)?,
                super::make_model::parse_weight_type(e)?,
            )?);
        }
    }
    Ok(v)
}

/// The 2B-4T-shape benchmark model for a weight/embedding type pair, made once.
fn generated_model(weights: GgmlType, embedding: GgmlType) -> Result<PathBuf> {
    let name = format!(
        "2b4t-{}-{}.gguf",
        weights.name().to_lowercase(),
        embedding.name().to_lowercase()
    );
    super::make_model::cached_model(&name, |vocab| Params {
        shape: Shape::B2B4T,
        weights,
        embedding,
        seed: 2025,
        vocab,
    })
}
