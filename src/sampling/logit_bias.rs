//! Fixed additive biases on chosen token ids.

use super::candidates::TokenDataArray;
use super::Sampler;

/// `llama_logit_bias`: add `bias` to the logit of `token`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogitBias {
    pub token: i32,
    pub bias: f32,
}

/// `llama_sampler_init_logit_bias(n_vocab, n, biases)`. As the fork: a bias whose token sits at
/// its own index (unshuffled array) is added there, so repeated entries all add; the others are
/// searched for, and each candidate takes only the first matching entry of those.
#[derive(Debug, Clone)]
pub struct LogitBiasSampler {
    n_vocab: i32,
    biases: Vec<LogitBias>,
}

impl LogitBiasSampler {
    pub fn new(n_vocab: i32, biases: &[LogitBias]) -> Self {
        LogitBiasSampler {
            n_vocab,
            biases: biases.to_vec(),
        }
    }

    pub fn n_vocab(&self) -> i32 {
        self.n_vocab
    }

    pub fn biases(&self) -> &[LogitBias] {
        &self.biases
    }
}

impl Sampler for LogitBiasSampler {
    fn name(&self) -> &'static str {
        "logit-bias"
    }
    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.biases.is_empty() {
            return;
        }
        let mut to_search = Vec::new();
        for lb in &self.biases {
            let direct = usize::try_from(lb.token)
                .ok()
                .filter(|&i| cur.data.get(i).is_some_and(|t| t.id == lb.token));
            match direct {
                Some(i) => cur.data[i].logit += lb.bias,
                None => to_search.push(*lb),
            }
        }
        if to_search.is_empty() {
            return;
        }
        for t in cur.data.iter_mut() {
            if let Some(lb) = to_search.iter().find(|lb| lb.token == t.id) {
                t.logit += lb.bias;
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
    fn biases_apply_on_unshuffled_and_shuffled_arrays() {
        let biases = [
            LogitBias {
                token: 1,
                bias: 2.0,
            },
            LogitBias {
                token: 3,
                bias: f32::NEG_INFINITY,
            },
            LogitBias {
                token: 99,
                bias: 5.0,
            },
        ];
        let mut s = LogitBiasSampler::new(4, &biases);
        let mut cur = TokenDataArray::from_logits(&[0.0, 0.0, 0.0, 0.0]);
        s.apply(&mut cur);
        let l: Vec<f32> = cur.data.iter().map(|t| t.logit).collect();
        assert_eq!(l, vec![0.0, 2.0, 0.0, f32::NEG_INFINITY]);

        let mut cur = TokenDataArray::from_logits(&[0.0, 0.0, 0.0, 0.0]);
        cur.data.reverse();
        s.apply(&mut cur);
        let l: Vec<(i32, f32)> = cur.data.iter().map(|t| (t.id, t.logit)).collect();
        assert_eq!(
            l,
            vec![(3, f32::NEG_INFINITY), (2, 0.0), (1, 2.0), (0, 0.0)]
        );
    }

    #[test]
    fn duplicate_entries_add_twice_only_in_place() {
        let dup = [
            LogitBias {
                token: 0,
                bias: 1.0,
            },
            LogitBias {
                token: 0,
                bias: 1.0,
            },
        ];
        let mut s = LogitBiasSampler::new(2, &dup);
        let mut cur = TokenDataArray::from_logits(&[0.0, 0.0]);
        s.apply(&mut cur);
        assert_eq!(cur.data[0].logit, 2.0);
        let mut cur = TokenDataArray::from_logits(&[0.0, 0.0]);
        cur.data.reverse();
        s.apply(&mut cur);
        assert_eq!(cur.data[1].logit, 1.0);
    }
}
