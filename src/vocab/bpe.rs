//! Byte-level BPE (tokenizer model "gpt2"): the byte <-> code point map, the merge table and
//! the merge loop (lowest rank first, leftmost on ties), as llama.cpp's `llm_tokenizer_bpe`.
//!
//! Symbols are numbered strings: every token's text has its token id, and strings that occur
//! only in the merge table (a merge result that is not a token, say) get ids past the vocab.
//! So a merge is a lookup of an id pair, and the loop never builds strings.

use super::hash::{map_with_capacity, FxHashMap};
use super::unicode::push_utf8;
use crate::error::{Error, Result};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The code point that byte `b` becomes in byte-level BPE text (GPT-2's `bytes_to_unicode`).
pub fn byte_to_char(b: u8) -> u32 {
    BYTE_TO_CHAR[b as usize]
}

/// The byte that code point `cp` stands for, if it is one of the 256 byte-level characters.
pub fn char_to_byte(cp: u32) -> Option<u8> {
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
        0x100..=0x143 => Some(SHIFTED_BYTES[(cp - 0x100) as usize]),
        _ => None,
    }
}

const fn is_printable_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The 68 bytes that are not printable, in increasing order: byte-level chars U+0100.. .
static SHIFTED_BYTES: [u8; 68] = {
    let mut t = [0u8; 68];
    let (mut b, mut n) = (0usize, 0usize);
    while b < 256 {
        if !is_printable_byte(b as u8) {
            t[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    t
};

static BYTE_TO_CHAR: [u32; 256] = {
    let mut t = [0u32; 256];
    let (mut b, mut n) = (0usize, 0u32);
    while b < 256 {
        if is_printable_byte(b as u8) {
            t[b] = b as u32;
        } else {
            t[b] = 0x100 + n;
            n += 1;
        }
        b += 1;
    }
    t
};

/// Byte-level text of raw bytes (what llama.cpp looks up in the vocab).
pub fn encode_bytes(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        push_utf8(&mut v, byte_to_char(b));
    }
    // Every byte-level char is a valid scalar value.
    String::from_utf8(v).unwrap_or_default()
}

/// Raw bytes of a byte-level text, or `None` if some char is not a byte-level char.
pub fn decode_chars(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| char_to_byte(c as u32)).collect()
}

const NONE: u32 = u32::MAX;

/// The merge table and lookups the merge loop needs.
pub struct BpeTables {
    n_tokens: u32,
    /// (left symbol, right symbol) -> (rank, merged symbol)
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    /// Symbol of each single byte (its byte-level char), NONE if that string is unknown.
    byte_symbol: [u32; 256],
    /// Token for the one-byte string of a printable ASCII byte: the reference's fallback when a
    /// final symbol is not a token (it looks up each byte of the symbol's byte-level text, and
    /// only ASCII bytes can be whole strings).
    ascii_token: [u32; 256],
    /// Raw bytes of each token whose text is all byte-level chars -> token (for ignore_merges).
    bytes_to_token: FxHashMap<Box<[u8]>, u32>,
}

impl BpeTables {
    /// `token_to_id` maps text to id with the reference's last-wins rule for repeated texts.
    pub fn new(
        tokens: &[&str],
        token_to_id: &FxHashMap<Box<[u8]>, i32>,
        merges: &[String],
    ) -> Result<BpeTables> {
        let n_tokens = tokens.len() as u32;
        let mut extra: FxHashMap<String, u32> = FxHashMap::default();
        let symbol = |s: &str, extra: &mut FxHashMap<String, u32>| -> u32 {
            if let Some(&id) = token_to_id.get(s.as_bytes()) {
                return id as u32;
            }
            if let Some(&id) = extra.get(s) {
                return id;
            }
            let next = n_tokens + extra.len() as u32;
            extra.insert(s.to_string(), next);
            next
        };
        let mut table = map_with_capacity(merges.len());
        for (rank, m) in merges.iter().enumerate() {
            // As llama.cpp: split at the first space after the first byte. A line without
            // one is keyed ("", ""), which never matches, so it is skipped here.
            let Some(sp) = m.as_bytes().iter().skip(1).position(|&b| b == b' ') else {
                continue;
            };
            let (left, right) = (&m[..sp + 1], &m[sp + 2..]);
            if right.is_empty() {
                continue;
            }
            let mut merged = String::with_capacity(left.len() + right.len());
            merged.push_str(left);
            merged.push_str(right);
            let l = symbol(left, &mut extra);
            let r = symbol(right, &mut extra);
            let id = symbol(&merged, &mut extra);
            table.entry((l, r)).or_insert((rank as u32, id)); // the first occurrence wins
        }
        if n_tokens as u64 + extra.len() as u64 >= NONE as u64 {
            return Err(Error::metadata("tokenizer.ggml.merges: too many symbols"));
        }
        let mut byte_symbol = [NONE; 256];
        let mut ascii_token = [NONE; 256];
        for b in 0..=255u8 {
            let ch = encode_bytes(&[b]);
            byte_symbol[b as usize] = token_to_id
                .get(ch.as_bytes())
                .map(|&id| id as u32)
                .or_else(|| extra.get(ch.as_str()).copied())
                .unwrap_or(NONE);
            if (0x21..=0x7E).contains(&b) {
                if let Some(&id) = token_to_id.get(&[b][..]) {
                    ascii_token[b as usize] = id as u32;
                }
            }
        }
        let mut bytes_to_token = map_with_capacity(tokens.len());
        for (id, t) in tokens.iter().enumerate() {
            if let Some(raw) = decode_chars(t) {
                // Later ids win, as in token_to_id.
                bytes_to_token.insert(raw.into_boxed_slice(), id as u32);
            }
        }
        Ok(BpeTables {
            n_tokens,
            merges: table,
            byte_symbol,
            ascii_token,
            bytes_to_token,
        })
    }

    /// The token whose byte-level text encodes exactly `word`.
    pub fn whole_word_token(&self, word: &[u8]) -> Option<u32> {
        self.bytes_to_token.get(word).copied()
    }
}

#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    id: u32,
    prev: i32,
    next: i32,
}

