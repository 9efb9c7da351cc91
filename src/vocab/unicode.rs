//! Code point decoding and classes, as llama.cpp's `unicode.cpp` sees them.
//!
//! The pre-tokenizers only ask whether a code point is a letter (`\p{L}`), a number (`\p{N}`),
//! punctuation (`\p{P}`) or white space (`\s`, the Unicode White_Space property). The table in
//! `unicode_tables.rs` is generated from Unicode 15.1, the data the reference was built with.

use super::unicode_tables::CLASS_RANGES;

/// Anything else: symbols, marks, separators that are not white space, controls, unassigned.
pub(super) const OTHER: u8 = 0;
pub(super) const LETTER: u8 = 1;
pub(super) const NUMBER: u8 = 2;
pub(super) const PUNCT: u8 = 3;
pub(super) const SPACE: u8 = 4;

/// What the splitters see past the end of a piece (llama.cpp's empty flags): no class at all.
pub(super) const OUT_OF_RANGE: u8 = 0xFF;

/// The class of code point `cp`; values past U+10FFFF are OTHER (llama.cpp: UNDEFINED).
#[inline]
pub(super) fn class(cp: u32) -> u8 {
    if cp < 0x80 {
        return ASCII_CLASS[cp as usize];
    }
    if cp > 0x10FFFF {
        return OTHER;
    }
    // The last range start <= cp (the table starts at 0, so the index is at least 1).
    let i = CLASS_RANGES.partition_point(|&(start, _)| start <= cp);
    CLASS_RANGES[i - 1].1
}

static ASCII_CLASS: [u8; 128] = {
    let mut t = [OTHER; 128];
    let mut cp = 0;
    while cp < 128 {
        // The table's first ranges cover ASCII; a linear scan is fine at compile time.
        let mut i = 0;
        while i + 1 < CLASS_RANGES.len() && CLASS_RANGES[i + 1].0 <= cp as u32 {
            i += 1;
        }
        t[cp] = CLASS_RANGES[i].1;
        cp += 1;
    }
    t
};

/// Decodes one code point at `bytes[pos..]` the way llama.cpp's `unicode_cpt_from_utf8` does:
/// it checks the lead byte and that continuation bytes are present and well-formed, but not for
/// overlong forms or surrogates. Returns `(code point, length)`, or `None` for an invalid
/// sequence (the reference then emits U+FFFD and skips one byte).
#[inline]
pub(super) fn decode_at(bytes: &[u8], pos: usize) -> Option<(u32, usize)> {
    let b0 = bytes[pos] as u32;
    let cont = |k: usize| -> Option<u32> {
        match bytes.get(pos + k) {
            Some(&b) if b & 0xC0 == 0x80 => Some((b & 0x3F) as u32),
            _ => None,
        }
    };
    if b0 & 0x80 == 0 {
        Some((b0, 1))
    } else if b0 & 0x40 == 0 {
        None
    } else if b0 & 0x20 == 0 {
        Some((((b0 & 0x1F) << 6) | cont(1)?, 2))
    } else if b0 & 0x10 == 0 {
        Some((((b0 & 0x0F) << 12) | (cont(1)? << 6) | cont(2)?, 3))
    } else if b0 & 0x08 == 0 {
        let cp = ((b0 & 0x07) << 18) | (cont(1)? << 12) | (cont(2)? << 6) | cont(3)?;
        Some((cp, 4))
    } else {
        None
    }
}

/// The text as code points, invalid sequences replaced by U+FFFD one byte at a time, like
/// llama.cpp's `unicode_cpts_from_utf8`.
pub(super) fn code_points(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        match decode_at(bytes, pos) {
            Some((cp, n)) => {
                out.push(cp);
                pos += n;
            }
            None => {
                out.push(0xFFFD);
                pos += 1;
            }
        }
    }
    out
}

/// Appends the UTF-8 encoding of `cp` as llama.cpp's `unicode_cpt_to_utf8` writes it (it
/// encodes surrogates too). Code points past U+10FFFF, which the reference cannot encode
/// (it throws), become U+FFFD.
pub(super) fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    match cp {
        0..=0x7F => out.push(cp as u8),
        0x80..=0x7FF => out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]),
        0x800..=0xFFFF => out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        0x10000..=0x10FFFF => out.extend_from_slice(&[
            0xF0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]),
        _ => push_utf8(out, 0xFFFD),
    }
}

/// Length of the UTF-8 sequence that lead byte `b` announces (llama.cpp's `unicode_len_utf8`:
/// continuation and invalid bytes count as 1).
#[inline]
pub(super) fn utf8_len(b: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[(b >> 4) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_samples() {
        assert_eq!(class('a' as u32), LETTER);
        assert_eq!(class('Z' as u32), LETTER);
        assert_eq!(class('7' as u32), NUMBER);
        assert_eq!(class(' ' as u32), SPACE);
        assert_eq!(class('\n' as u32), SPACE);
        assert_eq!(class(0x1C), OTHER); // not White_Space, unlike Python's str.isspace
        assert_eq!(class('!' as u32), PUNCT);
        assert_eq!(class('$' as u32), OTHER); // a symbol, not \p{P}
        assert_eq!(class(0xBD), NUMBER); // ½
        assert_eq!(class(0x00A0), SPACE);
        assert_eq!(class(0x3000), SPACE);
        assert_eq!(class(0x200B), OTHER); // zero width space is Cf, not White_Space
        assert_eq!(class(0x4E2D), LETTER); // 中
        assert_eq!(class(0x20000), LETTER); // CJK Ext-B
        assert_eq!(class(0x2EBF0), LETTER); // CJK Ext-I, new in Unicode 15.1
        assert_eq!(class(0x1C89), OTHER); // assigned only in Unicode 16
        assert_eq!(class(0x0301), OTHER); // combining acute: a mark
        assert_eq!(class(0x1F600), OTHER); // emoji: a symbol
        assert_eq!(class(0x3001), PUNCT); // 、
        assert_eq!(class(0x10FFFF), OTHER);
        assert_eq!(class(0x110000), OTHER);
    }

    #[test]
    fn decode_like_reference() {
        assert_eq!(
            code_points("aé中😀".as_bytes()),
            vec![0x61, 0xE9, 0x4E2D, 0x1F600]
        );
        assert_eq!(code_points(b"\xFFa"), vec![0xFFFD, 0x61]);
        assert_eq!(code_points(b"\xE4\xB8"), vec![0xFFFD, 0xFFFD]);
        let mut v = Vec::new();
        for cp in [0x61, 0xE9, 0x4E2D, 0x1F600] {
            push_utf8(&mut v, cp);
        }
        assert_eq!(v, "aé中😀".as_bytes());
    }
}
