//! Infill (llama.h `llama_sampler_init_infill(vocab)`), for fill-in-the-middle after top-k /
//! top-p, with llama.cpp's steps: softmax (sorted); if `3 * p(eog) * n > p(text)` keep only the
//! end-of-generation tokens (renormalised); else merge every token whose piece is a prefix of
//! another's into the more likely of the two, drop non-EOG tokens below p = 0.2 (renormalise),
//! and if none is left, reduce the candidates to the single EOT (else EOS) token with logit 1;
//! else drop those below `1 / (n_non_eog + 1)` (renormalise).

use std::sync::Arc;

use super::candidates::{self, TokenDataArray};
use super::Sampler;
use crate::vocab::Vocab;
use crate::{Error, Result};

/// What infill needs from the vocabulary.
#[derive(Debug)]
struct InfillVocab {
    pieces: Vec<Box<[u8]>>,
    eog: Vec<bool>,
    eot_or_eos: i32,
}

#[derive(Debug, Clone)]
pub struct Infill {
    vocab: Arc<InfillVocab>,
}

impl Infill {
    pub fn new(vocab: &Vocab) -> Result<Infill> {
        let n = vocab.n_tokens();
        let mut pieces = Vec::with_capacity(n);
        let mut eog = Vec::with_capacity(n);
        for id in 0..n as i32 {
            pieces.push(vocab.token_to_piece(id, 0, false)?.into_boxed_slice());
            eog.push(vocab.is_eog(id));
        }
        let eot_or_eos = vocab.eot().or(vocab.eos()).ok_or_else(|| {
            Error::invalid_argument("infill: the vocabulary has neither an EOT nor an EOS token")
        })?;
        Ok(Infill {
            vocab: Arc::new(InfillVocab {
                pieces,
                eog,
                eot_or_eos,
            }),
        })
    }

    fn is_eog(&self, id: i32) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.vocab.eog.get(i))
            .copied()
            .unwrap_or(false)
    }

    fn piece(&self, id: i32) -> &[u8] {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.vocab.pieces.get(i))
            .map_or(&[], |p| p)
    }
}

impl Sampler for Infill {
    fn name(&self) -> &'static str {
        "infill"
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if cur.data.is_empty() {
            return;
        }
        candidates::softmax(cur);
        let (mut p_txt, mut p_eog) = (0.0f32, 0.0f32);
        for t in &cur.data {
            if self.is_eog(t.id) {
                p_eog += t.p;
            } else {
                p_txt += t.p;
            }
        }
        if 3.0 * p_eog * cur.data.len() as f32 > p_txt {
            let mut sum = 0.0f32;
            let me = &*self;
            cur.data.retain(|t| me.is_eog(t.id));
            for t in &cur.data {
                sum += t.p;
            }
            for t in cur.data.iter_mut() {
                t.p /= sum;
            }
            return;
        }
        let n = cur.data.len();
        for i0 in 0..n {
            for i1 in 0..n {
                if cur.data[i0].logit == f32::NEG_INFINITY {
                    break;
                }
                if i0 == i1 || cur.data[i1].logit == f32::NEG_INFINITY {
                    continue;
                }
                let a = self.piece(cur.data[i0].id);
                let b = self.piece(cur.data[i1].id);
                if !a.is_empty() && a.len() <= b.len() && b.starts_with(a) {
                    let (mut dst, mut src) = (i0, i1);
                    if cur.data[i1].p > cur.data[i0].p {
                        std::mem::swap(&mut dst, &mut src);
                    }
                    cur.data[dst].p += cur.data[src].p;
                    cur.data[src].logit = f32::NEG_INFINITY;
                    cur.data[src].p = 0.0;
                }
            }
        }
        let me = &*self;
        let mut n_non_eog = 0usize;
        let mut sum = 0.0f32;
        cur.data.retain(|t| {
            let eog = me.is_eog(t.id);
            if t.p < 0.2 && !eog {
                return false;
            }
            if !eog {
                n_non_eog += 1;
            }
            sum += t.p;
            true
        });
        if n_non_eog == 0 {
            let first = cur.data.first().copied();
            cur.data.truncate(1);
            if cur.data.is_empty() {
                if let Some(t) = first {
                    cur.data.push(t);
                } else {
                    cur.data.push(candidates::TokenData {
                        id: 0,
                        logit: 0.0,
                        p: 0.0,
                    });
                }
            }
            cur.data[0].id = self.vocab.eot_or_eos;
            cur.data[0].logit = 1.0;
            return;
        }
        for t in cur.data.iter_mut() {
            t.p /= sum;
        }
        let thold = 1.0 / (n_non_eog as f32 + 1.0);
        let mut sum = 0.0f32;
        cur.data.retain(|t| {
            if t.p < thold && !me.is_eog(t.id) {
                return false;
            }
            sum += t.p;
            true
        });
        for t in cur.data.iter_mut() {
            t.p /= sum;
        }
    }

    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
impl Infill {
    fn from_parts(pieces: &[&str], eog: &[usize], eot: i32) -> Infill {
        Infill {
            vocab: Arc::new(InfillVocab {
                pieces: pieces
                    .iter()
                    .map(|p| p.as_bytes().to_vec().into_boxed_slice())
                    .collect(),
                eog: (0..pieces.len()).map(|i| eog.contains(&i)).collect(),
                eot_or_eos: eot,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(logits: &[f32]) -> Vec<f32> {
        logits.iter().map(|p| p.ln()).collect()
    }

    #[test]
    fn merges_prefixes_like_the_header_example() {
        // llama.h: hel 0.5, hell 0.2, hello 0.1, dummy 0.1 (+ eot 0.1 kept aside here at a
        // tiny probability): hel absorbs hell and hello -> 0.8; dummy falls below 0.2.
        let inf = &mut Infill::from_parts(&["hel", "hell", "hello", "dummy", "<eot>"], &[4], 4);
        let mut cur = TokenDataArray::from_logits(&probs(&[0.5, 0.2, 0.1, 0.1, 0.0001]));
        inf.apply(&mut cur);
        let ids: Vec<i32> = cur.data.iter().map(|t| t.id).collect();
        assert_eq!(ids, vec![0, 4]);
        assert!(
            (cur.data[0].p - 0.8 / 0.8001).abs() < 1e-4,
            "{:?}",
            cur.data
        );
    }

    #[test]
    fn eog_heavy_keeps_only_eog_and_empty_text_gives_eot() {
        let inf = &mut Infill::from_parts(&["a", "b", "<eot>"], &[2], 2);
        let mut cur = TokenDataArray::from_logits(&probs(&[0.4, 0.4, 0.2]));
        inf.apply(&mut cur);
        assert_eq!(cur.data.len(), 1);
        assert_eq!(cur.data[0].id, 2);
        assert!((cur.data[0].p - 1.0).abs() < 1e-6);
        // Many small text tokens, no EOG among the candidates: all fall below 0.2 -> EOT.
        let pieces: Vec<String> = (0..10).map(|i| format!("w{i}x")).collect();
        let mut refs: Vec<&str> = pieces.iter().map(|s| s.as_str()).collect();
        refs.push("<eot>");
        let inf = &mut Infill::from_parts(&refs, &[10], 10);
        let mut cur = TokenDataArray::from_logits(&[0.0; 10]);
        inf.apply(&mut cur);
        assert_eq!(cur.data.len(), 1);
        assert_eq!((cur.data[0].id, cur.data[0].logit), (10, 1.0));
    }
}
