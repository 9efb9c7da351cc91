//! The sampler chain (`llama_sampler_chain_*`): samplers applied in insertion order, plus the
//! perf counters `llama_perf_sampler` reports.

use std::time::Instant;

use super::candidates::TokenDataArray;
use super::rng::DEFAULT_SEED;
use super::Sampler;
use crate::{Error, Result};

/// `llama_sampler_chain_params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainParams {
    /// Skip the timing measurements (the count of accepted tokens is kept either way).
    pub no_perf: bool,
}

impl Default for ChainParams {
    /// `llama_sampler_chain_default_params()`: `no_perf = true`.
    fn default() -> Self {
        ChainParams { no_perf: true }
    }
}

/// `llama_perf_sampler_data`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfSamplerData {
    pub t_sample_ms: f64,
    pub n_sample: i32,
}

impl std::fmt::Display for PerfSamplerData {
    /// The text of `llama_perf_sampler_print` (after its function-name prefix).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.n_sample as f64;
        write!(
            f,
            "sampling time = {:10.2} ms / {:5} runs   ({:8.2} ms per token, {:8.2} tokens per second)",
            self.t_sample_ms,
            self.n_sample,
            self.t_sample_ms / n,
            1e3 / self.t_sample_ms * n
        )
    }
}

/// An ordered list of samplers; itself a [`Sampler`] (chains nest, as in the reference).
pub struct Chain {
    params: ChainParams,
    samplers: Vec<Box<dyn Sampler>>,
    /// Time spent in `apply` and `accept`, microseconds (only when `!no_perf`).
    pub t_sample_us: i64,
    /// Number of `accept` calls since creation or the last reset.
    pub n_sample: i32,
    /// The candidate array [`Chain::sample`] refills for every step (n_vocab entries kept, so
    /// a step allocates nothing once the first one ran).
    cur: TokenDataArray,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.samplers.iter().map(|s| s.name()).collect();
        f.debug_struct("Chain")
            .field("params", &self.params)
            .field("samplers", &names)
            .field("t_sample_us", &self.t_sample_us)
            .field("n_sample", &self.n_sample)
            .finish()
    }
}

/// Adds the elapsed time to a counter when dropped, unless disabled (the reference's
/// `time_meas`).
struct TimeMeasure<'a> {
    start: Option<Instant>,
    acc: &'a mut i64,
}

impl<'a> TimeMeasure<'a> {
    fn new(acc: &'a mut i64, disabled: bool) -> Self {
        TimeMeasure {
            start: (!disabled).then(Instant::now),
            acc,
        }
    }
}

impl Drop for TimeMeasure<'_> {
    fn drop(&mut self) {
        if let Some(start) = self.start {
            *self.acc += start.elapsed().as_micros() as i64;
        }
    }
}

impl Chain {
    /// `llama_sampler_chain_init(params)`: an empty chain.
    pub fn new(params: ChainParams) -> Self {
        Chain {
            params,
            samplers: Vec::new(),
            t_sample_us: 0,
            n_sample: 0,
            cur: TokenDataArray::default(),
        }
    }

    pub fn params(&self) -> ChainParams {
        self.params
    }

    /// `llama_sampler_chain_add`: append (the chain owns it).
    pub fn add(&mut self, sampler: Box<dyn Sampler>) {
        self.samplers.push(sampler);
    }

    /// Builder form of [`Chain::add`].
    pub fn with(mut self, sampler: impl Sampler + 'static) -> Self {
        self.add(Box::new(sampler));
        self
    }

    /// `llama_sampler_chain_get`: the i-th sampler, `None` if out of range.
    pub fn get(&self, i: i32) -> Option<&dyn Sampler> {
        let i = usize::try_from(i).ok()?;
        self.samplers.get(i).map(|s| s.as_ref())
    }

    /// Mutable form of [`Chain::get`].
    pub fn get_mut(&mut self, i: i32) -> Option<&mut (dyn Sampler + 'static)> {
        let i = usize::try_from(i).ok()?;
        self.samplers.get_mut(i).map(|s| s.as_mut())
    }

    /// `llama_sampler_chain_remove`: take the i-th sampler out (ownership back to the caller).
    pub fn remove(&mut self, i: i32) -> Option<Box<dyn Sampler>> {
        let i = usize::try_from(i).ok()?;
        (i < self.samplers.len()).then(|| self.samplers.remove(i))
    }

    /// `llama_sampler_chain_n`.
    pub fn len(&self) -> usize {
        self.samplers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samplers.is_empty()
    }

