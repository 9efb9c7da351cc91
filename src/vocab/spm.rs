//! SentencePiece-style tokenizer (tokenizer model "llama"), as llama.cpp's `llm_tokenizer_spm`:
//! start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
//! vocab token with the highest score (leftmost on ties), then map what is left to tokens,
//! falling back to byte tokens `<0xXX>` for characters the vocab lacks.

use super::hash::FxHashMap;
use super::unicode::utf8_len;
use std::collections::BinaryHeap;

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

/// A candidate merge, as one integer key so the heap compares without float branches:
/// the score's bits in an order-preserving form (high half), then the left index reversed
/// (low half). The heap pops the highest score, then the leftmost, like the reference.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Bigram {
    key: u64,
    right: u32,
    size: u32,
}

impl Bigram {
    fn new(score: f32, left: u32, right: u32, size: u32) -> Bigram {
        // +0.0 turns -0.0 into 0.0: the reference's `<` treats them as equal.
        let bits = (score + 0.0).to_bits();
        // Flip so that unsigned order is float order: negatives reversed, positives above.
        let ordered = if bits >> 31 == 1 {
            !bits
        } else {
            bits | 0x8000_0000
        };
        Bigram {
            key: ((ordered as u64) << 32) | (u32::MAX - left) as u64,
            right,
            size,
        }
    }
    fn left(&self) -> u32 {
        u32::MAX - self.key as u32
    }
}

/// Tokenizes `text` (spaces already escaped to U+2581) into `out`. `byte_token(b)` gives the
/// fallback token of a byte, or an error.
pub fn tokenize<E>(
    text: &[u8],
    token_to_id: &FxHashMap<Box<[u8]>, i32>,
    score: impl Fn(i32) -> f32,
    byte_token: impl Fn(u8) -> Result<i32, E>,
    out: &mut Vec<i32>,
) -> Result<(), E> {
    if text.is_empty() {
        return Ok(());
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    let mut offs = 0usize;
    while offs < text.len() {
        let len = utf8_len(text[offs]).min(text.len() - offs);
        let index = symbols.len() as i32;
        offs += len;
        symbols.push(Symbol {
            start: (offs - len) as u32,
            len: len as u32,
            prev: index - 1,
            next: if offs == text.len() { -1 } else { index + 1 },
        });
    }
    let mut queue = BinaryHeap::new();
    let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], l: i32, r: i32| {
        if l < 0 || r < 0 {
            return;
        }
        let (ls, rs) = (symbols[l as usize], symbols[r as usize]);
        let piece = &text[ls.start as usize..(ls.start + ls.len + rs.len) as usize];
        if let Some(&id) = token_to_id.get(piece) {
            queue.push(Bigram::new(
                score(id),
                l as u32,
                r as u32,
                piece.len() as u32,
            ));
        }
    };
    for i in 1..symbols.len() as i32 {
        try_add(&mut queue, &symbols, i - 1, i);
    }
    while let Some(b) = queue.pop() {
        let (l, r) = (b.left() as usize, b.right as usize);
        let (ls, rs) = (symbols[l], symbols[r]);
        if ls.len == 0 || rs.len == 0 || ls.len + rs.len != b.size {
            continue; // stale
        }
        symbols[l].len += rs.len;
        symbols[r].len = 0;
        symbols[l].next = rs.next;
        if rs.next >= 0 {
            symbols[rs.next as usize].prev = l as i32;
        }
        try_add(&mut queue, &symbols, ls.prev, l as i32);
        try_add(&mut queue, &symbols, l as i32, rs.next);
    }
    let mut i = 0i32;
    while i >= 0 {
        let s = symbols[i as usize];
        let piece = &text[s.start as usize..(s.start + s.len) as usize];
        match token_to_id.get(piece) {
            Some(&id) => out.push(id),
            // Only unmerged characters can miss: every merge result is a token.
            None => {
                for &byte in piece {
                    out.push(byte_token(byte)?);
                }
            }
        }
        i = s.next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigram_order_is_score_then_leftmost() {
        let k = |s: f32, l: u32| Bigram::new(s, l, l + 1, 2);
        assert!(k(-1.0, 5) > k(-2.0, 0));
        assert!(k(0.5, 9) > k(-0.5, 0));
        assert!(k(3.0, 1) > k(3.0, 2)); // same score: leftmost first
        assert!(k(-0.0, 1) > k(0.0, 2)); // -0 == 0, so position decides
        assert!(k(f32::INFINITY, 0) > k(1e30, 0));
        assert!(k(-1e30, 0) > k(f32::NEG_INFINITY, 0));
        assert_eq!(k(-7.25, 42).left(), 42);
    }
}
