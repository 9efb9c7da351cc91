//! Adaptive-p (llama.h `llama_sampler_init_adaptive_p(target, decay, seed)`, llama.cpp
//! 0c1e57098, PR 17927): selects tokens whose *original* probability is near a target, steering
//! the running average of the chosen tokens' probabilities towards that target. It selects a
//! token, so it ends a chain (like `dist`); llama.cpp suggests only mild truncation (min-p)
//! before it.
//!
//! State: `weighted_sum` = Σ p_k·decay^k and `total_weight` = Σ decay^k over the accepted tokens'
//! original probabilities p_k (newest first), both f32, starting at `target / (1 - decay)` and
//! `1 / (1 - decay)` (as if a long history had hit the target exactly).
//!
//! One `apply`, as llama.cpp computes it (all f32):
//! 1. softmax **without sorting**: `max` = the first logit if `sorted`, else the largest;
//!    `p_i = expf(l_i - max)`, float running sum, `p_i /= sum`, order unchanged;
//! 2. `target < 0`: disabled: draw from these probabilities (as 3. below) and stop;
//! 3. remember every `p_i` (the original probabilities); `t = clamp(target, 0, 1)`,
//!    `adapted = clamp(total_weight == 0 ? t : 2·t - weighted_sum / total_weight, 0, 1)`;
//! 4. every candidate whose logit is not -inf gets a new logit
//!    `5 - 10·d·d / (1 + d)` with `d = |(p_i - adapted) · (1/0.3)|`: 5 at the target, falling
//!    quadratically near it and linearly in the tails (logits of -inf stay -inf);
//! 5. softmax again (unsorted, as 1.), then libstdc++'s `discrete_distribution` draw over the
//!    `p` in array order on its own `std::mt19937` (fewer than 2 candidates: index 0, no draw);
//!    `selected` is that index, which with its token id is kept for `accept`.
//!
//! `accept(token)`: if `token` is the one the last apply selected, `weighted_sum = p_orig +
//! decay·weighted_sum` and `total_weight = 1 + decay·total_weight`; either way the pending
//! selection is forgotten. `reset`: the initial sums, the RNG re-seeded (a default seed draws a
//! new random one). Construction clamps `decay` to [0, 0.99]; `target` is kept as given (a
//! target above 1 is clamped in step 3 but not in the starting average, as in llama.cpp).
//!
//! Clone (as llama.cpp): a new adaptive-p with the same target, decay and requested seed (so
//! its generator starts afresh from that seed, not from the source's state) carrying the sums
//! and the pending selection; the remembered original probabilities are copied too (llama.cpp
//! leaves them empty, so its clone's next accept would read past them). `llama_sampler_get_seed`
//! does not know adaptive-p in llama.cpp: its seed is reported as the default seed here too.
//! An empty candidate array (an assertion in llama.cpp) is left alone and nothing is selected.

use super::candidates::TokenDataArray;
use super::rng::{self, Mt19937};
use super::Sampler;

/// Width of the band around the target (the transform's `DISTRIBUTION_WIDTH`).
const DISTRIBUTION_WIDTH: f32 = 0.3;
/// The logit given to a token exactly at the target.
const PEAK_LOGIT_VALUE: f32 = 5.0;
/// How fast the logit falls off away from the target.
const SHARPNESS: f32 = 10.0;
const INV_WIDTH: f32 = 1.0 / DISTRIBUTION_WIDTH;

/// The adaptive-p sampler; see the module documentation for its exact arithmetic.
#[derive(Debug, Clone)]
pub struct AdaptiveP {
    target: f32,
    decay: f32,
    seed_requested: u32,
    seed_cur: u32,
    rng: Mt19937,
    weighted_sum: f32,
    total_weight: f32,
    original_probs: Vec<f32>,
    pending_token_id: i32,
    pending_token_idx: i32,
}

impl AdaptiveP {
    /// `llama_sampler_init_adaptive_p(target, decay, seed)`: `target` in [0, 1] (negative:
    /// disabled, a plain draw), `decay` clamped to [0, 0.99] (history ≈ 1 / (1 - decay)
    /// tokens), [`super::DEFAULT_SEED`] for a random seed.
    pub fn new(target: f32, decay: f32, seed: u32) -> Self {
        let seed_cur = rng::resolve_seed(seed);
        let decay = decay.clamp(0.0, 0.99);
        AdaptiveP {
            target,
            decay,
            seed_requested: seed,
            seed_cur,
            rng: Mt19937::new(seed_cur),
            weighted_sum: target / (1.0 - decay),
            total_weight: 1.0 / (1.0 - decay),
            original_probs: Vec::new(),
            pending_token_id: -1,
            pending_token_idx: -1,
        }
    }

