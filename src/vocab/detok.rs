//! Tokens -> text: `token_to_piece` and `detokenize`, as llama.cpp's
//! `llama_token_to_piece_impl` / `llama_detokenize_impl`.

use super::{attr, bpe, Token, TokenData, Vocab, VocabType};
use crate::error::Result;

/// Tokens whose text shows only when `special` is asked for (the fork's `attr_special`).
const HIDDEN: u32 = attr::CONTROL | attr::UNKNOWN;

impl Vocab {
    /// The bytes of one token. `special`: show CONTROL and UNKNOWN tokens' text (otherwise
    /// they are empty). `lstrip`: drop up to that many leading spaces. The bytes may be part of a
    /// UTF-8 sequence: concatenate pieces before decoding.
    pub fn token_to_piece(&self, token: Token, lstrip: usize, special: bool) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.append_piece(token, lstrip, special, &mut out)?;
        Ok(out)
    }

    fn append_piece(
        &self,
        token: Token,
        lstrip: usize,
        special: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let d = self.data(token)?;
        if !special && d.attr & HIDDEN != 0 {
            return Ok(());
        }
        let piece = &self.pieces[token as usize];
        let skip = piece
            .iter()
            .take(lstrip)
            .take_while(|&&b| b == b' ')
            .count();
        out.extend_from_slice(&piece[skip..]);
        Ok(())
    }

    /// Every token's piece as shown with `special = true` (the reference caches the same).
    pub(super) fn render_pieces(&self) -> Vec<Box<[u8]>> {
        self.tokens
            .iter()
            .map(|d| render_piece(self.kind, d).into_boxed_slice())
            .collect()
    }

    /// Joins the pieces of `tokens`. `remove_special`: drop a leading BOS / trailing EOS
    /// where the vocab adds them. `unparse_special`: show CONTROL tokens' text. SPM vocabs
    /// with a space prefix lose the first piece's leading space (unless a BOS was removed);
    /// BPE vocabs clean up spaces before punctuation and contractions (see `clean_spaces`).
    pub fn detokenize(
        &self,
        tokens: &[Token],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<Vec<u8>> {
        let mut tokens = tokens;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let (Some(&first), Some(bos)) = (tokens.first(), self.special.bos) {
                if first == bos {
                    remove_space = false;
                    tokens = &tokens[1..];
                }
            }
        }
        if remove_special && self.add_eos {
            if let (Some(&last), Some(eos)) = (tokens.last(), self.special.eos) {
                if last == eos {
                    tokens = &tokens[..tokens.len() - 1];
                }
            }
        }
        let mut out = Vec::with_capacity(tokens.len() * 4);
        for &t in tokens {
            self.append_piece(t, remove_space as usize, unparse_special, &mut out)?;
            remove_space = false;
        }
        if self.clean_spaces {
            out = clean_spaces(&out);
        }
        Ok(out)
    }
}

/// The bytes a token stands for, CONTROL and UNKNOWN text included.
fn render_piece(kind: VocabType, d: &TokenData) -> Vec<u8> {
    let a = d.attr;
    let text = d.text.as_str();
    let mut out = Vec::new();
    // Attribute tests in the reference's order; UNUSED and UNDEFINED tokens show nothing.
    match kind {
        VocabType::Spm => {
            if a & (HIDDEN | attr::USER_DEFINED) != 0 {
                out.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                out.extend_from_slice(text.replace('\u{2581}', " ").as_bytes());
            } else if a & attr::BYTE != 0 {
                out.push(spm_byte_value(text));
            }
        }
        VocabType::Bpe => {
            if a & (HIDDEN | attr::USER_DEFINED) != 0 {
                out.extend_from_slice(text.as_bytes());
            } else if a & attr::NORMAL != 0 {
                bpe_decode_text(text, &mut out);
            }
        }
    }
    out
}

/// The byte of an SPM byte token `<0xXX>` (as the reference: `strtol` of its chars 3..5, so a
/// malformed text reads as far as it is hex).
fn spm_byte_value(text: &str) -> u8 {
    let hex = text.get(3..5).unwrap_or("");
    let digits: String = hex.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    u8::from_str_radix(&digits, 16).unwrap_or(0)
}

/// Byte-level text -> raw bytes. A char outside the byte-level alphabet becomes
/// `[UNK_BYTE_0x<its UTF-8 in hex><the whole token text>]`, as the reference writes it.
fn bpe_decode_text(text: &str, out: &mut Vec<u8>) {
    for c in text.chars() {
        match bpe::char_to_byte(c as u32) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
}

/// The reference's three clean-up passes over the joined bytes:
/// 1. drop a space before `?`, `!`, `.` or `,`;
/// 2. `" ' "` becomes `"'"`;
/// 3. drop a space before `'s`, `'m`, `'re`, `'ve` (not `'t`, `'d`, `'ll`).
///
/// Each pass looks at its input (not its output) for the neighbours, like the in-place C code.
pub fn clean_spaces(text: &[u8]) -> Vec<u8> {
    if text.is_empty() {
        return Vec::new();
    }
    // Pass 1.
    let mut p1 = Vec::with_capacity(text.len());
    p1.push(text[0]);
    for i in 1..text.len() {
        let x = text[i];
        if text[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            p1.pop();
        }
        p1.push(x);
    }
    // Pass 2. The space after the apostrophe is skipped, and it no longer counts as the space
    // before the next char (the reference overwrites it with NUL).
    let mut p2 = Vec::with_capacity(p1.len());
    p2.push(p1[0]);
    let mut i = 1;
    let mut erased = usize::MAX;
    while i < p1.len() {
        let x = p1[i];
        let prev_is_space = p1[i - 1] == b' ' && erased != i - 1;
        if x == b'\'' && i + 1 < p1.len() && prev_is_space && p1[i + 1] == b' ' {
            p2.pop();
            erased = i + 1;
            p2.push(x);
            i += 2;
            continue;
        }
        p2.push(x);
        i += 1;
    }
    // Pass 3.
    let mut p3 = Vec::with_capacity(p2.len());
    p3.push(p2[0]);
    let n = p2.len();
    for i in 1..n {
        let x = p2[i];
        if p2[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = p2[i + 1];
            let drop = match x1 {
                b's' | b'm' => true,
                b't' | b'd' => false,
                _ => i + 2 < n && matches!((x1, p2[i + 2]), (b'r', b'e') | (b'v', b'e')),
            };
            if drop {
                p3.pop();
            }
        }
        p3.push(x);
    }
    p3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_rules() {
        let c = |s: &str| String::from_utf8(clean_spaces(s.as_bytes())).unwrap();
        assert_eq!(c("Hello , world !"), "Hello, world!");
        assert_eq!(c("a  ."), "a .");
        assert_eq!(
            c("it 's he 'll I 'm we 're they 've don 't I 'd"),
            "it's he 'll I'm we're they've don 't I 'd"
        );
        assert_eq!(c("a ' b"), "a'b");
        assert_eq!(c(" ' ' "), "'' ");
        assert_eq!(c(" ."), ".");
        assert_eq!(c("."), ".");
        assert_eq!(c(""), "");
        assert_eq!(c(" 's"), "'s");
    }

    #[test]
    fn spm_byte_values() {
        assert_eq!(spm_byte_value("<0x0A>"), 10);
        assert_eq!(spm_byte_value("<0xFF>"), 255);
    }
}
