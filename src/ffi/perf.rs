//! Perf group: context and sampler-chain timing counters.

use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::sampler::{bitnet_sampler, sampler_chain_mut, sampler_chain_ref};
use super::{call, call_void};
use crate::log::{log, Level};

/// Context timing counters (llama_perf_context_data).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct bitnet_perf_context_data {
    /// Start of the counters (creation or last reset), ms on bitnet_time_us's clock.
    pub t_start_ms: f64,
    /// Model load time.
    pub t_load_ms: f64,
    /// Time in multi-token decodes (prompts).
    pub t_p_eval_ms: f64,
    /// Time in single-token decodes.
    pub t_eval_ms: f64,
    /// Tokens evaluated in multi-token decodes.
    pub n_p_eval: i32,
    /// Single-token decodes.
    pub n_eval: i32,
    /// Tokens reused from a prompt cache (always 0).
    pub n_reused: i32,
}

/// Sampler-chain timing counters (llama_perf_sampler_data).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct bitnet_perf_sampler_data {
    /// Time in the chain's apply/accept (0 when the chain was made with no_perf).
    pub t_sample_ms: f64,
    /// Tokens accepted.
    pub n_sample: i32,
}

/// The context's counters; all zero if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_perf_context(ctx: *const bitnet_context) -> bitnet_perf_context_data {
    call(bitnet_perf_context_data::default(), || {
        let d = ctx_ref(ctx)?.ctx.perf();
        Ok(bitnet_perf_context_data {
            t_start_ms: d.t_start_ms,
            t_load_ms: d.t_load_ms,
            t_p_eval_ms: d.t_p_eval_ms,
            t_eval_ms: d.t_eval_ms,
            n_p_eval: d.n_p_eval,
            n_eval: d.n_eval,
            n_reused: d.n_reused,
        })
    })
}

/// Logs the context's counters (info level): load, prompt eval, eval and total time.
#[no_mangle]
pub extern "C" fn bitnet_perf_context_print(ctx: *const bitnet_context) {
    call_void(|| {
        for line in ctx_ref(ctx)?.ctx.perf().report() {
            log(Level::Info, &line);
        }
        Ok(())
    })
}

/// Zeroes the context's counters and restarts its clock.
#[no_mangle]
pub extern "C" fn bitnet_perf_context_reset(ctx: *mut bitnet_context) {
    call_void(|| {
        ctx_mut(ctx)?.ctx.perf_reset();
        Ok(())
    })
}

/// A chain's counters; all zero if chain is NULL or not a chain.
#[no_mangle]
pub extern "C" fn bitnet_perf_sampler(chain: *const bitnet_sampler) -> bitnet_perf_sampler_data {
    call(bitnet_perf_sampler_data::default(), || {
        let d = sampler_chain_ref(chain)?.perf();
        Ok(bitnet_perf_sampler_data {
            t_sample_ms: d.t_sample_ms,
            n_sample: d.n_sample,
        })
    })
}

/// Logs a chain's counters (info level).
#[no_mangle]
pub extern "C" fn bitnet_perf_sampler_print(chain: *const bitnet_sampler) {
    call_void(|| {
        let d = sampler_chain_ref(chain)?.perf();
        let per = if d.n_sample > 0 {
            d.t_sample_ms / f64::from(d.n_sample)
        } else {
            0.0
        };
        let tps = if d.t_sample_ms > 0.0 {
            1e3 * f64::from(d.n_sample) / d.t_sample_ms
        } else {
            0.0
        };
        log(
            Level::Info,
            &format!(
                "perf:    sampling time = {:10.2} ms / {:5} runs   ({per:8.2} ms per token, {tps:8.2} tokens per second)",
                d.t_sample_ms, d.n_sample
            ),
        );
        Ok(())
    })
}

/// Zeroes a chain's counters.
#[no_mangle]
pub extern "C" fn bitnet_perf_sampler_reset(chain: *mut bitnet_sampler) {
    call_void(|| {
        sampler_chain_mut(chain)?.perf_reset();
        Ok(())
    })
}
