//! Mirostat v1 and v2 (target-surprise sampling). Both select a token themselves, with their own
//! `mt19937` and the same `discrete_distribution` draw as `dist`. No golden trace covers them;
//! they follow the fork's code statement by statement (float math, `int()` conversions).

use super::candidates::{self, float_to_int_x86, TokenDataArray};
use super::rng::{self, Mt19937};
use super::Sampler;

fn draw(cur: &mut TokenDataArray, rng: &mut Mt19937) -> usize {
    let weights: Vec<f32> = cur.data.iter().map(|t| t.p).collect();
    let idx = rng::discrete_distribution_sample(&weights, rng);
    cur.selected = idx as i64;
    idx
}

/// `llama_sampler_init_mirostat(n_vocab, seed, tau, eta, m)`: estimates the Zipf exponent `s`
/// from the top `m` probabilities, derives k from `mu`, keeps the top k, softmax, draws, then
/// `mu -= eta * (surprise - tau)`. `mu` starts at `2 * tau`.
#[derive(Debug, Clone)]
pub struct Mirostat {
    n_vocab: i32,
    seed_requested: u32,
    seed_cur: u32,
    tau: f32,
    eta: f32,
    m: i32,
    mu: f32,
    rng: Mt19937,
}

impl Mirostat {
    pub fn new(n_vocab: i32, seed: u32, tau: f32, eta: f32, m: i32) -> Self {
        let seed_cur = rng::resolve_seed(seed);
        Mirostat {
            n_vocab,
            seed_requested: seed,
            seed_cur,
            tau,
            eta,
            m,
            mu: 2.0 * tau,
            rng: Mt19937::new(seed_cur),
        }
    }

    /// The current target surprise.
    pub fn mu(&self) -> f32 {
        self.mu
    }
}

impl Sampler for Mirostat {
    fn name(&self) -> &'static str {
        "mirostat"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if cur.data.is_empty() {
            return;
        }
        candidates::softmax(cur);
        let mut sum_ti_bi = 0.0f32;
        let mut sum_ti_sq = 0.0f32;
        // `i < size_t(m - 1) && i < size - 1`, size_t arithmetic (m = 0 wraps to "no limit").
        let limit_m = (self.m as i64 - 1) as u64 as usize;
        let limit_n = cur.data.len() - 1;
        let mut i = 0usize;
        while i < limit_m && i < limit_n {
            let t_i = ((i + 2) as f32 / (i + 1) as f32).ln();
            let b_i = (cur.data[i].p / cur.data[i + 1].p).ln();
            sum_ti_bi += t_i * b_i;
            sum_ti_sq += t_i * t_i;
            i += 1;
        }
        let s_hat = sum_ti_bi / sum_ti_sq;
        let epsilon_hat = s_hat - 1.0;
        let k = ((epsilon_hat * 2.0f32.powf(self.mu))
            / (1.0 - (self.n_vocab as f32).powf(-epsilon_hat)))
        .powf(1.0 / s_hat);

        candidates::top_k(cur, float_to_int_x86(k).max(1));
        candidates::softmax(cur);
        let idx = draw(cur, &mut self.rng);

        let observed_surprise = -cur.data[idx].p.log2();
        let e = observed_surprise - self.tau;
        self.mu -= self.eta * e;
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.seed_cur = rng::resolve_seed(self.seed_requested);
        self.rng.seed(self.seed_cur);
    }
    /// The fork's clone copies the state into the *source* (a bug), so the clone starts fresh:
    /// `mu = 2 tau` and a newly seeded generator. Reproduced.
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(Mirostat::new(
            self.n_vocab,
            self.seed_requested,
            self.tau,
            self.eta,
            self.m,
        ))
    }
    fn seed(&self) -> u32 {
        self.seed_cur
    }
}

/// `llama_sampler_init_mirostat_v2(seed, tau, eta)`: softmax, drop every token whose surprise
/// `-log2f(p)` exceeds `mu` (from the first such token on, keeping at least one), softmax again,
/// draw, then `mu -= eta * (surprise - tau)`. `mu` starts at `2 * tau`.
#[derive(Debug, Clone)]
pub struct MirostatV2 {
    seed_requested: u32,
    seed_cur: u32,
    tau: f32,
    eta: f32,
    mu: f32,
    rng: Mt19937,
}

impl MirostatV2 {
    pub fn new(seed: u32, tau: f32, eta: f32) -> Self {
        let seed_cur = rng::resolve_seed(seed);
        MirostatV2 {
            seed_requested: seed,
            seed_cur,
            tau,
            eta,
            mu: 2.0 * tau,
            rng: Mt19937::new(seed_cur),
        }
    }

    /// The current target surprise.
    pub fn mu(&self) -> f32 {
        self.mu
    }
}

impl Sampler for MirostatV2 {
    fn name(&self) -> &'static str {
        "mirostat-v2"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if cur.data.is_empty() {
            return;
        }
        candidates::softmax(cur);
        let keep = cur
            .data
            .iter()
            .position(|t| -t.p.log2() > self.mu)
            .unwrap_or(cur.data.len())
            .max(1);
        cur.data.truncate(keep);
        candidates::softmax(cur);
        let idx = draw(cur, &mut self.rng);

