//! The tokenizer: a vocabulary read from GGUF metadata (`tokenizer.ggml.*`), text -> tokens
//! and tokens -> text, with llama.cpp's behaviour (`llama-vocab.cpp` of the reference fork).
//!
//! Modules, one job each:
//! - `load`: `Vocab::from_gguf`, key checks and the reference's defaults and fix-ups;
//! - `special`: cutting special-token texts out of the input (longest first);
//! - `pretokenize` + `unicode` (+ generated `unicode_tables`) + `bpe`: byte-level BPE
//!   (model "gpt2": Llama-3, GPT-2, Falcon pre-tokenizers);
//! - `spm`: SentencePiece-style score merges with byte fallback (model "llama": Llama-2);
//! - `detok`: `token_to_piece`, `detokenize` and the BPE space clean-up.
//!
//! Known differences from the reference, all where it is unspecified or would crash:
//! special tokens of equal length are tried in id order (llama.cpp's `std::sort` leaves the
//! order open); when several texts qualify as, say, the EOT token, the first in the
//! reference's list wins (llama.cpp takes whichever its hash map yields first); an
//! out-of-range special token id in the file is an error (llama.cpp warns and keeps the
//! default); a byte with no token in an SPM vocab without UNK is an error (llama.cpp throws).

mod bpe;
mod detok;
mod hash;
mod load;
#[cfg(test)]
mod long_text_tests;
mod pretokenize;
mod queue;
mod special;
mod spm;
mod unicode;
mod unicode_tables;
pub mod vocab_only;

pub use detok::clean_spaces;
pub use vocab_only::{BasicHparams, VocabOnlyModel};

use crate::error::{Error, Result};
use hash::FxHashMap;
use special::{Fragment, SpecialMatcher};
use std::cell::RefCell;
use std::collections::HashSet;

/// A token id (llama.cpp's `llama_token`).
pub type Token = i32;

/// Token attributes, llama.cpp's `llama_token_attr` bits (the C API returns them as is).
pub mod attr {
    pub const UNDEFINED: u32 = 0;
    pub const UNKNOWN: u32 = 1 << 0;
    pub const UNUSED: u32 = 1 << 1;
    pub const NORMAL: u32 = 1 << 2;
    pub const CONTROL: u32 = 1 << 3;
    pub const USER_DEFINED: u32 = 1 << 4;
    pub const BYTE: u32 = 1 << 5;
    pub const NORMALIZED: u32 = 1 << 6;
    pub const LSTRIP: u32 = 1 << 7;
    pub const RSTRIP: u32 = 1 << 8;
    pub const SINGLE_WORD: u32 = 1 << 9;
}

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TokenType {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

impl TokenType {
    /// The type for a GGUF value; values outside 1..=6 are Undefined, as in the reference.
    pub fn from_i32(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    /// The attribute bits a token of this type starts with.
    pub fn attr(self) -> u32 {
        match self {
            TokenType::Undefined => attr::UNDEFINED,
            TokenType::Normal => attr::NORMAL,
            TokenType::Unknown => attr::UNKNOWN,
            TokenType::Control => attr::CONTROL,
            TokenType::UserDefined => attr::USER_DEFINED,
            TokenType::Unused => attr::UNUSED,
            TokenType::Byte => attr::BYTE,
        }
    }
}

/// The tokenizer model (`tokenizer.ggml.model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VocabType {
    /// "llama": SentencePiece-style, score-based merges, byte fallback.
    Spm,
    /// "gpt2": byte-level BPE with a merge table.
    Bpe,
}

/// The BPE pre-tokenizer (`tokenizer.ggml.pre`); SPM vocabs are always `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PreType {
    /// "default" (or no key): the reference's generic regex set.
    Default,
    /// "llama-bpe", "llama3", "llama-v3".
    Llama3,
    /// "gpt-2".
    Gpt2,
    /// "falcon".
    Falcon,
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenData {
    pub text: String,
    pub score: f32,
    pub ty: TokenType,
    /// `attr` bits; may differ from `ty.attr()` where the reference patches them (EOG tokens).
    pub attr: u32,
}

/// Ids of the special tokens; `None` where the vocab has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<Token>,
    pub eos: Option<Token>,
    pub eot: Option<Token>,
    pub eom: Option<Token>,
    pub unk: Option<Token>,
    pub sep: Option<Token>,
    pub pad: Option<Token>,
    pub cls: Option<Token>,
    pub mask: Option<Token>,
    /// Fill-in-the-middle: prefix, suffix, middle, pad, repo, file separator.
    pub fim_pre: Option<Token>,
    pub fim_suf: Option<Token>,
    pub fim_mid: Option<Token>,
    pub fim_pad: Option<Token>,
    pub fim_rep: Option<Token>,
    pub fim_sep: Option<Token>,
    /// The newline token.
    pub nl: Option<Token>,
}

