//! Timing counters of a context (`llama_perf_context`): prompt vs single-token evaluation.

use std::time::Duration;

/// `llama_perf_context_data`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerfContextData {
    /// When the counters started (context creation or the last reset), ms on the monotonic clock.
    pub t_start_ms: f64,
    /// Time the model took to load.
    pub t_load_ms: f64,
    /// Time in decodes of more than one token (prompt processing).
    pub t_p_eval_ms: f64,
    /// Time in single-token decodes (generation).
    pub t_eval_ms: f64,
    /// Tokens evaluated in multi-token decodes.
    pub n_p_eval: i32,
    /// Single-token decodes.
    pub n_eval: i32,
    /// Tokens reused from a cache (always 0: there is no prompt cache).
    pub n_reused: i32,
}

impl PerfContextData {
    /// The lines `llama_perf_context_print` logs (load, prompt eval, eval, total up to now).
    pub fn report(&self) -> Vec<String> {
        let per = |ms: f64, n: i32| {
            let n = f64::from(n.max(0));
            (
                if n > 0.0 { ms / n } else { 0.0 },
                if ms > 0.0 { 1e3 * n / ms } else { 0.0 },
            )
        };
        let (p_per, p_tps) = per(self.t_p_eval_ms, self.n_p_eval);
        let (e_per, e_tps) = per(self.t_eval_ms, self.n_eval);
        let total_ms = 1e-3 * now_us() as f64 - self.t_start_ms;
        vec![
            format!("perf:        load time = {:10.2} ms", self.t_load_ms),
            format!(
                "perf: prompt eval time = {:10.2} ms / {:5} tokens ({:8.2} ms per token, {:8.2} tokens per second)",
                self.t_p_eval_ms, self.n_p_eval, p_per, p_tps
            ),
            format!(
                "perf:        eval time = {:10.2} ms / {:5} runs   ({:8.2} ms per token, {:8.2} tokens per second)",
                self.t_eval_ms, self.n_eval, e_per, e_tps
            ),
            format!(
                "perf:       total time = {:10.2} ms / {:5} tokens",
                total_ms,
                self.n_p_eval.saturating_add(self.n_eval)
            ),
        ]
    }
}

/// The running counters, updated by every successful `decode`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PerfCounters {
    t_start_us: i64,
    t_load_us: i64,
    t_p_eval_us: i64,
    t_eval_us: i64,
    n_p_eval: i32,
    n_eval: i32,
}

/// Microseconds on CLOCK_MONOTONIC (the clock of `bitnet_time_us`).
#[cfg(unix)]
pub(crate) fn now_us() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists on the supported OSes.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // time_t and c_long are 32-bit on some targets, hence the casts.
    #[allow(clippy::unnecessary_cast)]
    let us = ts.tv_sec as i64 * 1_000_000 + ts.tv_nsec as i64 / 1_000;
    us
}

/// Microseconds on a monotonic clock (the clock of `bitnet_time_us`): `std::time::Instant`
/// (QueryPerformanceCounter on Windows) counted from the first call, plus one second so that no
/// reading is 0.
#[cfg(not(unix))]
pub(crate) fn now_us() -> i64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = BASE.get_or_init(std::time::Instant::now);
    1_000_000 + i64::try_from(base.elapsed().as_micros()).unwrap_or(i64::MAX - 1_000_000)
}

impl PerfCounters {
    pub(crate) fn new(t_load_us: i64) -> PerfCounters {
        PerfCounters {
            t_start_us: now_us(),
            t_load_us,
            ..Default::default()
        }
    }

    /// One successful decode of `n_tokens` tokens that took `elapsed` (as llama.cpp: a batch of
    /// more than one token counts as prompt evaluation).
    pub(crate) fn record(&mut self, n_tokens: usize, elapsed: Duration) {
        let us = elapsed.as_micros() as i64;
        if n_tokens > 1 {
            self.t_p_eval_us += us;
            self.n_p_eval = self.n_p_eval.saturating_add(n_tokens as i32);
        } else {
            self.t_eval_us += us;
            self.n_eval = self.n_eval.saturating_add(1);
        }
    }

    pub(crate) fn data(&self) -> PerfContextData {
        PerfContextData {
            t_start_ms: 1e-3 * self.t_start_us as f64,
            t_load_ms: 1e-3 * self.t_load_us as f64,
            t_p_eval_ms: 1e-3 * self.t_p_eval_us as f64,
            t_eval_ms: 1e-3 * self.t_eval_us as f64,
            n_p_eval: self.n_p_eval,
            n_eval: self.n_eval,
            n_reused: 0,
        }
    }

    /// Zeroes the evaluation counters and restarts the clock (the load time stays).
    pub(crate) fn reset(&mut self) {
        *self = PerfCounters::new(self.t_load_us);
    }
}