        let observed_surprise = -cur.data[idx].p.log2();
        let e = observed_surprise - self.tau;
        self.mu -= self.eta * e;
    }
    fn reset(&mut self) {
        self.mu = 2.0 * self.tau;
        self.seed_cur = rng::resolve_seed(self.seed_requested);
        self.rng.seed(self.seed_cur);
    }
    /// Unlike v1, the fork's v2 clone copies `mu` and the generator state.
    fn clone_box(&self) -> Box<dyn Sampler> {
        let mut copy = MirostatV2::new(self.seed_requested, self.tau, self.eta);
        copy.mu = self.mu;
        copy.rng = self.rng.clone();
        Box::new(copy)
    }
    fn seed(&self) -> u32 {
        self.seed_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipf_logits(n: usize) -> Vec<f32> {
        // p_i ∝ 1/(i+1): s = 1 exactly.
        (0..n).map(|i| -((i + 1) as f32).ln()).collect()
    }

    #[test]
    fn v2_truncates_by_surprise_and_updates_mu() {
        // p ∝ 8, 4, 2, 1, 1 (sum 16): surprises 1, 2, 3, 4, 4 bits. tau = 1.25 -> mu = 2.5:
        // keep the first two (surprise 1 and 2), renormalise to 2/3, 1/3.
        let logits: Vec<f32> = [8.0f32, 4.0, 2.0, 1.0, 1.0]
            .iter()
            .map(|w| w.ln())
            .collect();
        let mut s = MirostatV2::new(3, 1.25, 0.5);
        let mut cur = TokenDataArray::from_logits(&logits);
        s.apply(&mut cur);
        assert_eq!(cur.len(), 2);
        assert!((cur.data[0].p - 2.0 / 3.0).abs() < 1e-6);
        let idx = cur.selected as usize;
        assert!(idx < 2);
        // The draw is the shared one: recompute with a fresh generator.
        let mut rng = Mt19937::new(3);
        let u = rng.next_canonical_f64();
        let expect = if u <= cur.data[0].p as f64 / (cur.data[0].p + cur.data[1].p) as f64 {
            0
        } else {
            1
        };
        assert_eq!(idx, expect);
        let surprise = -cur.data[idx].p.log2();
        assert_eq!(s.mu(), 2.5 - 0.5 * (surprise - 1.25));
        let before = s.mu();
        let c = s.clone_box();
        s.reset();
        assert_eq!(s.mu(), 2.5);
        assert_eq!(c.seed(), 3);
        assert_ne!(before, 2.5);
    }

    #[test]
    fn v2_keeps_at_least_one() {
        let mut s = MirostatV2::new(1, 0.0, 0.1); // mu = 0: every surprise exceeds it
        let mut cur = TokenDataArray::from_logits(&[1.0, 0.5, 0.0]);
        s.apply(&mut cur);
        assert_eq!(cur.len(), 1);
        assert_eq!(cur.selected, 0);
        assert_eq!(cur.data[0].id, 0);
    }

    #[test]
    fn v1_on_zipf_estimates_k_from_the_formula() {
        // With p ∝ 1/(i+1)^2, b_i = 2 t_i, so s_hat = 2, eps = 1 and
        // k = (2^mu / (1 - 1/n))^(1/2) = sqrt(64 / 0.999) = 8.004 for mu = 2 tau = 6 -> 8 kept.
        let n: usize = 1000;
        let logits: Vec<f32> = (0..n).map(|i| -2.0 * ((i + 1) as f32).ln()).collect();
        let mut s = Mirostat::new(n as i32, 11, 3.0, 0.1, 100);
        let mut cur = TokenDataArray::from_logits(&logits);
        s.apply(&mut cur);
        assert_eq!(cur.len(), 8);
        assert!(cur.sorted);
        assert!((cur.selected as usize) < cur.len());
        // p renormalised over the 8 kept; mu moved by eta * (surprise - tau).
        let total: f32 = cur.data.iter().map(|t| t.p).sum();
        assert!((total - 1.0).abs() < 1e-6);
        let surprise = -cur.data[cur.selected as usize].p.log2();
        assert_eq!(s.mu(), 6.0 - 0.1 * (surprise - 3.0));
    }

    #[test]
    fn v1_clone_starts_fresh_like_the_fork() {
        let mut s = Mirostat::new(100, 5, 2.0, 0.5, 10);
        let mut cur = TokenDataArray::from_logits(&zipf_logits(100));
        s.apply(&mut cur);
        assert_ne!(s.mu(), 4.0);
        let mut c = s.clone_box();
        let mut fresh = Mirostat::new(100, 5, 2.0, 0.5, 10);
        let mut a = TokenDataArray::from_logits(&zipf_logits(100));
        let mut b = a.clone();
        c.apply(&mut a);
        fresh.apply(&mut b);
        assert_eq!(a, b);
    }
}