    /// `llama_sampler_sample` on a logits row: build the candidates (all ids, id order),
    /// apply the chain, take the selected token, accept it, return it. Errors (never panics)
    /// when the logits are empty or no sampler selected a valid candidate.
    pub fn sample(&mut self, logits: &[f32]) -> Result<i32> {
        if logits.is_empty() {
            return Err(Error::invalid_argument(
                "sampler chain: the logits row is empty (n_vocab = 0)",
            ));
        }
        // The chain's own buffer, refilled: no n_vocab allocation per step.
        let mut cur = std::mem::take(&mut self.cur);
        cur.fill_from_logits(logits);
        self.apply(&mut cur);
        let selected = cur.selected_token();
        let (sel, left) = (cur.selected, cur.len());
        self.cur = cur;
        let token = selected.ok_or_else(|| {
            Error::invalid_argument(format!(
                "sampler chain [{}]: no token selected (selected = {sel}, {left} candidates \
                 left); the chain must end in greedy, dist or a mirostat sampler",
                self.names().join(", "),
            ))
        })?;
        self.accept(token.id);
        Ok(token.id)
    }

    /// The samplers' names in order, e.g. for messages.
    pub fn names(&self) -> Vec<&'static str> {
        self.samplers.iter().map(|s| s.name()).collect()
    }

    /// `llama_sampler_get_seed` on the chain: see [`Sampler::seed`] (the last seeded sampler's
    /// seed in use, [`DEFAULT_SEED`] if none).
    pub fn get_seed(&self) -> u32 {
        Sampler::seed(self)
    }

    /// `llama_perf_sampler`.
    pub fn perf(&self) -> PerfSamplerData {
        PerfSamplerData {
            t_sample_ms: 1e-3 * self.t_sample_us as f64,
            n_sample: self.n_sample.max(0),
        }
    }

    /// `llama_perf_sampler_reset`.
    pub fn perf_reset(&mut self) {
        self.t_sample_us = 0;
        self.n_sample = 0;
    }
}

