//! Repetition / frequency / presence penalties over the last accepted tokens.

use std::collections::{HashMap, VecDeque};

use super::candidates::TokenDataArray;
use super::Sampler;

/// `LLAMA_TOKEN_NULL`.
pub(super) const TOKEN_NULL: i32 = -1;

/// `llama_sampler_init_penalties`. The fork takes 9 arguments
/// `(n_vocab, eos, nl, last_n, repeat, freq, present, penalize_nl, ignore_eos)`; current llama.h
/// (and the C API here) takes 4, which equals the 9-argument form with `penalize_nl = true`,
/// `ignore_eos = false` ([`Penalties::new`]).
///
/// History: a ring buffer of the last `last_n` accepted tokens (`last_n` clamped to >= 0; 0
/// disables). Apply: if `ignore_eos`, the eos logit becomes -inf; no-op when `last_n == 0` or
/// `(repeat, freq, present) == (1, 0, 0)`; for each candidate seen `c > 0` times in the history:
/// `logit = logit <= 0 ? logit * repeat : logit / repeat`, then
/// `logit -= c * freq + present` (float, multiply then add). Without `penalize_nl` the newline
/// logit is restored afterwards. Sets `sorted = false`; does not compute `p`.
#[derive(Debug, Clone)]
pub struct Penalties {
    n_vocab: i32,
    eos: i32,
    nl: i32,
    last_n: i32,
    repeat: f32,
    freq: f32,
    present: f32,
    penalize_nl: bool,
    ignore_eos: bool,
    history: VecDeque<i32>,
}

impl Penalties {
    /// The 4-argument form of current llama.h: `penalties(last_n, repeat, freq, present)`.
    pub fn new(last_n: i32, repeat: f32, freq: f32, present: f32) -> Self {
        Self::new_full(
            0, TOKEN_NULL, TOKEN_NULL, last_n, repeat, freq, present, true, false,
        )
    }

    /// The fork's 9-argument form. A null newline id forces `penalize_nl`, a null eos id
    /// disables `ignore_eos`, as in the fork.
    pub fn new_full(
        n_vocab: i32,
        eos: i32,
        nl: i32,
        last_n: i32,
        repeat: f32,
        freq: f32,
        present: f32,
        penalize_nl: bool,
        ignore_eos: bool,
    ) -> Self {
        let last_n = last_n.max(0);
        Penalties {
            n_vocab,
            eos,
            nl,
            last_n,
            repeat,
            freq,
            present,
            penalize_nl: penalize_nl || nl == TOKEN_NULL,
            ignore_eos: ignore_eos && eos != TOKEN_NULL,
            history: VecDeque::with_capacity(last_n as usize),
        }
    }

    /// The remembered tokens, oldest first.
    pub fn history(&self) -> impl Iterator<Item = i32> + '_ {
        self.history.iter().copied()
    }

    /// The vocabulary size given at construction (0 for the 4-argument form; unused by apply).
    pub fn n_vocab(&self) -> i32 {
        self.n_vocab
    }

    /// Index of the candidate with this id: the fork first tries `data[id]` (unshuffled
    /// arrays), then scans.
    fn find(cur: &TokenDataArray, id: i32) -> Option<usize> {
        if id < 0 {
            return None;
        }
        let direct = id as usize;
        if cur.data.get(direct).is_some_and(|t| t.id == id) {
            return Some(direct);
        }
        cur.data.iter().position(|t| t.id == id)
    }
}

