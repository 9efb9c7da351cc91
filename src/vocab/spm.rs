//! SentencePiece-style tokenizer (tokenizer model "llama"), as llama.cpp's `llm_tokenizer_spm`:
//! start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the
//! vocab token with the highest score (leftmost on ties), then map what is left to tokens,
//! falling back to byte tokens `<0xXX>` for characters the vocab lacks.
//!
//! The loop is the reference's, with a compact queue (see `queue.rs`): a queued merge is one
//! `u64`, the score's rank among the vocab's distinct scores (high half) and the left symbol's
//! index (low half), so the queue pops the highest score, then the leftmost, as the
//! reference's comparator does. A popped key is checked against the symbols as they are now
//! (the pair at that index still makes a token of that score); see `tokenize` for why this
//! merges exactly what the reference merges.

use super::hash::FxHashMap;
use super::queue::MinQueue;
use super::unicode::utf8_len;

/// A character (or merged run) of the text: `start` in bytes, neighbours by index.
#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    prev: i32,
    next: i32,
}

/// `next` of a symbol merged into its left neighbour.
const DEAD: i32 = i32::MIN;

/// The score order as dense ranks: rank 0 is the highest score; equal scores share a rank
/// (-0.0 and 0.0 are equal, as the reference's `<` sees them).
pub(super) fn score_ranks(scores: impl Iterator<Item = f32> + Clone) -> Vec<u32> {
    // Order-preserving unsigned form of a float (negatives reversed, positives above).
    let ordered = |s: f32| {
        let bits = (s + 0.0).to_bits();
        if bits >> 31 == 1 {
            !bits
        } else {
            bits | 0x8000_0000
        }
    };
    let mut distinct: Vec<u32> = scores.clone().map(ordered).collect();
    distinct.sort_unstable_by(|a, b| b.cmp(a));
    distinct.dedup();
    scores
        .map(|s| {
            distinct
                .binary_search_by(|d| ordered(s).cmp(d))
                .unwrap_or(0) as u32
        })
        .collect()
}

/// What the merge loop needs besides the text -> id map.
#[derive(Default)]
pub(crate) struct SpmTables {
    /// Each token's score rank (`score_ranks`).
    pub rank: Vec<u32>,
    /// The longest token text in bytes.
    pub max_len: usize,
}

impl SpmTables {
    pub(crate) fn new(texts: &[&str], scores: impl Iterator<Item = f32> + Clone) -> SpmTables {
        SpmTables {
            rank: score_ranks(scores),
            max_len: texts.iter().map(|t| t.len()).max().unwrap_or(0),
        }
    }
}

/// Reusable buffers.
#[derive(Default)]
pub(crate) struct SpmSession {
    symbols: Vec<Symbol>,
    queue: MinQueue,
    /// Most symbols one merge run has held (what the memory bound is about; for tests).
    pub peak_symbols: usize,
}

/// Buffers larger than this are freed after a call, so one long text does not pin its memory.
const KEEP_BYTES: usize = 16 << 20;

/// The text is cut into pieces of about this many bytes where that cannot change the result
/// (see `is_cut`), so the queue stays small and in cache.
const CHUNK: usize = 4096;

/// Cut tries at consecutive characters before giving up for another `CHUNK` bytes (text such
/// as a run of spaces has no cut at all).
const MAX_TRIES: usize = 64;

/// Longest token for which cuts are looked for (each try costs about `2 * max_len` lookups).
const MAX_CUT_TOKEN: usize = 128;

impl SpmSession {
    /// Tokenizes `text` (spaces already escaped to U+2581) into `out`. `byte_token(b)` gives
    /// the fallback token of a byte, or an error. `text` must be shorter than 2^31 bytes.
    ///
    /// The reference merges over the whole text at once; that takes memory in proportion to
    /// the text and a queue too large for the cache. Here the text is tokenized in pieces cut
    /// at places no merge can cross, which gives the same tokens.
    pub(crate) fn tokenize<E>(
        &mut self,
        text: &[u8],
        token_to_id: &FxHashMap<Box<[u8]>, i32>,
        t: &SpmTables,
        byte_token: impl Fn(u8) -> Result<i32, E>,
        out: &mut Vec<i32>,
    ) -> Result<(), E> {
        let result = self.tokenize_pieces(text, token_to_id, t, &byte_token, out);
        if self.symbols.capacity() * size_of::<Symbol>() > KEEP_BYTES {
            self.symbols = Vec::new();
        }
        self.queue.shrink_to(KEEP_BYTES);
        result
    }

