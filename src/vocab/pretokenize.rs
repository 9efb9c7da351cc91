//! BPE pre-tokenizers: split text (as code points) into the words that BPE merges within.
//!
//! Hand-written matchers with the semantics of llama.cpp's: its own custom splitters for the
//! GPT-2 and LLAMA3 regexes, and `std::regex` over "collapsed" text (one byte per code point,
//! by class) for the others. Each splitter refines a list of pieces, never crossing a piece's
//! boundary: text past the end of a piece is invisible to the matcher.

use super::unicode::{class, LETTER, NUMBER, OTHER, OUT_OF_RANGE, PUNCT, SPACE};
use super::PreType;

/// A piece of the text: `start..end` in code point indices.
pub(super) type Piece = (usize, usize);

/// Splits `cps` into words with the regex sequence of `pre`.
pub(super) fn split(pre: PreType, cps: &[u32]) -> Vec<Piece> {
    let whole = vec![(0, cps.len())];
    if cps.is_empty() {
        return Vec::new();
    }
    match pre {
        PreType::Llama3 => refine(cps, &whole, split_llama3),
        PreType::Gpt2 => refine(cps, &whole, split_gpt2),
        // [\p{P}\$\+<=>\^~\|`]+ , then GPT-2, then [0-9][0-9][0-9]
        PreType::Falcon => {
            let p = refine(cps, &whole, |c, r, out| {
                split_runs(c, r, out, is_falcon_punct)
            });
            let p = refine(cps, &p, split_gpt2);
            refine(cps, &p, split_ascii_digit_triples)
        }
        // [\p{P}\$\+<=>\^~\|]+ , then GPT-2, then \p{N}+ , then [0-9][0-9][0-9]
        PreType::Default => {
            let p = refine(cps, &whole, |c, r, out| {
                split_runs(c, r, out, is_default_punct)
            });
            let p = refine(cps, &p, split_gpt2);
            let p = refine(cps, &p, |c, r, out| split_runs(c, r, out, is_number));
            refine(cps, &p, split_ascii_digit_triples)
        }
    }
}

fn refine(cps: &[u32], pieces: &[Piece], f: impl Fn(&[u32], Piece, &mut Vec<Piece>)) -> Vec<Piece> {
    let mut out = Vec::with_capacity(pieces.len() * 2);
    for &p in pieces {
        f(cps, p, &mut out);
    }
    out
}

/// Cursor over one piece, answering "what is at position i" with OUT_OF_RANGE past its ends,
/// and emitting words as it goes (empty words are dropped, as the reference does).
struct Cursor<'a> {
    cps: &'a [u32],
    end: usize,
    prev_end: usize,
}

const NO_CP: u32 = u32::MAX;

impl<'a> Cursor<'a> {
    #[inline]
    fn cp(&self, i: usize) -> u32 {
        if i < self.end {
            self.cps[i]
        } else {
            NO_CP
        }
    }
    #[inline]
    fn class(&self, i: usize) -> u8 {
        if i < self.end {
            class(self.cps[i])
        } else {
            OUT_OF_RANGE
        }
    }
    /// Emits the word `prev_end..end`; returns its length.
    #[inline]
    fn emit(&mut self, end: usize, out: &mut Vec<Piece>) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            out.push((self.prev_end, end));
        }
        self.prev_end = end;
        len
    }
}

/// "Not white space, letter or number", and inside the piece: `[^\s\p{L}\p{N}]`.
#[inline]
fn is_other(c: u8) -> bool {
    c == OTHER || c == PUNCT
}

#[inline]
fn lower_ascii(cp: u32) -> u32 {
    // No non-ASCII code point lower-cases to s, t, r, e, v, m, l or d in Unicode 15.1, so
    // ASCII folding gives the same answers as the reference's full lower-case table here.
    if (b'A' as u32..=b'Z' as u32).contains(&cp) {
        cp + 32
    } else {
        cp
    }
}