    /// The decay in use (after clamping).
    pub fn decay(&self) -> f32 {
        self.decay
    }

    /// The probability the next apply aims at: `2·t - weighted_sum / total_weight` clamped to
    /// [0, 1] (`t` = target clamped to [0, 1]).
    pub fn adapted_target(&self) -> f32 {
        let target = clamp_like_std(self.target, 0.0, 1.0);
        let adapted = if self.total_weight == 0.0 {
            target
        } else {
            2.0 * target - (self.weighted_sum / self.total_weight)
        };
        clamp_like_std(adapted, 0.0, 1.0)
    }
}

/// `std::clamp(v, lo, hi)`: `v < lo ? lo : hi < v ? hi : v` (NaN stays NaN).
fn clamp_like_std(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if hi < v {
        hi
    } else {
        v
    }
}

/// llama.cpp's `llama_sampler_softmax_impl(cur_p, false)`: probabilities in the current order;
/// the maximum is the first logit when the array says it is sorted.
fn softmax_unsorted(cur: &mut TokenDataArray) {
    let Some(first) = cur.data.first() else {
        return;
    };
    let mut max_l = first.logit;
    if !cur.sorted {
        for t in &cur.data[1..] {
            // std::max(max_l, x): x only when max_l < x.
            if max_l < t.logit {
                max_l = t.logit;
            }
        }
    }
    let mut sum = 0.0f32;
    for t in cur.data.iter_mut() {
        t.p = (t.logit - max_l).exp();
        sum += t.p;
    }
    for t in cur.data.iter_mut() {
        t.p /= sum;
    }
}

fn draw(cur: &TokenDataArray, rng: &mut Mt19937) -> usize {
    let weights: Vec<f32> = cur.data.iter().map(|t| t.p).collect();
    rng::discrete_distribution_sample(&weights, rng)
}

