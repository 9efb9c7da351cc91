//! Byte-level BPE (tokenizer model "gpt2"): the byte <-> code point map, the merge table and
//! the merge loop (lowest rank first, leftmost on ties), as llama.cpp's `llm_tokenizer_bpe`.
//!
//! Symbols are numbered strings: every token's text has its token id, and strings that occur
//! only in the merge table (a merge result that is not a token, say) get ids past the vocab.
//! So a merge is a lookup of an id pair, and the loop never builds strings.

use super::hash::{map_with_capacity, FxHashMap};
use super::queue::MinQueue;
use super::unicode::push_utf8;
use crate::error::{Error, Result};

/// The code point that byte `b` becomes in byte-level BPE text (GPT-2's `bytes_to_unicode`).
pub(super) fn byte_to_char(b: u8) -> u32 {
    BYTE_TO_CHAR[b as usize]
}

/// The byte that code point `cp` stands for, if it is one of the 256 byte-level characters.
pub(super) fn char_to_byte(cp: u32) -> Option<u8> {
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
pub(super) fn encode_bytes(bytes: &[u8]) -> String {
    let mut v = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        push_utf8(&mut v, byte_to_char(b));
    }
    // Every byte-level char is a valid scalar value.
    String::from_utf8(v).unwrap_or_default()
}

/// Raw bytes of a byte-level text, or `None` if some char is not a byte-level char.
pub(super) fn decode_chars(text: &str) -> Option<Vec<u8>> {
    text.chars().map(|c| char_to_byte(c as u32)).collect()
}

const NONE: u32 = u32::MAX;

/// The merge table and lookups the merge loop needs.
pub(crate) struct BpeTables {
    n_tokens: u32,
    /// (left symbol, right symbol) -> (rank, merged symbol)
    merges: FxHashMap<(u32, u32), (u32, u32)>,
    /// rank -> (left symbol, right symbol, merged symbol) of the merges in `merges`; lines
    /// that are skipped or repeat an earlier pair hold NONE.
    by_rank: Vec<(u32, u32, u32)>,
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
    pub(crate) fn new(
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
        if merges.len() >= u32::MAX as usize {
            return Err(Error::metadata("tokenizer.ggml.merges: too many merges"));
        }
        let mut by_rank = vec![(NONE, NONE, NONE); merges.len()];
        for (&(l, r), &(rank, id)) in &table {
            by_rank[rank as usize] = (l, r, id);
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
            by_rank,
            byte_symbol,
            ascii_token,
            bytes_to_token,
        })
    }

    /// The token whose byte-level text encodes exactly `word`.
    pub(crate) fn whole_word_token(&self, word: &[u8]) -> Option<u32> {
        self.bytes_to_token.get(word).copied()
    }
}

/// A byte (or merged run) of the word, indexed by its first byte: the run ends where the next
/// one starts.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: i32,
    next: i32,
}

/// `next` of a symbol merged into its left neighbour.
const DEAD: i32 = i32::MIN;

/// Buffers larger than this are freed after a word, so one long word does not pin its memory.
const KEEP_BYTES: usize = 16 << 20;

/// Reusable buffers for the merge loop.
#[derive(Default)]
pub(crate) struct BpeSession {
    symbols: Vec<Symbol>,
    /// Queued merges as `rank << 32 | left index` (see `queue.rs`): lowest rank first, then
    /// leftmost, the reference's order.
    queue: MinQueue,
}

impl BpeSession {
    /// Appends the tokens of one pre-tokenized word (raw bytes, shorter than 2^31) to `out`.
    pub(crate) fn tokenize_word(
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
        self.merge(t, word, out);
        if self.symbols.capacity() * size_of::<Symbol>() > KEEP_BYTES {
            self.symbols = Vec::new();
        }
        self.queue.shrink_to(KEEP_BYTES);
    }

    fn merge(&mut self, t: &BpeTables, word: &[u8], out: &mut Vec<i32>) {
        let symbols = &mut self.symbols;
        let queue = &mut self.queue;
        symbols.clear();
        queue.clear();
        let n = word.len();
        symbols.extend(word.iter().enumerate().map(|(i, &b)| Symbol {
            id: t.byte_symbol[b as usize],
            prev: i as i32 - 1,
            next: i as i32 + 1,
        }));
        symbols[n - 1].next = -1;
        // The merge rank of the pair at `l` (the symbol there and its right neighbour).
        let pair = |symbols: &[Symbol], l: usize| -> Option<u32> {
            let r = symbols[l].next;
            if r < 0 {
                return None;
            }
            t.merges
                .get(&(symbols[l].id, symbols[r as usize].id))
                .map(|&(rank, _)| rank)
        };
        let key = |rank: u32, l: usize| ((rank as u64) << 32) | l as u64;
        queue.reserve(n);
        for l in 0..n - 1 {
            if let Some(r) = pair(symbols, l) {
                queue.push(key(r, l));
            }
        }
        // The reference queues (rank, left, right, text) and skips a popped entry whose symbols
        // changed since. Here an entry is (rank, left), merged when the pair now at `left` is
        // that rank's merge. The two agree: every adjacent pair was queued when it became
        // adjacent and has not been popped (or it would be merged), so a key that matches the
        // current pair equals that pair's own entry, and equal keys are interchangeable.
        while let Some(k) = queue.pop() {
            let (rank, l) = ((k >> 32) as usize, k as u32 as usize);
            let s = symbols[l];
            if s.next < 0 {
                continue; // merged away (DEAD), or the last symbol
            }
            let right = s.next as usize;
            let (ml, mr, merged) = t.by_rank[rank];
            if s.id != ml || symbols[right].id != mr {
                continue; // stale: one side changed since this pair was queued
            }
            let after = symbols[right].next;
            symbols[l].id = merged;
            symbols[l].next = after;
            symbols[right].next = DEAD;
            if after >= 0 {
                symbols[after as usize].prev = l as i32;
            }
            if s.prev >= 0 {
                if let Some(r) = pair(symbols, s.prev as usize) {
                    queue.push(key(r, s.prev as usize));
                }
            }
            if let Some(r) = pair(symbols, l) {
                queue.push(key(r, l));
            }
        }
        let mut i = 0i32;
        while i >= 0 {
            let s = symbols[i as usize];
            if s.id < t.n_tokens {
                out.push(s.id as i32);
            } else {
                let end = if s.next < 0 { n } else { s.next as usize };
                for &b in &word[i as usize..end] {
                    let id = t.ascii_token[b as usize];
                    if id != NONE {
                        out.push(id as i32);
                    }
                }
            }
            i = s.next;
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