/// A tokenizer vocabulary. Immutable after loading; `tokenize` may be called from many threads
/// (each keeps its own scratch buffers).
pub struct Vocab {
    kind: VocabType,
    pre: PreType,
    tokens: Vec<TokenData>,
    /// Text -> id; for repeated texts the last id wins, as in the reference.
    token_to_id: FxHashMap<Box<[u8]>, Token>,
    special: SpecialTokens,
    eog: HashSet<Token>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    ignore_merges: bool,
    /// Finds CONTROL, USER_DEFINED and UNKNOWN token texts in raw text.
    special_matcher: SpecialMatcher,
    bpe: Option<bpe::BpeTables>,
    /// Score ranks and longest token for the SPM merge loop; empty for BPE.
    spm: spm::SpmTables,
    /// The token of each byte without the UNK fallback (`<0xXX>`, else the one-byte text).
    byte_tokens: [Option<Token>; 256],
    /// Each token's bytes as `token_to_piece(id, 0, special = true)` gives them.
    pieces: Vec<Box<[u8]>>,
}

thread_local! {
    pub(crate) static BPE_SESSION: RefCell<bpe::BpeSession> = RefCell::new(bpe::BpeSession::default());
    pub(crate) static SPM_SESSION: RefCell<spm::SpmSession> = RefCell::new(spm::SpmSession::default());
}

