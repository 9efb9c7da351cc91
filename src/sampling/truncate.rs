//! Samplers that cut the candidate list: top-k, top-p, min-p, typical, tail-free.
//! Each follows the fork's `src/llama-sampling.cpp` statement by statement (float arithmetic,
//! comparison operators, `size_t` quirks), because the golden traces pin those details.

use super::candidates::{self, TokenData, TokenDataArray};
use super::stdsort;
use super::Sampler;

/// `llama_sampler_init_top_k(k)`: keep the k highest logits, sorted descending. `k <= 0` keeps
/// all but still sorts (not a no-op in the fork). Does not compute `p`.
#[derive(Debug, Clone)]
pub struct TopK {
    pub k: i32,
}

impl Sampler for TopK {
    fn name(&self) -> &'static str {
        "top-k"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        candidates::top_k(cur, self.k);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_top_p(p, min_keep)`: `p >= 1` is a no-op. Otherwise softmax, then keep
/// the shortest prefix whose float running sum of `p` reaches `p` (`cum >= p`, the crossing
/// token kept) once at least `min_keep` tokens are in it. `p` is not renormalised.
#[derive(Debug, Clone)]
pub struct TopP {
    pub p: f32,
    pub min_keep: usize,
}

impl Sampler for TopP {
    fn name(&self) -> &'static str {
        "top-p"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.p >= 1.0 || cur.data.is_empty() {
            return;
        }
        candidates::softmax(cur);
        let mut cum = 0.0f32;
        let mut last = cur.data.len();
        for (i, t) in cur.data.iter().enumerate() {
            cum += t.p;
            if cum >= self.p && i + 1 >= self.min_keep {
                last = i + 1;
                break;
            }
        }
        cur.data.truncate(last);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_min_p(p, min_keep)`: `p <= 0` is a no-op. Keep tokens with
/// `logit >= max_logit + logf(p)`. On unsorted input survivors stay in their current order and
/// `sorted` stays false, if at least `min_keep` survive; otherwise (or on sorted input) sort and
/// cut at the first token below the bound once `i >= min_keep`. Does not compute `p`.
#[derive(Debug, Clone)]
pub struct MinP {
    pub p: f32,
    pub min_keep: usize,
}

impl Sampler for MinP {
    fn name(&self) -> &'static str {
        "min-p"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.p <= 0.0 || cur.data.is_empty() {
            return;
        }
        let mut applied = false;
        if !cur.sorted {
            // std::max(max_logit, logit) from -FLT_MAX: `(a < b) ? b : a`.
            let max_logit = cur
                .data
                .iter()
                .fold(-f32::MAX, |m, t| if m < t.logit { t.logit } else { m });
            let min_logit = max_logit + self.p.ln();
            let kept: Vec<TokenData> = cur
                .data
                .iter()
                .filter(|t| t.logit >= min_logit)
                .copied()
                .collect();
            if kept.len() >= self.min_keep {
                cur.data = kept;
                applied = true;
            }
        }
        if !applied {
            if !cur.sorted {
                candidates::sort_desc(&mut cur.data);
                cur.sorted = true;
            }
            let min_logit = cur.data[0].logit + self.p.ln();
            let mut i = 1;
            while i < cur.data.len() {
                if cur.data[i].logit < min_logit && i >= self.min_keep {
                    break;
                }
                i += 1;
            }
            cur.data.truncate(i);
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_typical(p, min_keep)`: locally typical sampling. `p >= 1` is a no-op.
/// Softmax; entropy `H = Σ -p·logf(p)` (float); score `|−logf(p_i) − H|`; candidates reordered
/// by ascending score (`std::sort`); cut after i+1 tokens at the first i with float running sum
/// `> p` and `i >= min_keep - 1` in `size_t` arithmetic, so **`min_keep = 0` never cuts** (the
/// fork's quirk: it only reorders). Leaves `sorted = false`; `p` keeps the softmax values.
#[derive(Debug, Clone)]
pub struct Typical {
    pub p: f32,
    pub min_keep: usize,
}

impl Sampler for Typical {
    fn name(&self) -> &'static str {
        "typical"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.p >= 1.0 || cur.data.is_empty() {
            return;
        }
        candidates::softmax(cur);
        let mut entropy = 0.0f32;
        for t in &cur.data {
            entropy += -t.p * t.p.ln();
        }
        let scores: Vec<f32> = cur
            .data
            .iter()
            .map(|t| (-t.p.ln() - entropy).abs())
            .collect();
        let mut order: Vec<usize> = (0..cur.data.len()).collect();
        stdsort::sort(&mut order, &mut |&a, &b| scores[a] < scores[b]);

        let threshold = self.min_keep.wrapping_sub(1);
        let mut cum = 0.0f32;
        let mut last = order.len();
        for (i, &idx) in order.iter().enumerate() {
            cum += cur.data[idx].p;
            if cum > self.p && i >= threshold {
                last = i + 1;
                break;
            }
        }
        cur.data = order[..last].iter().map(|&idx| cur.data[idx]).collect();
        cur.sorted = false;
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_tail_free(z, min_keep)`: `z >= 1` or at most 2 candidates is a no-op.
/// Softmax; second differences of `p`, absolute, normalised (or uniform if their float sum is
/// `<= 1e-6`); cut at the first i with float running sum `> z` and `i >= min_keep` (keeping i
/// tokens).
#[derive(Debug, Clone)]
pub struct TailFree {
    pub z: f32,
    pub min_keep: usize,
}

impl Sampler for TailFree {
    fn name(&self) -> &'static str {
        "tail-free"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.z >= 1.0 || cur.data.len() <= 2 {
            return;
        }
        candidates::softmax(cur);
        let n = cur.data.len();
        let first: Vec<f32> = (0..n - 1)
            .map(|i| cur.data[i].p - cur.data[i + 1].p)
            .collect();
        let mut second: Vec<f32> = (0..n - 2)
            .map(|i| (first[i] - first[i + 1]).abs())
            .collect();
        let sum = second.iter().fold(0.0f32, |a, &b| a + b);
        if sum > 1e-6 {
            for v in second.iter_mut() {
                *v /= sum;
            }
        } else {
            let uniform = 1.0f32 / second.len() as f32;
            second.iter_mut().for_each(|v| *v = uniform);
        }
        let mut cum = 0.0f32;
        let mut last = n;
        for (i, &v) in second.iter().enumerate() {
            cum += v;
            if cum > self.z && i >= self.min_keep {
                last = i;
                break;
            }
        }
        cur.data.truncate(last);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(logits: &[f32]) -> TokenDataArray {
        TokenDataArray::from_logits(logits)
    }

    fn ids(cur: &TokenDataArray) -> Vec<i32> {
        cur.data.iter().map(|t| t.id).collect()
    }

    /// Logits whose softmax is exactly proportional to the given weights.
    fn logits_for(weights: &[f32]) -> Vec<f32> {
        weights.iter().map(|w| w.ln()).collect()
    }

    #[test]
    fn top_k_keeps_k_best_sorted() {
        let mut cur = arr(&[0.1, 0.4, 0.3, 0.2]);
        TopK { k: 2 }.apply(&mut cur);
        assert_eq!(ids(&cur), vec![1, 2]);
        assert!(cur.sorted);
    }

    #[test]
    fn top_p_keeps_the_crossing_token() {
        // p = 0.4, 0.3, 0.2, 0.1: cum 0.4, 0.7, 0.9 -> with p = 0.65, keep 2 (0.7 >= 0.65).
        let mut cur = arr(&logits_for(&[0.1, 0.4, 0.2, 0.3]));
        TopP {
            p: 0.65,
            min_keep: 1,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![1, 3]);
        // p values are those of the full set, not renormalised.
        assert!((cur.data[0].p - 0.4).abs() < 1e-6);
    }

    #[test]
    fn top_p_min_keep_forces_more_tokens() {
        let mut cur = arr(&logits_for(&[0.1, 0.4, 0.2, 0.3]));
        TopP {
            p: 0.1,
            min_keep: 3,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![1, 3, 2]);
        // min_keep 0 behaves like 1.
        let mut cur = arr(&logits_for(&[0.1, 0.4, 0.2, 0.3]));
        TopP {
            p: 0.1,
            min_keep: 0,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![1]);
    }

    #[test]
    fn top_p_one_is_a_no_op() {
        let mut cur = arr(&[0.3, 0.1]);
        TopP {
            p: 1.0,
            min_keep: 1,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![0, 1]);
        assert!(!cur.sorted);
        assert_eq!(cur.data[0].p, 0.0);
    }

    #[test]
    fn min_p_unsorted_keeps_id_order() {
        // max logit 2.0; bound 2 + ln 0.5 = 1.3069: keep 2.0, 1.5, 1.4 in id order.
        let mut cur = arr(&[1.5, 0.0, 2.0, 1.0, 1.4]);
        MinP {
            p: 0.5,
            min_keep: 1,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![0, 2, 4]);
        assert!(!cur.sorted);
        assert!(cur.data.iter().all(|t| t.p == 0.0));
    }

    #[test]
    fn min_p_falls_back_to_sorted_path_when_too_few_survive() {
        let mut cur = arr(&[1.5, 0.0, 2.0, 1.0, 1.4]);
        MinP {
            p: 0.5,
            min_keep: 4,
        }
        .apply(&mut cur);
        // Sorted: 2.0, 1.5, 1.4, 1.0, 0.0; keep until i >= 4 and below the bound.
        assert_eq!(ids(&cur), vec![2, 0, 4, 3]);
        assert!(cur.sorted);
    }

    #[test]
    fn min_p_on_sorted_input_cuts_at_bound() {
        let mut cur = arr(&[1.5, 0.0, 2.0, 1.0, 1.4]);
        TopK { k: 0 }.apply(&mut cur); // sorts everything
        MinP {
            p: 0.5,
            min_keep: 0,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![2, 0, 4]);
    }

    #[test]
    fn typical_min_keep_zero_only_reorders() {
        let mut cur = arr(&logits_for(&[0.5, 0.3, 0.15, 0.05]));
        Typical {
            p: 0.2,
            min_keep: 0,
        }
        .apply(&mut cur);
        assert_eq!(cur.len(), 4);
        assert!(!cur.sorted);
    }

    #[test]
    fn typical_orders_by_distance_to_entropy_and_cuts() {
        // p = 0.5, 0.3, 0.15, 0.05. H = 1.1437 nats; -ln p = 0.693, 1.204, 1.897, 2.996;
        // scores 0.451, 0.060, 0.753, 1.852 -> order ids 1, 0, 2, 3;
        // cum 0.3, 0.8 -> with p = 0.5 the cut is after 2 tokens.
        let mut cur = arr(&logits_for(&[0.5, 0.3, 0.15, 0.05]));
        Typical {
            p: 0.5,
            min_keep: 1,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![1, 0]);
        assert!(!cur.sorted);
        // min_keep 3 keeps three.
        let mut cur = arr(&logits_for(&[0.5, 0.3, 0.15, 0.05]));
        Typical {
            p: 0.5,
            min_keep: 3,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![1, 0, 2]);
    }

    #[test]
    fn tail_free_cuts_the_flat_tail() {
        // p = 0.5, 0.25, 0.125, 0.0625, 0.0625: first diffs .25 .125 .0625 0;
        // second |.125| |.0625| |.0625| sum .25 -> .5 .25 .25; cum .5, .75, 1.0.
        // z = 0.6: first i with cum > z is 1 -> keep 1 token... with min_keep 0.
        let w = [0.5f32, 0.25, 0.125, 0.0625, 0.0625];
        let mut cur = arr(&logits_for(&w));
        TailFree {
            z: 0.6,
            min_keep: 0,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![0]);
        let mut cur = arr(&logits_for(&w));
        TailFree {
            z: 0.6,
            min_keep: 2,
        }
        .apply(&mut cur);
        assert_eq!(ids(&cur), vec![0, 1]);
        let mut cur = arr(&logits_for(&w));
        TailFree {
            z: 1.0,
            min_keep: 0,
        }
        .apply(&mut cur);
        assert_eq!(cur.len(), 5);
        assert!(!cur.sorted);
    }
}