impl Sampler for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        let _t = TimeMeasure::new(&mut self.t_sample_us, self.params.no_perf);
        for s in self.samplers.iter_mut() {
            s.apply(cur);
        }
    }

    fn accept(&mut self, token: i32) {
        {
            let _t = TimeMeasure::new(&mut self.t_sample_us, self.params.no_perf);
            for s in self.samplers.iter_mut() {
                s.accept(token);
            }
        }
        self.n_sample += 1;
    }

    /// Resets every sampler and the perf counters.
    fn reset(&mut self) {
        for s in self.samplers.iter_mut() {
            s.reset();
        }
        self.t_sample_us = 0;
        self.n_sample = 0;
    }

    /// A chain with the same params and a clone of every sampler; perf counters start at 0.
    fn clone_box(&self) -> Box<dyn Sampler> {
        let mut c = Chain::new(self.params);
        for s in &self.samplers {
            c.add(s.clone_box());
        }
        Box::new(c)
    }

    /// [`Chain::clone_box`], failing (the clones made so far dropped) if a member cannot be
    /// cloned.
    fn try_clone_box(&self) -> Result<Box<dyn Sampler>> {
        let mut c = Chain::new(self.params);
        for s in &self.samplers {
            c.add(s.try_clone_box()?);
        }
        Ok(Box::new(c))
    }

    /// The seed of the last sampler that has one (searching from the end), else the default.
    fn seed(&self) -> u32 {
        self.samplers
            .iter()
            .rev()
            .map(|s| s.seed())
            .find(|&s| s != DEFAULT_SEED)
            .unwrap_or(DEFAULT_SEED)
    }

    fn as_chain(&self) -> Option<&Chain> {
        Some(self)
    }

    fn as_chain_mut(&mut self) -> Option<&mut Chain> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::rng::Mt19937;
    use crate::sampling::{Dist, Greedy, Penalties, Softmax, Temp, TopK};
    use crate::ErrorKind;

    #[test]
    fn empty_logits_and_no_selector_are_errors() {
        let mut c = Chain::new(ChainParams::default()).with(Greedy);
        assert_eq!(
            c.sample(&[]).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        let mut c = Chain::new(ChainParams::default()).with(TopK { k: 2 });
        let e = c.sample(&[1.0, 2.0]).unwrap_err();
        assert!(e.message().contains("no token selected"), "{e}");
        // top-k 0 then greedy on an empty... top_k can't empty a non-empty array; an empty
        // chain selects nothing either.
        let mut c = Chain::new(ChainParams::default());
        assert!(c.sample(&[1.0]).is_err());
    }

    #[test]
    fn greedy_chain_picks_argmax_and_counts() {
        let mut c = Chain::new(ChainParams::default()).with(Greedy);
        assert_eq!(c.sample(&[0.1, 0.9, 0.9, 0.2]).unwrap(), 1);
        assert_eq!(c.sample(&[3.0, 0.9]).unwrap(), 0);
        assert_eq!(c.perf().n_sample, 2);
        assert_eq!(c.t_sample_us, 0, "no_perf chains do not time");
        c.perf_reset();
        assert_eq!(c.perf().n_sample, 0);
    }

    #[test]
    fn penalties_in_chain_see_only_accepted_tokens() {
        // Repeat penalty 100 makes a token that was just sampled lose to the runner-up.
        let mut c = Chain::new(ChainParams::default())
            .with(Penalties::new(64, 100.0, 0.0, 0.0))
            .with(Greedy);
        let logits = [1.0, 2.0, 1.5];
        assert_eq!(c.sample(&logits).unwrap(), 1);
        assert_eq!(c.sample(&logits).unwrap(), 2);
        assert_eq!(c.sample(&logits).unwrap(), 0);
        c.reset();
        assert_eq!(c.sample(&logits).unwrap(), 1);
    }

    #[test]
    fn replay_temp_softmax_dist_by_hand() {
        // The whole `temp, softmax, dist` pipeline recomputed independently on fixed logits for
        // 50 steps: sort descending (no ties here), p = expf(l/t - max) / float sum, prefix sums
        // in double, u from the seed's generator, first prefix >= u.
        let logits: Vec<f32> = (0..50)
            .map(|i| ((i * 17 % 23) as f32) * 0.3 - 2.0 + i as f32 * 1e-3)
            .collect();
        let mut c = Chain::new(ChainParams::default())
            .with(Temp { t: 0.8 })
            .with(Softmax)
            .with(Dist::new(42));
        let mut rng = Mt19937::new(42);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap());
        let scaled: Vec<f32> = order.iter().map(|&i| logits[i] / 0.8).collect();
        let e: Vec<f32> = scaled.iter().map(|l| (l - scaled[0]).exp()).collect();
        let s = e.iter().fold(0.0f32, |a, &b| a + b);
        let p: Vec<f32> = e.iter().map(|x| x / s).collect();
        let total: f64 = p.iter().map(|&x| x as f64).sum();
        let mut prefix = Vec::new();
        let mut run = 0.0f64;
        for &x in &p {
            run += x as f64 / total;
            prefix.push(run);
        }
        *prefix.last_mut().unwrap() = 1.0;
        for step in 0..50 {
            let u = rng.next_canonical_f64();
            let idx = prefix.iter().position(|&c| c >= u).unwrap();
            assert_eq!(c.sample(&logits).unwrap(), order[idx] as i32, "step {step}");
        }
        assert_eq!(c.seed(), 42);
    }

    #[test]
    fn get_remove_len_names_and_seed() {
        let mut c = Chain::new(ChainParams::default())
            .with(Dist::new(7))
            .with(TopK { k: 3 })
            .with(Dist::new(9));
        assert_eq!(c.len(), 3);
        assert_eq!(c.names(), vec!["dist", "top-k", "dist"]);
        assert_eq!(c.seed(), 9);
        assert_eq!(c.get_seed(), 9);
        assert!(c.get(3).is_none());
        assert!(c.get(-1).is_none());
        assert_eq!(c.get(1).unwrap().name(), "top-k");
        let removed = c.remove(2).unwrap();
        assert_eq!(removed.seed(), 9);
        assert_eq!(c.seed(), 7);
        assert!(c.remove(5).is_none());
        let only_topk = Chain::new(ChainParams::default()).with(TopK { k: 1 });
        assert_eq!(only_topk.seed(), DEFAULT_SEED);
        assert!(c.as_chain().is_some());
    }

    #[test]
    fn clone_continues_the_same_random_sequence() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut a = Chain::new(ChainParams::default())
            .with(Softmax)
            .with(Dist::new(1234));
        for _ in 0..5 {
            a.sample(&logits).unwrap();
        }
        let mut b = a.clone_box();
        let b = b.as_chain_mut().unwrap();
        for _ in 0..20 {
            assert_eq!(a.sample(&logits).unwrap(), b.sample(&logits).unwrap());
        }
    }

    #[test]
    fn perf_counts_time_when_enabled() {
        let mut c = Chain::new(ChainParams { no_perf: false }).with(Greedy);
        let logits = vec![0.5f32; 100_000];
        for _ in 0..3 {
            c.sample(&logits).unwrap();
        }
        let perf = c.perf();
        assert_eq!(perf.n_sample, 3);
        assert!(perf.t_sample_ms >= 0.0);
        let text = PerfSamplerData {
            t_sample_ms: 2.0,
            n_sample: 4,
        }
        .to_string();
        assert_eq!(
            text,
            "sampling time =       2.00 ms /     4 runs   (    0.50 ms per token,  2000.00 tokens per second)"
        );
        c.reset();
        assert_eq!(c.perf().n_sample, 0);
        assert_eq!(c.t_sample_us, 0);
    }
}
