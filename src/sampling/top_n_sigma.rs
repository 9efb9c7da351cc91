//! Top-nσ (llama.h `llama_sampler_init_top_n_sigma(n)`): keeps the tokens whose logit is within
//! `n` standard deviations of the maximum, setting the others to -inf. llama.cpp's arithmetic:
//! -inf logits are left out of the max, mean and deviation; float mean; deviation summed as
//! `acc += pow(l - mean, 2)` (double power, float accumulator); `sqrt(acc / count)` in float;
//! no-op when `n <= 0` or fewer than 2 candidates. Order and `sorted` are unchanged.

use super::candidates::TokenDataArray;
use super::Sampler;

#[derive(Debug, Clone)]
pub struct TopNSigma {
    pub n: f32,
}

impl Sampler for TopNSigma {
    fn name(&self) -> &'static str {
        "top-n-sigma"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.n <= 0.0 || cur.data.len() <= 1 {
            return;
        }
        let mut max = cur.data[0].logit;
        let mut sum = 0.0f32;
        let mut count = 0usize;
        for t in &cur.data {
            if t.logit != f32::NEG_INFINITY {
                max = max.max(t.logit);
                sum += t.logit;
                count += 1;
            }
        }
        let mean = if count > 0 { sum / count as f32 } else { 0.0 };
        let mut acc = 0.0f32;
        for t in &cur.data {
            if t.logit != f32::NEG_INFINITY {
                let d = (t.logit - mean) as f64;
                acc = (acc as f64 + d * d) as f32;
            }
        }
        let std = if count > 0 {
            (acc / count as f32).sqrt()
        } else {
            0.0
        };
        let bound = max - self.n * std;
        for t in cur.data.iter_mut() {
            if t.logit < bound {
                t.logit = f32::NEG_INFINITY;
            }
        }
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_below_max_minus_n_sigma() {
        // Logits 0..=4: mean 2, variance 2, sigma sqrt(2) = 1.414; n = 1: bound 2.586 keeps 3, 4.
        let mut cur = TokenDataArray::from_logits(&[0.0, 1.0, 2.0, 3.0, 4.0, f32::NEG_INFINITY]);
        TopNSigma { n: 1.0 }.apply(&mut cur);
        let kept: Vec<i32> = cur
            .data
            .iter()
            .filter(|t| t.logit.is_finite())
            .map(|t| t.id)
            .collect();
        assert_eq!(kept, vec![3, 4]);
        assert_eq!(cur.len(), 6, "masks, never removes");
        let mut cur = TokenDataArray::from_logits(&[0.0, 1.0, 2.0, 3.0, 4.0]);
        TopNSigma { n: 0.0 }.apply(&mut cur);
        assert!(cur.data.iter().all(|t| t.logit.is_finite()));
        let mut cur = TokenDataArray::from_logits(&[0.0, 1.0, 2.0, 3.0, 4.0]);
        TopNSigma { n: 2.0 }.apply(&mut cur);
        // n = 2: bound 4 - 2.83 = 1.17 keeps 2, 3, 4.
        assert_eq!(cur.data.iter().filter(|t| t.logit.is_finite()).count(), 3);
    }
}