    fn tokenize_pieces<E>(
        &mut self,
        text: &[u8],
        token_to_id: &FxHashMap<Box<[u8]>, i32>,
        t: &SpmTables,
        byte_token: &impl Fn(u8) -> Result<i32, E>,
        out: &mut Vec<i32>,
    ) -> Result<(), E> {
        let mut start = 0;
        if t.max_len <= MAX_CUT_TOKEN {
            let (mut pos, mut char_start) = (0, 0);
            let mut next_try = CHUNK;
            let mut tries = 0;
            while pos < text.len() {
                if pos >= next_try && is_cut(text, start, char_start, pos, token_to_id, t.max_len) {
                    self.run(&text[start..pos], token_to_id, &t.rank, byte_token, out)?;
                    start = pos;
                    next_try = pos + CHUNK;
                    tries = 0;
                } else if pos >= next_try {
                    tries += 1;
                    next_try = if tries == MAX_TRIES {
                        tries = 0;
                        pos + CHUNK
                    } else {
                        pos + 1
                    };
                }
                char_start = pos;
                pos += utf8_len(text[pos]).min(text.len() - pos);
            }
        }
        self.run(&text[start..], token_to_id, &t.rank, byte_token, out)
    }
    fn run<E>(
        &mut self,
        text: &[u8],
        token_to_id: &FxHashMap<Box<[u8]>, i32>,
        rank: &[u32],
        byte_token: &impl Fn(u8) -> Result<i32, E>,
        out: &mut Vec<i32>,
    ) -> Result<(), E> {
        if text.is_empty() {
            return Ok(());
        }
        let symbols = &mut self.symbols;
        let queue = &mut self.queue;
        symbols.clear();
        queue.clear();
        let mut offs = 0usize;
        while offs < text.len() {
            let len = utf8_len(text[offs]).min(text.len() - offs);
            let index = symbols.len() as i32;
            symbols.push(Symbol {
                start: offs as u32,
                prev: index - 1,
                next: index + 1,
            });
            offs += len;
        }
        let n = symbols.len();
        symbols[n - 1].next = -1;
        self.peak_symbols = self.peak_symbols.max(n);
        let end = |symbols: &[Symbol], i: usize| match symbols[i].next {
            -1 => text.len(),
            j => symbols[j as usize].start as usize,
        };
        // The score rank of the token that symbols `l` and its right neighbour make, if any.
        let pair = |symbols: &[Symbol], l: usize| -> Option<u32> {
            let r = symbols[l].next;
            if r < 0 {
                return None;
            }
            let piece = &text[symbols[l].start as usize..end(symbols, r as usize)];
            token_to_id.get(piece).map(|&id| rank[id as usize])
        };
        let key = |rank: u32, l: usize| ((rank as u64) << 32) | l as u64;
        queue.reserve(n);
        for l in 0..n - 1 {
            if let Some(r) = pair(symbols, l) {
                queue.push(key(r, l));
            }
        }
        // The reference queues (score, left, right, size) and skips a popped entry whose
        // symbols changed since. Here an entry is (score, left) and it is merged when the pair
        // now at `left` has that score. The two agree: every pair now adjacent was queued when
        // it became adjacent and has not been popped (or it would be merged), so when a key
        // pops that matches the current pair, that pair's own entry has the same key, and
        // entries with equal keys are interchangeable (either heap pops them in any order).
        while let Some(k) = queue.pop() {
            let (r, l) = ((k >> 32) as u32, k as u32 as usize);
            if symbols[l].next == DEAD || pair(symbols, l) != Some(r) {
                continue;
            }
            let right = symbols[l].next as usize;
            let after = symbols[right].next;
            symbols[l].next = after;
            symbols[right].next = DEAD;
            if after >= 0 {
                symbols[after as usize].prev = l as i32;
            }
            let prev = symbols[l].prev;
            if prev >= 0 {
                if let Some(r) = pair(symbols, prev as usize) {
                    queue.push(key(r, prev as usize));
                }
            }
            if let Some(r) = pair(symbols, l) {
                queue.push(key(r, l));
            }
        }
        let mut i = 0i32;
        while i >= 0 {
            let piece = &text[symbols[i as usize].start as usize..end(symbols, i as usize)];
            match token_to_id.get(piece) {
                Some(&id) => out.push(id),
                // Only unmerged characters can miss: every merge result is a token.
                None => {
                    for &byte in piece {
                        out.push(byte_token(byte)?);
                    }
                }
            }
            i = symbols[i as usize].next;
        }
        Ok(())
    }
}

