//! A batch of tokens for one `decode` call, shaped like llama.cpp's `llama_batch`: per token its
//! id, position, sequence ids and whether its logits are wanted. Positions, sequence ids and
//! output flags may be left out (as in `llama_batch_get_one`): positions then continue each
//! sequence in the KV cache, every token is in sequence 0, and only the last token's logits are
//! computed.

pub(crate) use crate::types::{Pos, SeqId, Token};

/// Tokens to evaluate in one `decode` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub tokens: Vec<Token>,
    /// Position of each token; `None` = each token continues its (first) sequence after the
    /// last position the KV cache holds for it.
    pub pos: Option<Vec<Pos>>,
    /// Sequence ids of each token (at least one each); `None` = all in sequence 0.
    pub seq_ids: Option<Vec<Vec<SeqId>>>,
    /// Whether each token's logits are wanted; `None` = only the last token's.
    pub logits: Option<Vec<bool>>,
}

impl Batch {
    /// An empty batch with room for `capacity` tokens, to fill with [`Batch::push`].
    pub fn new(capacity: usize) -> Batch {
        Batch {
            tokens: Vec::with_capacity(capacity),
            pos: Some(Vec::with_capacity(capacity)),
            seq_ids: Some(Vec::with_capacity(capacity)),
            logits: Some(Vec::with_capacity(capacity)),
        }
    }

    /// `llama_batch_get_one`: the tokens of one sequence (0), positions continuing where the
    /// sequence ends in the cache, logits for the last token only.
    pub fn get_one(tokens: &[Token]) -> Batch {
        Batch {
            tokens: tokens.to_vec(),
            pos: None,
            seq_ids: None,
            logits: None,
        }
    }

    /// Appends one token (`common_batch_add`). Fills in the optional columns if this batch was
    /// made by [`Batch::get_one`], with the values llama.cpp would have used (positions are
    /// filled from 0 here, so mix the two styles only on an empty cache).
    pub fn push(&mut self, token: Token, pos: Pos, seq_ids: &[SeqId], logits: bool) {
        let n = self.tokens.len();
        let pos_col = self.pos.get_or_insert_with(|| (0..n as Pos).collect());
        pos_col.push(pos);
        self.seq_ids
            .get_or_insert_with(|| vec![vec![0]; n])
            .push(seq_ids.to_vec());
        self.logits
            .get_or_insert_with(|| (0..n).map(|i| i + 1 == n).collect())
            .push(logits);
        self.tokens.push(token);
    }

    /// Removes all tokens, keeping the capacity (`common_batch_clear`).
    pub fn clear(&mut self) {
        self.tokens.clear();
        if let Some(v) = self.pos.as_mut() {
            v.clear();
        }
        if let Some(v) = self.seq_ids.as_mut() {
            v.clear();
        }
        if let Some(v) = self.logits.as_mut() {
            v.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether token `i`'s logits are wanted.
    pub fn wants_logits(&self, i: usize) -> bool {
        match &self.logits {
            Some(l) => l.get(i).copied().unwrap_or(false),
            None => i + 1 == self.tokens.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_one_wants_only_the_last_logits() {
        let b = Batch::get_one(&[1, 2, 3]);
        assert!(!b.wants_logits(0) && !b.wants_logits(1) && b.wants_logits(2));
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn push_builds_all_columns() {
        let mut b = Batch::new(4);
        b.push(5, 0, &[0, 1], false);
        b.push(6, 1, &[1], true);
        assert_eq!(b.pos, Some(vec![0, 1]));
        assert_eq!(b.seq_ids, Some(vec![vec![0, 1], vec![1]]));
        assert!(b.wants_logits(1) && !b.wants_logits(0));
        b.clear();
        assert!(b.is_empty());
    }
}
