//! The samplers that pick a token, and the explicit softmax the fork needs before `dist`.

use super::candidates::{self, TokenDataArray};
use super::rng::{self, Mt19937};
use super::Sampler;

/// `llama_sampler_init_greedy()`: the first candidate with the strictly largest logit, in the
/// array's current order (on the unsorted full array: the lowest id among equal maxima).
#[derive(Debug, Clone, Default)]
pub struct Greedy;

impl Sampler for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        // The reference sets 0 even for an empty array; the chain then reports the error.
        let mut best = 0usize;
        for i in 1..cur.data.len() {
            if cur.data[i].logit > cur.data[best].logit {
                best = i;
            }
        }
        cur.selected = best as i64;
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_softmax()` (fork only): sort descending if unsorted, then probabilities.
/// The fork's `dist` reads `p` without computing it, so a chain must put this right before it.
#[derive(Debug, Clone, Default)]
pub struct Softmax;

impl Sampler for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        candidates::softmax(cur);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_dist(seed)`: a `discrete_distribution` draw over the candidates' current
/// `p` values in the current order. It does NOT compute probabilities (see [`Softmax`]); with
/// all `p = 0` it always selects index 0 (and still consumes two RNG outputs).
#[derive(Debug, Clone)]
pub struct Dist {
    seed_requested: u32,
    seed_cur: u32,
    rng: Mt19937,
}

impl Dist {
    /// [`super::DEFAULT_SEED`] picks a random seed (see [`Sampler::seed`] for the one in use).
    pub fn new(seed: u32) -> Self {
        let seed_cur = rng::resolve_seed(seed);
        Dist {
            seed_requested: seed,
            seed_cur,
            rng: Mt19937::new(seed_cur),
        }
    }
}

impl Sampler for Dist {
    fn name(&self) -> &'static str {
        "dist"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        let weights: Vec<f32> = cur.data.iter().map(|t| t.p).collect();
        cur.selected = rng::discrete_distribution_sample(&weights, &mut self.rng) as i64;
    }
    fn reset(&mut self) {
        self.seed_cur = rng::resolve_seed(self.seed_requested);
        self.rng.seed(self.seed_cur);
    }
    /// As the fork: a new `dist(seed)` (so a default seed resolves afresh for `seed()`) whose
    /// generator state is copied from this one.
    fn clone_box(&self) -> Box<dyn Sampler> {
        let mut copy = Dist::new(self.seed_requested);
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

    fn arr(logits: &[f32]) -> TokenDataArray {
        TokenDataArray::from_logits(logits)
    }

    #[test]
    fn greedy_first_maximum_wins() {
        let mut cur = arr(&[0.5, 2.0, -1.0, 2.0]);
        Greedy.apply(&mut cur);
        assert_eq!(cur.selected, 1);
        assert_eq!(cur.selected_token().unwrap().id, 1);
    }

    #[test]
    fn greedy_scans_current_order() {
        let mut cur = arr(&[2.0, 1.0, 2.0]);
        cur.data.swap(0, 2); // ids 2, 1, 0
        Greedy.apply(&mut cur);
        assert_eq!(cur.selected_token().unwrap().id, 2);
    }

    #[test]
    fn dist_without_softmax_always_picks_index_zero() {
        let mut d = Dist::new(42);
        for _ in 0..10 {
            let mut cur = arr(&[0.1, 5.0, 0.3]);
            d.apply(&mut cur);
            assert_eq!(cur.selected, 0);
        }
    }

    #[test]
    fn dist_draws_from_p_in_current_order() {
        // p = (0.25, 0.75): index 0 iff u <= 0.25.
        let mut d = Dist::new(1234);
        let mut reference = Mt19937::new(1234);
        for _ in 0..100 {
            let mut cur = arr(&[0.0, 0.0]);
            cur.data[0].p = 0.25;
            cur.data[1].p = 0.75;
            d.apply(&mut cur);
            let u = reference.next_canonical_f64();
            assert_eq!(cur.selected, if u <= 0.25 { 0 } else { 1 });
        }
    }

    #[test]
    fn dist_single_candidate_draws_nothing() {
        let mut d = Dist::new(5);
        let mut cur = arr(&[1.0]);
        cur.data[0].p = 1.0;
        d.apply(&mut cur);
        assert_eq!(cur.selected, 0);
        // The generator has not moved: the next two-candidate draw equals a fresh one.
        let mut fresh = Dist::new(5);
        let mut a = arr(&[0.0, 0.0]);
        a.data[0].p = 0.5;
        a.data[1].p = 0.5;
        let mut b = a.clone();
        d.apply(&mut a);
        fresh.apply(&mut b);
        assert_eq!(a.selected, b.selected);
        assert_eq!(d.rng.next_u32(), fresh.rng.next_u32());
    }

    #[test]
    fn dist_reset_reseeds_clone_copies_state() {
        let mut d = Dist::new(9);
        let first = d.rng.next_u32();
        d.rng.next_u32();
        let c = d.clone_box();
        assert_eq!(c.seed(), 9);
        d.reset();
        assert_eq!(d.rng.next_u32(), first);
        assert_eq!(d.seed(), 9);
    }

    #[test]
    fn dist_default_seed_reports_resolved_seed() {
        let d = Dist::new(crate::sampling::DEFAULT_SEED);
        // The resolved seed is what get_seed reports; it reproduces the sequence.
        let mut a = d.rng.clone();
        let mut b = Mt19937::new(d.seed());
        assert_eq!(a.next_u32(), b.next_u32());
    }
}
