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
/// The fork's `dist` needed it right before it; this library's [`Dist`] computes the same
/// softmax itself, so it is a harmless extra kept for the fork's chains.
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

/// `llama_sampler_init_dist(seed)` as SAMPLER.md §4 gives it: first exactly what [`Softmax`]
/// does (sort descending if unsorted, float softmax), then the fork's `discrete_distribution`
/// draw over those probabilities in that order. Current llama.h's dist computes the
/// probabilities itself, and clients written for it (`top_k, top_p, temp, dist`) rely on that;
/// the fork's chains put `softmax` right before `dist`, and recomputing it from the same logits
/// gives the same bits, so their tokens are unchanged.
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
        candidates::softmax(cur);
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
    fn dist_computes_the_softmax_itself() {
        // Without a softmax before it, dist still samples from the logits' distribution: over
        // many draws every candidate shows up, the most likely one most often.
        let mut d = Dist::new(42);
        let mut counts = [0usize; 3];
        for _ in 0..2000 {
            let mut cur = arr(&[0.1, 1.5, 0.3]);
            d.apply(&mut cur);
            assert!(cur.sorted);
            counts[cur.selected_token().unwrap().id as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        assert!(counts[1] > counts[0] && counts[1] > counts[2], "{counts:?}");
    }

    #[test]
    fn dist_equals_softmax_then_the_forks_draw() {
        // `softmax, dist` and `dist` alone give the same tokens, and both equal the fork's
        // draw over the sorted softmax probabilities.
        let logits = [0.3f32, -1.0, 2.5, 2.5, 0.0, 1.25];
        let mut alone = Dist::new(777);
        let mut after_softmax = Dist::new(777);
        let mut reference = Mt19937::new(777);
        for _ in 0..200 {
            let mut a = arr(&logits);
            alone.apply(&mut a);
            let mut b = arr(&logits);
            Softmax.apply(&mut b);
            let expected_p: Vec<f32> = b.data.iter().map(|t| t.p).collect();
            after_softmax.apply(&mut b);
            assert_eq!(
                a.selected_token().unwrap().id,
                b.selected_token().unwrap().id
            );
            assert_eq!(
                a.data.iter().map(|t| t.p).collect::<Vec<_>>(),
                expected_p,
                "recomputed probabilities are bit-identical"
            );
            let want = rng::discrete_distribution_sample(&expected_p, &mut reference);
            assert_eq!(a.selected, want as i64);
        }
    }

    #[test]
    fn dist_after_low_temperature_is_nearly_greedy() {
        // temp 0.01 then dist: the 1.0 gap becomes 100 in logit space, so the top token wins.
        let mut d = Dist::new(3);
        for _ in 0..200 {
            let mut cur = arr(&[0.5, 1.5, 0.2, 1.0]);
            for t in cur.data.iter_mut() {
                t.logit /= 0.01;
            }
            d.apply(&mut cur);
            assert_eq!(cur.selected_token().unwrap().id, 1);
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
