//! DRY ("don't repeat yourself", llama.h `llama_sampler_init_dry(vocab, multiplier, base,
//! allowed_length, penalty_last_n, seq_breakers, num_breakers)`): penalises a token that would
//! extend a sequence already seen in the last `penalty_last_n` accepted tokens, by
//! `multiplier * base^(length - allowed_length)`. Sequence breakers (strings such as "\n",
//! ":") stop a repetition from being followed across them.
//!
//! llama.cpp's semantics, step by step: disabled when `multiplier == 0`, `base < 1` or
//! `penalty_last_n == 0` (negative = 0); breakers are cut to 40 bytes and turned into
//! (head token, tail tokens) pairs for every token whose text contains the breaker or ends
//! with a prefix of it (tails tokenized, at most 20 tokens); apply: nothing until more than
//! `allowed_length` tokens are remembered; the repetition limit is set by the most recent
//! breaker; suffix match lengths by the reverse Z-algorithm; each token that follows an
//! occurrence of a long enough repeated suffix gets the penalty for the longest one (the
//! exponent capped so the float cannot overflow), except single-token breakers; `sorted`
//! becomes false.

use std::collections::{HashMap, VecDeque};

use super::candidates::TokenDataArray;
use super::Sampler;
use crate::vocab::Vocab;
use crate::Result;

/// Longest breaker kept (bytes) and longest breaker tail (tokens), as llama.cpp.
const MAX_CHAR_LEN: usize = 40;
const MAX_SEQ_LEN: usize = 20;

#[derive(Debug, Clone)]
pub struct Dry {
    multiplier: f32,
    base: f32,
    allowed_length: i32,
    penalty_last_n: i32,
    /// head token → tails (token sequences that complete a breaker after the head).
    breakers: HashMap<i32, Vec<Vec<i32>>>,
    last_tokens: VecDeque<i32>,
}

impl Dry {
    /// With breakers given as text, matched against `vocab`.
    pub fn new(
        vocab: &Vocab,
        multiplier: f32,
        base: f32,
        allowed_length: i32,
        penalty_last_n: i32,
        seq_breakers: &[&str],
    ) -> Result<Dry> {
        let mut d =
            Self::with_token_breakers(multiplier, base, allowed_length, penalty_last_n, &[]);
        if !d.enabled() {
            return Ok(d);
        }
        let texts: Vec<Vec<u8>> = (0..vocab.n_tokens() as i32)
            .map(|id| vocab.detokenize(&[id], false, true))
            .collect::<Result<_>>()?;
        for b in seq_breakers {
            if b.is_empty() {
                crate::log::log(
                    crate::log::Level::Warn,
                    "dry: skipping an empty sequence breaker",
                );
                continue;
            }
            let mut b = b.as_bytes().to_vec();
            b.truncate(MAX_CHAR_LEN);
            d.add_overlapping(vocab, &texts, &b)?;
        }
        Ok(d)
    }