/// A queued merge: (rank, left index, right index, left len, right len, merged symbol). Tuple
/// order is heap order: lowest rank first, then leftmost.
type QueuedPair = (u32, u32, u32, u32, u32, u32);

/// Reusable buffers for the merge loop.
#[derive(Default)]
pub struct BpeSession {
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Reverse<QueuedPair>>,
}

impl BpeSession {
    /// Appends the tokens of one pre-tokenized word (raw bytes) to `out`.
    pub fn tokenize_word(
        &mut self,
        t: &BpeTables,
        ignore_merges: bool,
        word: &[u8],
        out: &mut Vec<i32>,
    ) {
        if word.is_empty() {
            return;
        }
        if ignore_merges {
            if let Some(id) = t.whole_word_token(word) {
                out.push(id as i32);
                return;
            }
        }
        self.symbols.clear();
        self.queue.clear();
        let n = word.len();
        for (i, &b) in word.iter().enumerate() {
            self.symbols.push(Symbol {
                start: i as u32,
                len: 1,
                id: t.byte_symbol[b as usize],
                prev: i as i32 - 1,
                next: if i + 1 == n { -1 } else { i as i32 + 1 },
            });
        }
        for i in 1..n {
            self.push_pair(t, i as i32 - 1, i as i32);
        }
        while let Some(Reverse((_, li, ri, llen, rlen, merged))) = self.queue.pop() {
            let (l, r) = (li as usize, ri as usize);
            if self.symbols[l].len != llen || self.symbols[r].len != rlen {
                continue; // stale: one side merged since this pair was queued
            }
            let right = self.symbols[r];
            let left = &mut self.symbols[l];
            left.len += right.len;
            left.id = merged;
            left.next = right.next;
            self.symbols[r].len = 0;
            if right.next >= 0 {
                self.symbols[right.next as usize].prev = li as i32;
            }
            let prev = self.symbols[l].prev;
            self.push_pair(t, prev, li as i32);
            self.push_pair(t, li as i32, right.next);
        }
        let mut i = 0i32;
        while i >= 0 {
            let s = self.symbols[i as usize];
            if s.id < t.n_tokens {
                out.push(s.id as i32);
            } else {
                let bytes = &word[s.start as usize..(s.start + s.len) as usize];
                for &b in bytes {
                    let id = t.ascii_token[b as usize];
                    if id != NONE {
                        out.push(id as i32);
                    }
                }
            }
            i = s.next;
        }
    }

    fn push_pair(&mut self, t: &BpeTables, left: i32, right: i32) {
        if left < 0 || right < 0 {
            return;
        }
        let (l, r) = (self.symbols[left as usize], self.symbols[right as usize]);
        if let Some(&(rank, merged)) = t.merges.get(&(l.id, r.id)) {
            self.queue.push(Reverse((
                rank,
                left as u32,
                right as u32,
                l.len,
                r.len,
                merged,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_a_bijection() {
        assert_eq!(byte_to_char(b' '), 0x120);
        assert_eq!(byte_to_char(b'\n'), 0x10A);
        assert_eq!(byte_to_char(b'A'), 'A' as u32);
        assert_eq!(byte_to_char(0xAD), 0x143);
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(char_to_byte(0x144), None);
        assert_eq!(char_to_byte(0x20), None);
    }

    fn toy() -> (Vec<&'static str>, FxHashMap<Box<[u8]>, i32>) {
        let tokens = vec!["a", "b", "c", "ab", "bc", "abc"];
        let map = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_bytes().into(), i as i32))
            .collect();
        (tokens, map)
    }

    #[test]
    fn merges_by_rank_then_leftmost() {
        let (tokens, map) = toy();
        let mut s = BpeSession::default();
        let mut out = Vec::new();
        // "b c" ranks before "a b": abc -> a bc.
        let t = BpeTables::new(&tokens, &map, &["b c".into(), "a b".into()]).unwrap();
        s.tokenize_word(&t, false, b"abc", &mut out);
        assert_eq!(out, [0, 4]);
        out.clear();
        let t = BpeTables::new(&tokens, &map, &["a b".into(), "ab c".into()]).unwrap();
        s.tokenize_word(&t, false, b"abcab", &mut out);
        assert_eq!(out, [5, 3]);
        out.clear();
        // ignore_merges takes a whole-word token directly.
        let t = BpeTables::new(&tokens, &map, &[]).unwrap();
        s.tokenize_word(&t, true, b"abc", &mut out);
        assert_eq!(out, [5]);
        out.clear();
        // Unknown byte: dropped (no byte token), as the reference does.
        s.tokenize_word(&t, false, b"a\x03b", &mut out);
        assert_eq!(out, [0, 1]);
    }
}
