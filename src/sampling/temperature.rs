//! Temperature: plain (`temp`) and entropy-driven dynamic temperature (`temp_ext`).

use super::candidates::{self, TokenDataArray};
use super::Sampler;

/// `llama_sampler_init_temp(t)`: every logit divided by `t`. In the fork that is all: `t <= 0`
/// is NOT special-cased (mainline later made `t <= 0` keep only the maximum; the fork divides,
/// giving ±inf/NaN logits). Does not touch `p`.
#[derive(Debug, Clone)]
pub struct Temp {
    pub t: f32,
}

fn divide_logits(cur: &mut TokenDataArray, t: f32) {
    for tok in cur.data.iter_mut() {
        tok.logit /= t;
    }
}

impl Sampler for Temp {
    fn name(&self) -> &'static str {
        "temp"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        divide_logits(cur, self.t);
    }
    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

/// `llama_sampler_init_temp_ext(t, delta, exponent)`: `delta <= 0` is exactly [`Temp`]. Else,
/// with more than one candidate: softmax, normalised entropy `H / logf(n)` (float), temperature
/// `T = tmin + (tmax - tmin) * powf(H/Hmax, exponent)` with `tmin = max(0, t - delta)`,
/// `tmax = t + delta`; logits divided by T; then `p` recomputed in double relative to `data[0]`
/// (sum of the unrounded doubles, each `p` stored as float and divided as double).
#[derive(Debug, Clone)]
pub struct TempExt {
    pub t: f32,
    pub delta: f32,
    pub exponent: f32,
}

impl Sampler for TempExt {
    fn name(&self) -> &'static str {
        "temp-ext"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.delta <= 0.0 {
            divide_logits(cur, self.t);
            return;
        }
        let min_temp = if 0.0f32 < self.t - self.delta {
            self.t - self.delta
        } else {
            0.0
        };
        let max_temp = self.t + self.delta;
        if cur.data.len() <= 1 {
            return;
        }
        let max_entropy = -(1.0f32 / cur.data.len() as f32).ln();
        candidates::softmax(cur);
        let mut entropy = 0.0f32;
        for tok in &cur.data {
            if tok.p > 0.0 {
                entropy -= tok.p * tok.p.ln();
            }
        }
        let normalized = entropy / max_entropy;
        let dyn_temp = min_temp + (max_temp - min_temp) * normalized.powf(self.exponent);
        divide_logits(cur, dyn_temp);

        let max_l = cur.data[0].logit as f64;
        let mut sum = 0.0f64;
        for tok in cur.data.iter_mut() {
            let p = (tok.logit as f64 - max_l).exp();
            tok.p = p as f32;
            sum += p;
        }
        for tok in cur.data.iter_mut() {
            tok.p = (tok.p as f64 / sum) as f32;
        }
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

    #[test]
    fn temp_divides_and_keeps_order_and_p() {
        let mut cur = arr(&[1.0, -2.0, 0.5]);
        Temp { t: 0.8 }.apply(&mut cur);
        let got: Vec<f32> = cur.data.iter().map(|t| t.logit).collect();
        assert_eq!(got, vec![1.0 / 0.8f32, -2.0 / 0.8f32, 0.5 / 0.8f32]);
        assert!(!cur.sorted);
        assert!(cur.data.iter().all(|t| t.p == 0.0));
    }

    #[test]
    fn temp_zero_divides_by_zero_as_the_fork() {
        let mut cur = arr(&[1.0, -2.0, 0.0]);
        Temp { t: 0.0 }.apply(&mut cur);
        assert_eq!(cur.data[0].logit, f32::INFINITY);
        assert_eq!(cur.data[1].logit, f32::NEG_INFINITY);
        assert!(cur.data[2].logit.is_nan());
    }

    #[test]
    fn temp_ext_without_delta_is_temp() {
        let mut a = arr(&[1.0, -2.0, 0.5]);
        let mut b = a.clone();
        TempExt {
            t: 0.8,
            delta: 0.0,
            exponent: 1.0,
        }
        .apply(&mut a);
        Temp { t: 0.8 }.apply(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn temp_ext_uniform_input_gets_max_temperature() {
        // Equal logits: normalised entropy 1 -> T = t + delta = 1.5; p uniform.
        let mut cur = arr(&[2.0, 2.0, 2.0, 2.0]);
        TempExt {
            t: 1.0,
            delta: 0.5,
            exponent: 1.0,
        }
        .apply(&mut cur);
        for tok in &cur.data {
            assert_eq!(tok.logit, 2.0 / 1.5f32);
            assert_eq!(tok.p, 0.25);
        }
        assert!(cur.sorted);
    }

    #[test]
    fn temp_ext_peaked_input_follows_the_formula() {
        let logits = [5.0f32, 0.0, -1.0];
        let mut cur = arr(&logits);
        TempExt {
            t: 1.0,
            delta: 0.5,
            exponent: 2.0,
        }
        .apply(&mut cur);
        // By hand from the formula, float like the reference.
        let e: Vec<f32> = logits.iter().map(|l| (l - 5.0f32).exp()).collect();
        let s = e.iter().fold(0.0f32, |a, &b| a + b);
        let p: Vec<f32> = e.iter().map(|x| x / s).collect();
        let h = p.iter().fold(0.0f32, |a, &q| a - q * q.ln());
        let hmax = -(1.0f32 / 3.0).ln();
        let t = 0.5f32 + (1.5f32 - 0.5) * (h / hmax).powf(2.0);
        assert_eq!(cur.data[0].logit, 5.0 / t);
        assert_eq!(cur.data[2].logit, -1.0 / t);
        let total: f32 = cur.data.iter().map(|t| t.p).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }
}