impl Sampler for Penalties {
    fn name(&self) -> &'static str {
        "penalties"
    }

    fn accept(&mut self, token: i32) {
        if self.last_n == 0 {
            return;
        }
        if self.history.len() == self.last_n as usize {
            self.history.pop_front();
        }
        self.history.push_back(token);
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if self.ignore_eos {
            if let Some(i) = Self::find(cur, self.eos) {
                cur.data[i].logit = f32::NEG_INFINITY;
            }
        }
        if self.last_n == 0 || (self.repeat == 1.0 && self.freq == 0.0 && self.present == 0.0) {
            return;
        }
        let saved_nl = if self.penalize_nl {
            None
        } else {
            Self::find(cur, self.nl).map(|i| (i, cur.data[i].logit))
        };

        let mut counts: HashMap<i32, i32> = HashMap::with_capacity(self.history.len());
        for &tok in &self.history {
            *counts.entry(tok).or_insert(0) += 1;
        }
        for t in cur.data.iter_mut() {
            let Some(&count) = counts.get(&t.id) else {
                continue;
            };
            if t.logit <= 0.0 {
                t.logit *= self.repeat;
            } else {
                t.logit /= self.repeat;
            }
            let present = if count > 0 { 1.0f32 } else { 0.0 };
            t.logit -= count as f32 * self.freq + present * self.present;
        }
        cur.sorted = false;

        if let Some((i, logit)) = saved_nl {
            cur.data[i].logit = logit;
        }
    }

    fn reset(&mut self) {
        self.history.clear();
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

    fn logits(cur: &TokenDataArray) -> Vec<f32> {
        cur.data.iter().map(|t| t.logit).collect()
    }

    #[test]
    fn repeat_divides_positive_multiplies_negative() {
        let mut p = Penalties::new(64, 2.0, 0.0, 0.0);
        p.accept(0);
        p.accept(1);
        let mut cur = arr(&[3.0, -1.0, 5.0, 0.0]);
        p.apply(&mut cur);
        assert_eq!(logits(&cur), vec![1.5, -2.0, 5.0, 0.0]);
    }

    #[test]
    fn frequency_and_presence_use_counts() {
        let mut p = Penalties::new(64, 1.3, 0.2, 0.1);
        for t in [2, 2, 2, 0] {
            p.accept(t);
        }
        let mut cur = arr(&[1.0, 1.0, -1.0]);
        p.apply(&mut cur);
        let l0 = 1.0f32 / 1.3 - (1.0f32 * 0.2 + 1.0 * 0.1);
        let l2 = -1.3f32 - (3.0f32 * 0.2 + 1.0 * 0.1);
        assert_eq!(logits(&cur), vec![l0, 1.0, l2]);
        assert!(!cur.sorted);
    }

    #[test]
    fn window_keeps_only_the_last_n() {
        let mut p = Penalties::new(2, 2.0, 0.0, 0.0);
        for t in [0, 1, 2] {
            p.accept(t);
        }
        assert_eq!(p.history().collect::<Vec<_>>(), vec![1, 2]);
        let mut cur = arr(&[4.0, 4.0, 4.0]);
        p.apply(&mut cur);
        assert_eq!(logits(&cur), vec![4.0, 2.0, 2.0]);
        p.reset();
        assert_eq!(p.history().count(), 0);
    }

    #[test]
    fn neutral_or_disabled_is_a_no_op() {
        for p in [
            Penalties::new(64, 1.0, 0.0, 0.0),
            Penalties::new(0, 2.0, 1.0, 1.0),
            Penalties::new(-1, 2.0, 1.0, 1.0),
        ] {
            let mut p = p;
            p.accept(0);
            assert!(p.last_n == 0 || p.history().count() == 1);
            let mut cur = arr(&[3.0, 1.0]);
            cur.sorted = true;
            p.apply(&mut cur);
            assert_eq!(logits(&cur), vec![3.0, 1.0]);
            assert!(cur.sorted, "a no-op leaves sorted alone");
        }
    }

    #[test]
    fn penalize_nl_false_restores_newline_and_ignore_eos_bans_eos() {
        let mut p = Penalties::new_full(4, 3, 1, 64, 2.0, 0.0, 0.0, false, true);
        p.accept(0);
        p.accept(1);
        let mut cur = arr(&[2.0, 2.0, 2.0, 2.0]);
        p.apply(&mut cur);
        assert_eq!(logits(&cur), vec![1.0, 2.0, 2.0, f32::NEG_INFINITY]);
        // Works on a shuffled array too.
        let mut cur = arr(&[2.0, 2.0, 2.0, 2.0]);
        cur.data.reverse();
        p.apply(&mut cur);
        assert_eq!(logits(&cur), vec![f32::NEG_INFINITY, 2.0, 2.0, 1.0]);
    }

    #[test]
    fn null_ids_force_the_neutral_flags() {
        let p = Penalties::new_full(4, TOKEN_NULL, TOKEN_NULL, 8, 1.1, 0.0, 0.0, false, true);
        assert!(p.penalize_nl);
        assert!(!p.ignore_eos);
    }
}