    /// With breakers given as token sequences (head first), as llama.cpp's test helper.
    pub fn with_token_breakers(
        multiplier: f32,
        base: f32,
        allowed_length: i32,
        penalty_last_n: i32,
        breakers: &[Vec<i32>],
    ) -> Dry {
        let mut map: HashMap<i32, Vec<Vec<i32>>> = HashMap::new();
        for b in breakers {
            if let Some((&head, tail)) = b.split_first() {
                map.entry(head).or_default().push(tail.to_vec());
            }
        }
        Dry {
            multiplier,
            base,
            allowed_length,
            penalty_last_n: penalty_last_n.max(0),
            breakers: map,
            last_tokens: VecDeque::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.multiplier != 0.0 && self.base >= 1.0 && self.penalty_last_n != 0
    }

    fn add_overlapping(&mut self, vocab: &Vocab, texts: &[Vec<u8>], s: &[u8]) -> Result<()> {
        for (id, word) in texts.iter().enumerate() {
            let id = id as i32;
            if find(word, s).is_some() {
                let e = self.breakers.entry(id).or_default();
                if !e.contains(&Vec::new()) {
                    e.push(Vec::new());
                }
                continue;
            }
            // Every position where the word ends with a prefix of s.
            for pos in 0..word.len() {
                if word[pos] != s[0] {
                    continue;
                }
                let mut i = 1;
                let mut matched = true;
                while i < s.len() && pos + i < word.len() {
                    if word[pos + i] != s[i] {
                        matched = false;
                        break;
                    }
                    i += 1;
                }
                if matched {
                    let mut tail = vocab.tokenize(&s[i..], false, false)?;
                    tail.truncate(MAX_SEQ_LEN);
                    let e = self.breakers.entry(id).or_default();
                    if !e.contains(&tail) {
                        e.push(tail);
                    }
                }
            }
        }
        Ok(())
    }

    /// The i-th most recent token (0 = last).
    fn rat(&self, i: usize) -> i32 {
        self.last_tokens[self.last_tokens.len() - 1 - i]
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Sampler for Dry {
    fn name(&self) -> &'static str {
        "dry"
    }

    fn accept(&mut self, token: i32) {
        if !self.enabled() {
            return;
        }
        if self.last_tokens.len() == self.penalty_last_n as usize {
            self.last_tokens.pop_front();
        }
        self.last_tokens.push_back(token);
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if !self.enabled() {
            return;
        }
        let n = (self.last_tokens.len() as i32).min(self.penalty_last_n);
        if n <= self.allowed_length {
            return;
        }
        let n = n as usize;
        // Step 1: the most recent breaker limits how far back a repetition may reach.
        let mut rep_limit = n as i32;
        for i in 0..n {
            let Some(tails) = self.breakers.get(&self.rat(i)) else {
                continue;
            };
            let mut longest: i32 = -1;
            for tail in tails {
                let len = tail.len() as i32;
                if len > longest
                    && len as usize <= i
                    && (0..tail.len()).all(|o| tail[o] == self.rat(i - o - 1))
                {
                    longest = len;
                }
            }
            if longest >= 0 {
                rep_limit = i as i32 - longest;
                break;
            }
        }
        if rep_limit < self.allowed_length {
            return;
        }
        // Step 2: repeat[last - k] = length of the longest suffix also ending k tokens back
        // (reverse Z-algorithm), capped at rep_limit.
        let mut repeat = vec![0i32; n];
        let last = n - 1;
        let (mut lt, mut rt) = (0usize, 0usize);
        for k in 1..n {
            if k > rt {
                let mut m = 0;
                while m + k < n && self.rat(m) == self.rat(m + k) {
                    m += 1;
                }
                repeat[last - k] = (m as i32).min(rep_limit);
                if m > 0 {
                    lt = k;
                    rt = k + m - 1;
                }
            } else {
                let p = k - lt;
                let right_len = (rt - k + 1) as i32;
                if repeat[last - p] < right_len {
                    repeat[last - k] = repeat[last - p].min(rep_limit);
                } else {
                    let mut i = rt + 1;
                    while i < n && self.rat(i) == self.rat(i - k) {
                        i += 1;
                    }
                    repeat[last - k] = ((i - k) as i32).min(rep_limit);
                    lt = k;
                    rt = i - 1;
                }
            }
        }
        // Step 3: the token after each long enough repeat would extend it.
        let mut max_repeat: HashMap<i32, i32> = HashMap::new();
        for (i, &len) in repeat.iter().enumerate().take(n - 1) {
            if len >= self.allowed_length {
                let tok = self.rat(n - 2 - i);
                let e = max_repeat.entry(tok).or_insert(len);
                if *e < len {
                    *e = len;
                }
            }
        }
        // Step 4: penalties.
        const FLOAT_MAX_LOG: f32 = 88.722_84;
        let max_exponent = if self.base > 1.000_001 {
            (FLOAT_MAX_LOG / self.base.ln()) as i32
        } else {
            0
        };
        for t in cur.data.iter_mut() {
            let Some(&len) = max_repeat.get(&t.id) else {
                continue;
            };
            let single_breaker = self
                .breakers
                .get(&t.id)
                .is_some_and(|tails| tails.iter().any(|tl| tl.is_empty()));
            if single_breaker {
                continue;
            }
            let mut exp = len - self.allowed_length;
            if max_exponent > 0 && exp > max_exponent {
                exp = max_exponent;
            }
            let penalty = (self.multiplier as f64 * (self.base as f64).powf(exp as f64)) as f32;
            t.logit -= penalty;
        }
        cur.sorted = false;
    }

    fn reset(&mut self) {
        self.last_tokens.clear();
    }

    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(d: &mut Dry, history: &[i32], n_vocab: usize) -> Vec<f32> {
        for &t in history {
            d.accept(t);
        }
        let mut cur = TokenDataArray::from_logits(&vec![0.0; n_vocab]);
        d.apply(&mut cur);
        cur.data.iter().map(|t| t.logit).collect()
    }

    #[test]
    fn penalises_the_token_that_extends_a_repeat() {
        // History a b c x a b: "a b" repeats; the token after the earlier "a b" is c, so c gets
        // multiplier * base^(2 - allowed_length) with allowed_length 2 -> 1.5 * 2^0.
        let mut d = Dry::with_token_breakers(1.5, 2.0, 2, 64, &[]);
        let l = run(&mut d, &[0, 1, 2, 3, 0, 1], 5);
        assert_eq!(l, vec![0.0, 0.0, -1.5, 0.0, 0.0]);
        // Longer repeat: a b c d a b c -> d extends a 3-token repeat: 1.5 * 2^1 = 3.
        let mut d = Dry::with_token_breakers(1.5, 2.0, 2, 64, &[]);
        let l = run(&mut d, &[0, 1, 2, 3, 0, 1, 2], 5);
        assert_eq!(l[3], -3.0);
        // Too short to matter.
        let mut d = Dry::with_token_breakers(1.5, 2.0, 3, 64, &[]);
        let l = run(&mut d, &[0, 1, 2, 3, 0, 1], 5);
        assert!(l.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn breakers_stop_repetition_and_disabled_forms() {
        // A breaker (token 4) right before the repeat end limits the repeat to 1 token.
        let mut d = Dry::with_token_breakers(1.0, 2.0, 2, 64, &[vec![4]]);
        let l = run(&mut d, &[0, 1, 2, 3, 4, 0, 1], 6);
        // rep_limit = 2 tokens since the breaker (index 2 from the end): allowed 2 -> repeat
        // "0 1" still counts.
        assert_eq!(l[2], -1.0);
        let mut d = Dry::with_token_breakers(1.0, 2.0, 2, 64, &[vec![1]]);
        let l = run(&mut d, &[0, 1, 2, 3, 0, 1], 6);
        assert!(
            l.iter().all(|&x| x == 0.0),
            "the repeat crosses a breaker: {l:?}"
        );
        for (m, b, n) in [(0.0, 2.0, 64), (1.0, 0.5, 64), (1.0, 2.0, 0)] {
            let mut d = Dry::with_token_breakers(m, b, 2, n, &[]);
            let l = run(&mut d, &[0, 1, 2, 0, 1], 5);
            assert!(l.iter().all(|&x| x == 0.0));
        }
        let mut d = Dry::with_token_breakers(1.5, 2.0, 2, 64, &[]);
        run(&mut d, &[0, 1, 2, 3, 0, 1], 5);
        d.reset();
        let l = run(&mut d, &[], 5);
        assert!(l.iter().all(|&x| x == 0.0));
    }
}