/// Length of a contraction `'s 't 're 've 'm 'll 'd` at `pos` (after folding with `fold`), or 0.
#[inline]
fn contraction(c: &Cursor<'_>, pos: usize, fold: fn(u32) -> u32) -> usize {
    if c.cp(pos) != '\'' as u32 || pos + 1 >= c.end {
        return 0;
    }
    let n1 = fold(c.cp(pos + 1));
    if [b's', b't', b'm', b'd'].iter().any(|&b| n1 == b as u32) {
        return 2;
    }
    if pos + 2 < c.end {
        let n2 = fold(c.cp(pos + 2));
        let pair = |a: u8, b: u8| n1 == a as u32 && n2 == b as u32;
        if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
            return 3;
        }
    }
    0
}

/// White space handling shared by GPT-2 and LLAMA3: `\s+(?!\S)` then `\s+`. Returns the end.
#[inline]
fn whitespace_end(c: &Cursor<'_>, pos: usize, n_ws: usize) -> Option<usize> {
    if n_ws > 1 && c.cp(pos + n_ws) != NO_CP {
        // A run followed by a non-space gives its last space to the next word.
        Some(pos + n_ws - 1)
    } else if n_ws > 0 {
        Some(pos + n_ws)
    } else {
        None
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
pub(super) fn split_gpt2(cps: &[u32], (start, end): Piece, out: &mut Vec<Piece>) {
    let mut c = Cursor {
        cps,
        end,
        prev_end: start,
    };
    let mut pos = start;
    while pos < end {
        let cp = c.cp(pos);
        let n = contraction(&c, pos, |x| x);
        if n > 0 {
            pos += c.emit(pos + n, out);
            continue;
        }
        let is_space = cp == ' ' as u32;
        let mut cls = if is_space {
            c.class(pos + 1)
        } else {
            c.class(pos)
        };
        let run = |want: fn(u8) -> bool, pos: &mut usize, cls: &mut u8, c: &Cursor<'_>| {
            *pos += is_space as usize;
            while want(*cls) {
                *pos += 1;
                *cls = c.class(*pos);
            }
        };
        if cls == LETTER {
            run(|k| k == LETTER, &mut pos, &mut cls, &c);
            c.emit(pos, out);
            continue;
        }
        if cls == NUMBER {
            run(|k| k == NUMBER, &mut pos, &mut cls, &c);
            c.emit(pos, out);
            continue;
        }
        if is_other(cls) {
            run(is_other, &mut pos, &mut cls, &c);
            c.emit(pos, out);
            continue;
        }
        let mut n_ws = 0;
        while c.class(pos + n_ws) == SPACE {
            n_ws += 1;
        }
        match whitespace_end(&c, pos, n_ws) {
            Some(e) => {
                pos = e;
                c.emit(pos, out);
            }
            None => {
                pos += 1;
                c.emit(pos, out);
            }
        }
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
pub(super) fn split_llama3(cps: &[u32], (start, end): Piece, out: &mut Vec<Piece>) {
    let mut c = Cursor {
        cps,
        end,
        prev_end: start,
    };
    let is_crlf = |cp: u32| cp == '\r' as u32 || cp == '\n' as u32;
    let mut pos = start;
    while pos < end {
        let cp = c.cp(pos);
        let cls = c.class(pos);
        let n = contraction(&c, pos, lower_ascii);
        if n > 0 {
            pos += c.emit(pos + n, out);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(is_crlf(cp) || cls == NUMBER) && (cls == LETTER || c.class(pos + 1) == LETTER) {
            pos += 1;
            while c.class(pos) == LETTER {
                pos += 1;
            }
            c.emit(pos, out);
            continue;
        }
        // \p{N}{1,3}
        if cls == NUMBER {
            let mut ini = pos;
            while c.class(pos) == NUMBER {
                pos += 1;
                if pos - ini >= 3 {
                    c.emit(pos, out);
                    ini = pos;
                }
            }
            c.emit(pos, out);
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'. The reference tests the class of the current code point
        // (always set inside the piece) rather than that of the one after the space, so a
        // lone trailing space lands here too; it makes the same one-space word either way.
        let mut cls2 = if cp == ' ' as u32 {
            c.class(pos + 1)
        } else {
            cls
        };
        if is_other(cls2) || cls2 == OUT_OF_RANGE {
            pos += (cp == ' ' as u32) as usize;
            while is_other(cls2) {
                pos += 1;
                cls2 = c.class(pos);
            }
            while is_crlf(c.cp(pos)) {
                pos += 1;
            }
            c.emit(pos, out);
            continue;
        }
        let mut n_ws = 0;
        let mut last_crlf_end = 0;
        while c.class(pos + n_ws) == SPACE {
            if is_crlf(c.cp(pos + n_ws)) {
                last_crlf_end = pos + n_ws + 1;
            }
            n_ws += 1;
        }
        // \s*[\r\n]+
        if last_crlf_end > 0 {
            pos = last_crlf_end;
            c.emit(pos, out);
            continue;
        }
        match whitespace_end(&c, pos, n_ws) {
            Some(e) => pos = e,
            None => pos += 1,
        }
        c.emit(pos, out);
    }
}

/// Splits a piece into maximal runs of code points that satisfy `want` and the gaps between
/// them (a `[...]+` regex through `std::regex_iterator`: unmatched text stays as pieces).
fn split_runs(cps: &[u32], (start, end): Piece, out: &mut Vec<Piece>, want: fn(u32) -> bool) {
    let mut gap = start;
    let mut i = start;
    while i < end {
        if want(cps[i]) {
            let run = i;
            while i < end && want(cps[i]) {
                i += 1;
            }
            if run > gap {
                out.push((gap, run));
            }
            out.push((run, i));
            gap = i;
        } else {
            i += 1;
        }
    }
    if end > gap {
        out.push((gap, end));
    }
}

/// `[0-9][0-9][0-9]`: ASCII digit triples, leftmost first, the rest left as pieces.
fn split_ascii_digit_triples(cps: &[u32], (start, end): Piece, out: &mut Vec<Piece>) {
    let is_digit = |cp: u32| (b'0' as u32..=b'9' as u32).contains(&cp);
    let mut gap = start;
    let mut i = start;
    while i + 3 <= end {
        if is_digit(cps[i]) && is_digit(cps[i + 1]) && is_digit(cps[i + 2]) {
            if i > gap {
                out.push((gap, i));
            }
            out.push((i, i + 3));
            i += 3;
            gap = i;
        } else {
            i += 1;
        }
    }
    if end > gap {
        out.push((gap, end));
    }
}

/// `[\p{P}\$\+<=>\^~\|`]` over collapsed text: every ASCII punctuation or symbol character, and
/// non-ASCII code points of category P (non-ASCII white space is never P).
fn is_falcon_punct(cp: u32) -> bool {
    if cp < 0x80 {
        (cp as u8).is_ascii_punctuation()
    } else {
        class(cp) == PUNCT
    }
}

/// `[\p{P}\$\+<=>\^~\|]`: as FALCON's but without the backtick.
fn is_default_punct(cp: u32) -> bool {
    cp != '`' as u32 && is_falcon_punct(cp)
}

/// `\p{N}` over collapsed text.
fn is_number(cp: u32) -> bool {
    class(cp) == NUMBER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(pre: PreType, s: &str) -> Vec<String> {
        let cps: Vec<u32> = s.chars().map(|c| c as u32).collect();
        split(pre, &cps)
            .into_iter()
            .map(|(a, b)| {
                cps[a..b]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn llama3_words() {
        assert_eq!(
            words(PreType::Llama3, "  Hello world's 12345!!\n\n x"),
            [" ", " Hello", " world", "'s", " ", "123", "45", "!!\n\n", " x"]
        );
        assert_eq!(words(PreType::Llama3, "I'M ok  "), ["I", "'M", " ok", "  "]);
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreType::Gpt2, "Hello  world's 12345!!\n"),
            ["Hello", " ", " world", "'s", " 12345", "!!", "\n"]
        );
        assert_eq!(words(PreType::Gpt2, "I'M"), ["I", "'", "M"]);
    }

    #[test]
    fn falcon_words() {
        assert_eq!(
            words(PreType::Falcon, "a+b=1234567, x`y"),
            ["a", "+", "b", "=", "123", "456", "7", ",", " x", "`", "y"]
        );
    }
}