impl Sampler for AdaptiveP {
    fn name(&self) -> &'static str {
        "adaptive-p"
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if cur.data.is_empty() {
            return;
        }
        softmax_unsorted(cur);
        if self.target < 0.0 {
            cur.selected = draw(cur, &mut self.rng) as i64;
            return;
        }
        self.original_probs.clear();
        self.original_probs.extend(cur.data.iter().map(|t| t.p));
        let adapted = self.adapted_target();
        for t in cur.data.iter_mut() {
            if t.logit == f32::NEG_INFINITY {
                continue;
            }
            let dist = ((t.p - adapted) * INV_WIDTH).abs();
            t.logit = PEAK_LOGIT_VALUE - SHARPNESS * dist * dist / (1.0 + dist);
        }
        softmax_unsorted(cur);
        let idx = draw(cur, &mut self.rng);
        cur.selected = idx as i64;
        self.pending_token_id = cur.data[idx].id;
        self.pending_token_idx = idx as i32;
    }

    fn accept(&mut self, token: i32) {
        if self.pending_token_id == token && token != -1 {
            // llama.cpp asserts the index is valid; a clone made between apply and accept is
            // the only way here without one, and it carries the probabilities (module doc).
            if let Some(&p) = usize::try_from(self.pending_token_idx)
                .ok()
                .and_then(|i| self.original_probs.get(i))
            {
                self.weighted_sum = p + self.decay * self.weighted_sum;
                self.total_weight = 1.0 + self.decay * self.total_weight;
            }
        }
        self.pending_token_id = -1;
        self.pending_token_idx = -1;
    }

    fn reset(&mut self) {
        self.weighted_sum = self.target / (1.0 - self.decay);
        self.total_weight = 1.0 / (1.0 - self.decay);
        self.pending_token_id = -1;
        self.pending_token_idx = -1;
        self.seed_cur = rng::resolve_seed(self.seed_requested);
        self.rng.seed(self.seed_cur);
    }

    fn clone_box(&self) -> Box<dyn Sampler> {
        let mut copy = AdaptiveP::new(self.target, self.decay, self.seed_requested);
        copy.weighted_sum = self.weighted_sum;
        copy.total_weight = self.total_weight;
        copy.pending_token_id = self.pending_token_id;
        copy.pending_token_idx = self.pending_token_idx;
        copy.original_probs = self.original_probs.clone();
        Box::new(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{TokenData, DEFAULT_SEED};

    fn arr(logits: &[f32]) -> TokenDataArray {
        TokenDataArray::from_logits(logits)
    }

    /// The draw as libstdc++ makes it, recomputed: prefix sums of p/Σp in double, the last one
    /// forced to 1, the first prefix >= u (two mt19937 outputs).
    fn expected_draw(p: &[f32], rng: &mut Mt19937) -> usize {
        let total: f64 = p.iter().map(|&x| x as f64).sum();
        let mut run = 0.0f64;
        let mut prefix: Vec<f64> = p
            .iter()
            .map(|&x| {
                run += x as f64 / total;
                run
            })
            .collect();
        *prefix.last_mut().unwrap() = 1.0;
        let u = rng.next_canonical_f64();
        prefix.iter().position(|&c| c >= u).unwrap()
    }

    #[test]
    fn transform_by_hand() {
        // Probabilities 0.5, 0.3, 0.2; target 0.3, decay 0.5: the starting average is the
        // target (0.6 / 2), so adapted = 2·0.3 - 0.3 = 0.3. Distances (|p - 0.3| / 0.3): 2/3, 0,
        // 1/3; logits 5 - 10·d²/(1+d): 5 - 8/3 = 2.3333, 5, 5 - 5/6 = 4.1667.
        let mut s = AdaptiveP::new(0.3, 0.5, 7);
        assert!((s.adapted_target() - 0.3).abs() < 1e-6);
        let mut cur = arr(&[0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()]);
        s.apply(&mut cur);
        let logits: Vec<f32> = cur.data.iter().map(|t| t.logit).collect();
        for (got, want) in logits.iter().zip([7.0 / 3.0, 5.0, 25.0 / 6.0]) {
            assert!((got - want).abs() < 1e-4, "{logits:?}");
        }
        // Then softmax over the new logits, order unchanged (ids 0, 1, 2).
        let e = [(-8.0f64 / 3.0).exp(), 1.0, (-5.0f64 / 6.0).exp()];
        let sum: f64 = e.iter().sum();
        for (t, want) in cur.data.iter().zip(e.iter().map(|x| x / sum)) {
            assert!((t.p as f64 - want).abs() < 1e-5, "{:?}", cur.data);
        }
        assert_eq!(cur.data.iter().map(|t| t.id).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(!cur.sorted);
        // The draw is the seed's first u over those p.
        let mut rng = Mt19937::new(7);
        let p: Vec<f32> = cur.data.iter().map(|t| t.p).collect();
        assert_eq!(cur.selected as usize, expected_draw(&p, &mut rng));
    }

    #[test]
    fn accept_moves_the_average_of_original_probabilities() {
        let mut s = AdaptiveP::new(0.3, 0.5, 11);
        let logits = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let mut cur = arr(&logits);
        s.apply(&mut cur);
        let chosen = cur.selected_token().unwrap().id;
        let p_orig = [0.5f32, 0.3, 0.2][chosen as usize];
        // A token that was not the selected one changes nothing but clears the pending one.
        let mut t = s.clone();
        t.accept((chosen + 1) % 3);
        assert_eq!((t.weighted_sum, t.total_weight), (0.6, 2.0));
        t.accept(chosen);
        assert_eq!((t.weighted_sum, t.total_weight), (0.6, 2.0));
        // The selected token: weighted = p + 0.5·0.6, total = 1 + 0.5·2 = 2, so the next
        // adapted target is 2·0.3 - (p + 0.3) / 2 (0.2 for p = 0.5, 0.3 for p = 0.3, ...).
        s.accept(chosen);
        assert!((s.weighted_sum - (p_orig + 0.3)).abs() < 1e-6);
        assert_eq!(s.total_weight, 2.0);
        let want = 0.6 - (p_orig + 0.3) / 2.0;
        assert!((s.adapted_target() - want).abs() < 1e-6);
        // Accepting again (nothing pending) changes nothing.
        s.accept(chosen);
        assert_eq!(s.total_weight, 2.0);
        // Fixed history of original probabilities 0.5 then 0.1 (decay 0.5), by hand:
        // weighted 0.5 + 0.3 = 0.8, then 0.1 + 0.4 = 0.5; total 2 then 2; average 0.25.
        let mut h = AdaptiveP::new(0.3, 0.5, 1);
        for p in [0.5f32, 0.1] {
            h.original_probs = vec![p];
            h.pending_token_id = 9;
            h.pending_token_idx = 0;
            h.accept(9);
        }
        assert!((h.weighted_sum - 0.5).abs() < 1e-6 && h.total_weight == 2.0);
        assert!((h.adapted_target() - 0.35).abs() < 1e-6);
        // Reset: back to the starting sums.
        h.reset();
        assert_eq!((h.weighted_sum, h.total_weight), (0.6, 2.0));
    }

    #[test]
    fn adapted_target_is_clamped_and_decay_clamped_at_init() {
        assert_eq!(AdaptiveP::new(0.5, 2.0, 1).decay(), 0.99);
        assert_eq!(AdaptiveP::new(0.5, -1.0, 1).decay(), 0.0);
        // Target 1.5: starting average 1.5 (not clamped), t = 1, adapted = 2 - 1.5 = 0.5.
        let s = AdaptiveP::new(1.5, 0.0, 1);
        assert_eq!(s.adapted_target(), 0.5);
        // An average far below the target pushes the adapted target to 1 at most.
        let mut s = AdaptiveP::new(0.9, 0.0, 1);
        s.weighted_sum = 0.1;
        s.total_weight = 1.0;
        assert_eq!(s.adapted_target(), 1.0);
        s.total_weight = 0.0;
        assert_eq!(s.adapted_target(), 0.9);
    }

    #[test]
    fn negative_target_draws_from_the_unsorted_softmax() {
        let logits = [0.1f32, 2.0, -1.0, 1.0];
        let mut s = AdaptiveP::new(-1.0, 0.9, 5);
        let start = (s.weighted_sum, s.total_weight);
        let mut rng = Mt19937::new(5);
        for _ in 0..20 {
            let mut cur = arr(&logits);
            s.apply(&mut cur);
            // Logits untouched, p = softmax in id order.
            assert_eq!(cur.data.iter().map(|t| t.logit).collect::<Vec<_>>(), logits);
            let e: Vec<f32> = logits.iter().map(|l| (l - 2.0f32).exp()).collect();
            let sum = e.iter().fold(0.0f32, |a, &b| a + b);
            let p: Vec<f32> = e.iter().map(|x| x / sum).collect();
            assert_eq!(cur.data.iter().map(|t| t.p).collect::<Vec<_>>(), p);
            assert_eq!(cur.selected as usize, expected_draw(&p, &mut rng));
            s.accept(cur.selected_token().unwrap().id);
            assert_eq!(
                (s.weighted_sum, s.total_weight),
                start,
                "disabled: no state change"
            );
        }
    }

    #[test]
    fn minus_infinity_stays_and_single_candidate_draws_nothing() {
        let mut s = AdaptiveP::new(0.5, 0.5, 3);
        let mut cur = arr(&[f32::NEG_INFINITY, 1.0, 1.0]);
        s.apply(&mut cur);
        assert_eq!(cur.data[0].logit, f32::NEG_INFINITY);
        assert_eq!(cur.data[0].p, 0.0);
        // Two candidates at p 0.5 = target: both logits 5, p 0.5 each.
        assert_eq!((cur.data[1].logit, cur.data[2].logit), (5.0, 5.0));
        assert_eq!((cur.data[1].p, cur.data[2].p), (0.5, 0.5));
        assert!(cur.selected == 1 || cur.selected == 2);
        // One candidate: index 0 without touching the generator.
        let mut one = AdaptiveP::new(0.5, 0.5, 3);
        let mut cur = arr(&[3.0]);
        one.apply(&mut cur);
        assert_eq!(cur.selected, 0);
        assert_eq!(one.rng.next_u32(), Mt19937::new(3).next_u32());
        // Empty: nothing selected, no panic.
        let mut cur = arr(&[]);
        one.apply(&mut cur);
        assert_eq!(cur.selected, -1);
    }

    #[test]
    fn sorted_input_takes_the_first_logit_as_maximum() {
        // sorted = true: max = data[0].logit (llama.cpp trusts the flag).
        let mut cur = TokenDataArray {
            data: vec![
                TokenData {
                    id: 4,
                    logit: 1.0,
                    p: 0.0,
                },
                TokenData {
                    id: 2,
                    logit: 0.0,
                    p: 0.0,
                },
            ],
            selected: -1,
            sorted: true,
        };
        softmax_unsorted(&mut cur);
        let e = (-1.0f32).exp();
        assert_eq!(cur.data[0].p, 1.0 / (1.0 + e));
        assert_eq!(cur.data[1].p, e / (1.0 + e));
    }

    #[test]
    fn clone_restarts_the_generator_and_keeps_the_sums() {
        let logits: Vec<f32> = (0..20).map(|i| (i as f32 * 0.7).sin()).collect();
        let mut a = AdaptiveP::new(0.2, 0.9, 99);
        for _ in 0..5 {
            let mut cur = arr(&logits);
            a.apply(&mut cur);
            a.accept(cur.selected_token().unwrap().id);
        }
        let b = a.clone_box();
        let mut fresh = AdaptiveP::new(0.2, 0.9, 99);
        fresh.weighted_sum = a.weighted_sum;
        fresh.total_weight = a.total_weight;
        let mut b = b;
        for _ in 0..10 {
            let (mut x, mut y) = (arr(&logits), arr(&logits));
            b.apply(&mut x);
            fresh.apply(&mut y);
            assert_eq!(x, y);
            b.accept(x.selected_token().unwrap().id);
            fresh.accept(y.selected_token().unwrap().id);
        }
        assert_eq!(
            a.seed(),
            DEFAULT_SEED,
            "llama_sampler_get_seed does not know adaptive-p"
        );
        assert_eq!(a.name(), "adaptive-p");
    }
}
