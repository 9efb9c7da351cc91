//! Sampling: the llama.cpp sampler chain, behaving exactly like the reference (the BitNet fork of
//! llama.cpp, Oct 2024 sampler API). See `spec/SAMPLER.md` and `golden/sampling/chains.md`.
//!
//! Data flow of one step ([`Chain::sample`]): logits → [`TokenDataArray`] (all ids, id order,
//! unsorted, `p = 0`) → every sampler's [`Sampler::apply`] in insertion order → the token at
//! `selected` → [`Sampler::accept`] on the chain (penalties remember it).
//!
//! Modules, one job each:
//! - `rng`: `std::mt19937` and libstdc++'s `discrete_distribution` draw, bit for bit;
//! - `stdsort`: libstdc++'s `std::sort` / `std::partial_sort`, so ties land where they do there;
//! - `candidates`: the candidate array and the shared softmax / top-k steps;
//! - `select` (greedy, dist, softmax), `truncate` (top-k, top-p, min-p, typical, tail-free),
//!   `temperature` (temp, temp-ext), `penalties`, `logit_bias`, `mirostat` (v1, v2),
//!   `adaptive_p`;
//! - `chain`: the chain with its perf counters; [`spec`]: chains from a short text notation.
//!   (The golden chains a..h and the `.trace`/`.probe` parsers are test code:
//!   `tests/common/golden.rs`.)
//!
//! Verification beyond the unit tests: `crosscheck` (test-only) pins tie order and draws against
//! real libstdc++ 12 (harness in `testdata/libstdcxx_crosscheck.cpp`); `testdata/pyref_golden/`
//! replays all 32 golden sampling traces on logits from the shared numpy oracle.

mod adaptive_p;
mod candidates;
mod chain;
#[cfg(test)]
mod crosscheck;
mod dry;
pub mod grammar;
mod helpers;
mod infill;
mod json;
pub mod json_schema;
mod logit_bias;
mod mirostat;
mod penalties;
mod rng;
mod select;
pub mod spec;
mod stdsort;
mod temperature;
mod top_n_sigma;
mod truncate;
mod xtc;

pub use adaptive_p::AdaptiveP;
pub use candidates::{TokenData, TokenDataArray};
pub use chain::{Chain, ChainParams, PerfSamplerData};
pub use dry::Dry;
pub use grammar::{Grammar, GrammarSampler, GrammarVocab};
pub use helpers::{argmax, top_k};
pub use infill::Infill;
pub use logit_bias::{LogitBias, LogitBiasSampler};
pub use mirostat::{Mirostat, MirostatV2};
pub use penalties::Penalties;
pub use rng::{Mt19937, DEFAULT_SEED};
pub use select::{Dist, Greedy, Softmax};
pub use temperature::{Temp, TempExt};
pub use top_n_sigma::TopNSigma;
pub use truncate::{MinP, TailFree, TopK, TopP, Typical};
pub use xtc::Xtc;

/// One step of a sampler chain. Mirrors `struct llama_sampler_i` of the reference: `apply` may
/// reorder, rescale, truncate the candidates or set `selected`; `accept` is told the token that
/// was finally chosen; `reset` returns the sampler to its freshly-built state.
///
/// `Any` is a supertrait so that code holding a `dyn Sampler` can find a concrete type (the C
/// API recognises the members of a chain that are C handles this way).
pub trait Sampler: Send + std::any::Any {
    /// The reference's name (`llama_sampler_name`), e.g. `"top-k"`.
    fn name(&self) -> &'static str;
    /// Transform the candidates (`llama_sampler_apply`).
    fn apply(&mut self, cur: &mut TokenDataArray);
    /// Record the chosen token (`llama_sampler_accept`). Most samplers keep no history.
    fn accept(&mut self, _token: i32) {}
    /// Back to the initial state (`llama_sampler_reset`): RNGs re-seeded, histories cleared.
    fn reset(&mut self) {}
    /// A copy with the same state, as `llama_sampler_clone` makes it (including the fork's
    /// quirks, see each sampler).
    fn clone_box(&self) -> Box<dyn Sampler>;
    /// [`Sampler::clone_box`] for samplers that may fail to clone (a C sampler without a clone
    /// function, and chains holding one); the default never fails.
    fn try_clone_box(&self) -> crate::Result<Box<dyn Sampler>> {
        Ok(self.clone_box())
    }
    /// The seed actually in use (`llama_sampler_get_seed`); [`DEFAULT_SEED`] for samplers
    /// without an RNG.
    fn seed(&self) -> u32 {
        DEFAULT_SEED
    }
    /// `Some` for a [`Chain`], so callers holding a `dyn Sampler` (the C API) can reach the
    /// chain-only operations.
    fn as_chain(&self) -> Option<&Chain> {
        None
    }
    /// Mutable form of [`Sampler::as_chain`].
    fn as_chain_mut(&mut self) -> Option<&mut Chain> {
        None
    }
}

impl Clone for Box<dyn Sampler> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

impl std::fmt::Debug for dyn Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