impl Vocab {
    pub fn vocab_type(&self) -> VocabType {
        self.kind
    }
    pub fn n_tokens(&self) -> usize {
        self.tokens.len()
    }
    pub fn special_tokens(&self) -> SpecialTokens {
        self.special
    }
    pub fn bos(&self) -> Option<Token> {
        self.special.bos
    }
    pub fn eos(&self) -> Option<Token> {
        self.special.eos
    }
    pub fn eot(&self) -> Option<Token> {
        self.special.eot
    }
    pub fn eom(&self) -> Option<Token> {
        self.special.eom
    }
    pub fn unk(&self) -> Option<Token> {
        self.special.unk
    }
    pub fn pad(&self) -> Option<Token> {
        self.special.pad
    }
    pub fn sep(&self) -> Option<Token> {
        self.special.sep
    }
    pub fn cls(&self) -> Option<Token> {
        self.special.cls
    }
    pub fn nl(&self) -> Option<Token> {
        self.special.nl
    }
    /// Whether `tokenize(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    /// Whether `tokenize(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    fn data(&self, token: Token) -> Result<&TokenData> {
        usize::try_from(token)
            .ok()
            .and_then(|i| self.tokens.get(i))
            .ok_or_else(|| {
                Error::invalid_token(format!(
                    "token id {token} is outside the vocabulary (0..{})",
                    self.tokens.len()
                ))
            })
    }
    /// The token's text as stored in the vocab (byte-level chars for BPE, ▁ for SPM).
    pub fn token_text(&self, token: Token) -> Result<&str> {
        Ok(&self.data(token)?.text)
    }
    pub fn token_score(&self, token: Token) -> Result<f32> {
        Ok(self.data(token)?.score)
    }
    pub fn token_type(&self, token: Token) -> Result<TokenType> {
        Ok(self.data(token)?.ty)
    }
    /// The `attr` bits (see [`attr`]).
    pub fn token_attr(&self, token: Token) -> Result<u32> {
        Ok(self.data(token)?.attr)
    }
    /// The id of the token with exactly this text.
    pub fn token_id(&self, text: &str) -> Option<Token> {
        self.token_to_id.get(text.as_bytes()).copied()
    }
    /// End of generation: EOS, EOT, EOM and tokens such as `<|eot_id|>`, `<|endoftext|>`.
    pub fn is_eog(&self, token: Token) -> bool {
        self.eog.contains(&token)
    }
    /// A CONTROL token (false for ids outside the vocab).
    pub fn is_control(&self, token: Token) -> bool {
        self.data(token).is_ok_and(|d| d.attr & attr::CONTROL != 0)
    }
    /// The end-of-generation set, sorted.
    pub fn eog_tokens(&self) -> Vec<Token> {
        let mut v: Vec<Token> = self.eog.iter().copied().collect();
        v.sort_unstable();
        v
    }

    /// Tokenizes `text` (UTF-8; invalid sequences are read as U+FFFD like the reference).
    /// `add_special`: add BOS/EOS where the vocab says so. `parse_special`: match CONTROL and
    /// UNKNOWN token texts in the text (USER_DEFINED ones are always matched).
    pub fn tokenize(
        &self,
        text: impl AsRef<[u8]>,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<Token>> {
        let text = text.as_ref();
        if text.len() > i32::MAX as usize {
            // Symbol links are i32, and the C API's text length is an int32_t.
            return Err(Error::invalid_argument(format!(
                "text of {} bytes is too long to tokenize (at most {} bytes)",
                text.len(),
                i32::MAX
            )));
        }
        let fragments = self.special_matcher.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.push(self.special.bos.ok_or_else(|| {
                Error::metadata("vocab adds BOS (add_bos_token) but has no bos_token_id")
            })?);
        }
        match self.kind {
            VocabType::Spm => self.tokenize_spm(text, &fragments, &mut out)?,
            VocabType::Bpe => self.tokenize_bpe(text, &fragments, &mut out)?,
        }
        if add_special && self.add_eos {
            out.push(self.special.eos.ok_or_else(|| {
                Error::metadata("vocab adds EOS (add_eos_token) but has no eos_token_id")
            })?);
        }
        Ok(out)
    }

    fn tokenize_bpe(
        &self,
        text: &[u8],
        fragments: &[Fragment],
        out: &mut Vec<Token>,
    ) -> Result<()> {
        let tables = self
            .bpe
            .as_ref()
            .ok_or_else(|| Error::internal("BPE vocab without merge tables"))?;
        BPE_SESSION.with(|s| {
            let mut session = s.borrow_mut();
            let mut word = Vec::new();
            for f in fragments {
                match *f {
                    Fragment::Token(id) => out.push(id),
                    Fragment::Text(a, b) => {
                        let cps = unicode::code_points(&text[a..b]);
                        for (s, e) in pretokenize::split(self.pre, &cps) {
                            word.clear();
                            for &cp in &cps[s..e] {
                                unicode::push_utf8(&mut word, cp);
                            }
                            session.tokenize_word(tables, self.ignore_merges, &word, out);
                        }
                    }
                }
            }
        });
        Ok(())
    }

    fn tokenize_spm(
        &self,
        text: &[u8],
        fragments: &[Fragment],
        out: &mut Vec<Token>,
    ) -> Result<()> {
        // A text fragment at the start or right after a special token gets the space prefix.
        let mut prev_special = true;
        let mut buf = Vec::new();
        for f in fragments {
            match *f {
                Fragment::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Fragment::Text(a, b) => {
                    buf.clear();
                    if self.add_space_prefix && prev_special {
                        buf.extend_from_slice("\u{2581}".as_bytes());
                    }
                    for &c in &text[a..b] {
                        if c == b' ' {
                            buf.extend_from_slice("\u{2581}".as_bytes());
                        } else {
                            buf.push(c);
                        }
                    }
                    SPM_SESSION.with(|s| {
                        s.borrow_mut().tokenize(
                            &buf,
                            &self.token_to_id,
                            &self.spm,
                            |b| self.byte_to_token(b),
                            out,
                        )
                    })?;
                    prev_special = false;
                }
            }
        }
        Ok(())
    }

    /// The token of a raw byte (SPM byte fallback): `<0xXX>`, else the one-byte text, else UNK.
    pub fn byte_to_token(&self, b: u8) -> Result<Token> {
        if let Some(id) = self.byte_tokens[b as usize] {
            return Ok(id);
        }
        self.special.unk.ok_or_else(|| {
            Error::unsupported(format!(
                "byte 0x{b:02X} has no token (<0x{b:02X}>) and the vocab has no unknown token"
            ))
        })
    }
}
