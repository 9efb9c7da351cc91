//! Cutting special-token texts out of raw text before tokenizing, as llama.cpp's
//! `tokenizer_st_partition`: candidates are taken longest first; each one splits every
//! remaining text fragment at all its non-overlapping occurrences, left to right.
//!
//! The reference searches the text once per candidate (256 searches for Llama-3). Here one
//! pass over the text finds every occurrence of every candidate (indexed by their first two
//! bytes); the candidates are then applied in the same order to the same fragments, so the
//! result is identical.

use super::attr;
use super::hash::FxHashMap;
use super::Token;

/// A part of the input after special tokens are cut out: raw text `start..end`, or a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fragment {
    Text(usize, usize),
    Token(Token),
}

struct Candidate {
    id: Token,
    text: Box<[u8]>,
    /// CONTROL and UNKNOWN tokens are matched only when parsing specials.
    parse_only: bool,
    lstrip: bool,
    rstrip: bool,
}

pub(super) struct SpecialMatcher {
    /// In partition order: longest text first, then by id.
    candidates: Vec<Candidate>,
    /// Candidates (indices) by their first two bytes (or first byte for one-byte texts).
    by_prefix: FxHashMap<u16, Vec<u32>>,
    by_byte: FxHashMap<u8, Vec<u32>>,
    any_always: bool,
}

impl SpecialMatcher {
    /// `tokens`: (id, text, attr) of every token.
    pub(super) fn new<'a>(tokens: impl Iterator<Item = (Token, &'a str, u32)>) -> SpecialMatcher {
        let mut candidates: Vec<Candidate> = tokens
            .filter(|&(_, text, a)| {
                !text.is_empty() && a & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .map(|(id, text, a)| Candidate {
                id,
                text: text.as_bytes().into(),
                parse_only: a & (attr::CONTROL | attr::UNKNOWN) != 0,
                lstrip: a & attr::LSTRIP != 0,
                rstrip: a & attr::RSTRIP != 0,
            })
            .collect();
        // Ties keep id order (the reference's std::sort leaves them unspecified).
        candidates.sort_by_key(|c| std::cmp::Reverse(c.text.len()));
        let mut by_prefix: FxHashMap<u16, Vec<u32>> = FxHashMap::default();
        let mut by_byte: FxHashMap<u8, Vec<u32>> = FxHashMap::default();
        for (i, c) in candidates.iter().enumerate() {
            if c.text.len() >= 2 {
                by_prefix.entry(prefix(&c.text)).or_default().push(i as u32);
            } else {
                by_byte.entry(c.text[0]).or_default().push(i as u32);
            }
        }
        let any_always = candidates.iter().any(|c| !c.parse_only);
        SpecialMatcher {
            candidates,
            by_prefix,
            by_byte,
            any_always,
        }
    }

    /// Splits `text` into fragments.
    pub(super) fn partition(&self, text: &[u8], parse_special: bool) -> Vec<Fragment> {
        if text.is_empty() {
            return Vec::new();
        }
        let whole = vec![Fragment::Text(0, text.len())];
        if !parse_special && !self.any_always {
            return whole;
        }
        // Every occurrence of every usable candidate: (candidate, position), sorted.
        let mut occ: Vec<(u32, usize)> = Vec::new();
        for pos in 0..text.len() {
            let mut check = |list: Option<&Vec<u32>>| {
                for &ci in list.into_iter().flatten() {
                    let c = &self.candidates[ci as usize];
                    if (parse_special || !c.parse_only) && text[pos..].starts_with(&c.text) {
                        occ.push((ci, pos));
                    }
                }
            };
            if pos + 1 < text.len() {
                check(self.by_prefix.get(&prefix(&text[pos..])));
            }
            if !self.by_byte.is_empty() {
                check(self.by_byte.get(&text[pos]));
            }
        }
        if occ.is_empty() {
            return whole;
        }
        occ.sort_unstable();
        let mut frags = whole;
        for group in occ.chunk_by(|a, b| a.0 == b.0) {
            let c = &self.candidates[group[0].0 as usize];
            let positions: Vec<usize> = group.iter().map(|&(_, p)| p).collect();
            frags = self.split_all(text, frags, c, &positions);
        }
        frags
    }

    fn split_all(
        &self,
        text: &[u8],
        frags: Vec<Fragment>,
        c: &Candidate,
        positions: &[usize],
    ) -> Vec<Fragment> {
        let len = c.text.len();
        let mut out = Vec::with_capacity(frags.len() + 2 * positions.len());
        for f in frags {
            let Fragment::Text(mut start, end) = f else {
                out.push(f);
                continue;
            };
            let mut k = positions.partition_point(|&p| p < start);
            while k < positions.len() && positions[k] + len <= end {
                let m = positions[k];
                let mut left_end = m;
                if c.lstrip {
                    while left_end > start && is_c_space(text[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > start {
                    out.push(Fragment::Text(start, left_end));
                }
                out.push(Fragment::Token(c.id));
                start = m + len;
                if c.rstrip {
                    while start < end && is_c_space(text[start]) {
                        start += 1;
                    }
                }
                // Next occurrence at or after the new start (occurrences may overlap).
                k += positions[k..].partition_point(|&p| p < start);
            }
            if end > start {
                out.push(Fragment::Text(start, end));
            }
        }
        out
    }
}

#[inline]
fn prefix(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// C's `isspace` in the "C" locale (includes \v, unlike `u8::is_ascii_whitespace`).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(tokens: &[(&str, u32)]) -> SpecialMatcher {
        SpecialMatcher::new(
            tokens
                .iter()
                .enumerate()
                .map(|(i, &(t, a))| (i as Token, t, a)),
        )
    }

    #[test]
    fn longest_first_and_modes() {
        let m = matcher(&[
            ("<s>", attr::CONTROL),
            ("<s><s>", attr::CONTROL),
            ("x", attr::USER_DEFINED),
            ("abc", attr::NORMAL),
        ]);
        use Fragment::*;
        assert_eq!(
            m.partition(b"a<s><s><s>b", true),
            [Text(0, 1), Token(1), Token(0), Text(10, 11)]
        );
        assert_eq!(
            m.partition(b"<s>x<s>", false),
            [Text(0, 3), Token(2), Text(4, 7)]
        );
        assert_eq!(m.partition(b"abc", true), [Text(0, 3)]);
        assert_eq!(m.partition(b"", true), []);
        // Overlapping occurrences: leftmost wins, the next search starts after it.
        let m = matcher(&[("aa", attr::CONTROL)]);
        assert_eq!(m.partition(b"aaa", true), [Token(0), Text(2, 3)]);
    }
}