/// Whether no merge can join the symbols left and right of byte `pos` (a character boundary;
/// `char_start` is where the character before it starts, and no merge crosses `start`).
///
/// The symbol ending at `pos` is always a single character or a token that is a suffix of
/// `text[start..pos]`, and the one starting at `pos` a single character or a token that is a
/// prefix of `text[pos..]`. If no such pair concatenates to a token, the two sides never
/// merge, so each side's merges (in the same order: the keys keep their relative order) are
/// those of the whole text: the result is the same whether the text is cut there or not.
fn is_cut(
    text: &[u8],
    start: usize,
    char_start: usize,
    pos: usize,
    token_to_id: &FxHashMap<Box<[u8]>, i32>,
    max_len: usize,
) -> bool {
    let is_token = |a: usize, b: usize| token_to_id.contains_key(&text[a..b]);
    let first_len = utf8_len(text[pos]).min(text.len() - pos);
    let mut left = [0u8; MAX_CUT_TOKEN + 1];
    let mut n_left = 0;
    for k in 1..=max_len.min(pos - start) {
        if k == pos - char_start || is_token(pos - k, pos) {
            left[n_left] = k as u8;
            n_left += 1;
        }
    }
    for k in 1..=max_len.min(text.len() - pos) {
        if k != first_len && !is_token(pos, pos + k) {
            continue;
        }
        for &l in &left[..n_left] {
            let l = l as usize;
            if l + k <= max_len && is_token(pos - l, pos + k) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_follow_scores_with_ties() {
        let r = score_ranks([-1.0f32, 3.0, -1.0, 0.0, -0.0, f32::NEG_INFINITY].into_iter());
        assert_eq!(r, [2, 0, 2, 1, 1, 3]);
    }

    #[test]
    fn merges_highest_score_then_leftmost() {
        let tokens = ["a", "b", "ab", "ba", "aba", "<0x63>"];
        let map: FxHashMap<Box<[u8]>, i32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_bytes().into(), i as i32))
            .collect();
        let run = |scores: [f32; 6], text: &[u8]| {
            let t = SpmTables::new(&tokens, scores.into_iter());
            let mut out = Vec::new();
            SpmSession::default()
                .tokenize(
                    text,
                    &map,
                    &t,
                    |b| if b == b'c' { Ok(5) } else { Err(b) },
                    &mut out,
                )
                .map(|_| out)
        };
        // "ab" beats "ba": ab|a then aba.
        assert_eq!(run([0.0, 0.0, -1.0, -2.0, -3.0, 0.0], b"aba"), Ok(vec![4]));
        // "ba" beats "ab": a|ba|b, then a+ba makes the token "aba".
        assert_eq!(
            run([0.0, 0.0, -2.0, -1.0, -3.0, 0.0], b"abab"),
            Ok(vec![4, 1])
        );
        // Ties: leftmost first, so ab|ab (and "abab" is no token).
        assert_eq!(
            run([0.0, 0.0, -1.0, -1.0, -9.0, 0.0], b"abab"),
            Ok(vec![2, 2])
        );
        // Byte fallback for an unknown character, error when there is none.
        assert_eq!(run([0.0; 6], b"c"), Ok(vec![5]));
        assert_eq!(run([0.0; 6], b"d"), Err(b'd'));
    }
}
