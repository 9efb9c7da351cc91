//! XTC ("exclude top choices", llama.h `llama_sampler_init_xtc(p, t, min_keep, seed)`): with
//! probability `p`, removes every token whose probability is at least `t` except the least
//! likely of them, so the model picks a less obvious continuation. llama.cpp's semantics:
//! no-op when `p <= 0`, `t > 0.5` or fewer than 2 candidates; one `uniform_real_distribution
//! <float>(0, 1)` draw per apply from its own `std::mt19937(seed)` (libstdc++: one 32-bit
//! output divided by 2^32 in float); softmax (sorted); the kept tail starts at the last token
//! with `p >= t`, and is used only if it has at least `min_keep` tokens and something was cut.

use super::candidates::{self, TokenDataArray};
use super::rng::{self, Mt19937};
use super::Sampler;

#[derive(Debug, Clone)]
pub struct Xtc {
    pub probability: f32,
    pub threshold: f32,
    pub min_keep: usize,
    seed_requested: u32,
    seed_cur: u32,
    rng: Mt19937,
}

/// libstdc++'s `std::uniform_real_distribution<float>(0, 1)(rng)` on an mt19937.
pub(super) fn uniform_f32(rng: &mut Mt19937) -> f32 {
    let r = rng.next_u32() as f32 / 4_294_967_296.0f32;
    if r >= 1.0 {
        1.0f32.next_down_compat()
    } else {
        r
    }
}

trait NextDown {
    fn next_down_compat(self) -> Self;
}
impl NextDown for f32 {
    fn next_down_compat(self) -> f32 {
        f32::from_bits(self.to_bits() - 1)
    }
}

impl Xtc {
    pub fn new(probability: f32, threshold: f32, min_keep: usize, seed: u32) -> Xtc {
        let seed_cur = rng::resolve_seed(seed);
        Xtc {
            probability,
            threshold,
            min_keep,
            seed_requested: seed,
            seed_cur,
            rng: Mt19937::new(seed_cur),
        }
    }
}

impl Sampler for Xtc {
    fn name(&self) -> &'static str {
        "xtc"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.probability <= 0.0 || self.threshold > 0.5 || cur.data.len() < 2 {
            return;
        }
        let chance = uniform_f32(&mut self.rng);
        if chance > self.probability {
            return;
        }
        candidates::softmax(cur);
        let mut pos_last = 0usize;
        for (i, t) in cur.data.iter().enumerate() {
            if t.p >= self.threshold {
                pos_last = i;
            } else {
                break;
            }
        }
        if cur.data.len() - pos_last >= self.min_keep && pos_last > 0 {
            cur.data.drain(..pos_last);
        }
    }
    fn reset(&mut self) {
        self.seed_cur = rng::resolve_seed(self.seed_requested);
        self.rng.seed(self.seed_cur);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
    fn seed(&self) -> u32 {
        self.seed_cur
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_top_choices_when_the_draw_says_so() {
        // p = 1: always applies. Probabilities of logits ln(5), ln(3), ln(1), ln(1) are
        // 0.5, 0.3, 0.1, 0.1: with t = 0.25 the tokens >= t are 0 and 1; keep from 1 on.
        let logits = [5f32.ln(), 3f32.ln(), 0.0, 0.0];
        let mut x = Xtc::new(1.0, 0.25, 1, 7);
        let mut cur = TokenDataArray::from_logits(&logits);
        x.apply(&mut cur);
        let ids: Vec<i32> = cur.data.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        // min_keep larger than the tail: nothing removed.
        let mut x = Xtc::new(1.0, 0.25, 4, 7);
        let mut cur = TokenDataArray::from_logits(&logits);
        x.apply(&mut cur);
        assert_eq!(cur.len(), 4);
        // Disabled forms.
        for (p, t) in [(0.0, 0.1), (1.0, 0.6)] {
            let mut x = Xtc::new(p, t, 1, 7);
            let mut cur = TokenDataArray::from_logits(&logits);
            x.apply(&mut cur);
            assert_eq!(cur.len(), 4);
            assert!(!cur.sorted);
        }
    }

    #[test]
    fn seeded_draws_are_deterministic_and_reset_restarts() {
        let logits: Vec<f32> = (0..20).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let run = |x: &mut Xtc| -> Vec<usize> {
            (0..50)
                .map(|_| {
                    let mut cur = TokenDataArray::from_logits(&logits);
                    x.apply(&mut cur);
                    cur.len()
                })
                .collect()
        };
        let mut a = Xtc::new(0.5, 0.1, 1, 1234);
        let first = run(&mut a);
        assert!(first.contains(&20) && first.iter().any(|&n| n < 20));
        a.reset();
        assert_eq!(run(&mut a), first);
        let mut b = Xtc::new(0.5, 0.1, 1, 1234);
        assert_eq!(run(&mut b), first);
        // The draw is the first mt19937 output over 2^32 (float): a probability just below it
        // skips the step, one at or above it applies it.
        let u = Mt19937::new(1234).next_u32() as f32 / 4_294_967_296.0f32;
        let mut c = Xtc::new(u * 0.999, 0.1, 1, 1234);
        let mut cur = TokenDataArray::from_logits(&logits);
        c.apply(&mut cur);
        assert_eq!(cur.len(), 20);
        assert!(!cur.sorted);
        let mut c = Xtc::new(u, 0.1, 1, 1234);
        let mut cur = TokenDataArray::from_logits(&logits);
        c.apply(&mut cur);
        assert!(cur.sorted);
        assert_eq!(c.seed(), 1234);
    }
}
