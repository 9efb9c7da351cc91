//! Vocab group: tokenize, token_to_piece, detokenize, special tokens, per-token attributes.

use super::model::ModelSource;
use super::{bitnet_token, borrow, call, error, slice, slice_mut, BITNET_TOKEN_NULL};
use crate::error::{Error, ErrorKind, Result};
use crate::vocab::{Vocab, VocabType};
use std::ffi::c_char;
use std::sync::OnceLock;

/// The vocabulary of a model (opaque, owned by the model: never freed by the caller).
pub struct bitnet_vocab {
    /// The model (or vocab-only file) whose vocabulary this is.
    source: ModelSource,
    /// `tokenizer.ggml.suppress_tokens` in range (bitnet_vocab_get_suppress_tokens; first use).
    pub(crate) suppress: OnceLock<Vec<bitnet_token>>,
    /// Every token's text, NUL-terminated, for bitnet_vocab_get_text (built on first use).
    texts: OnceLock<TextTable>,
}

struct TextTable {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl bitnet_vocab {
    pub(crate) fn new(source: ModelSource) -> bitnet_vocab {
        bitnet_vocab {
            source,
            suppress: OnceLock::new(),
            texts: OnceLock::new(),
        }
    }

    pub(crate) fn gguf(&self) -> &crate::gguf::GgufFile {
        self.source.gguf()
    }

    pub(crate) fn vocab(&self) -> &Vocab {
        self.source.vocab()
    }

    fn texts(&self) -> &TextTable {
        self.texts.get_or_init(|| {
            let vocab = self.vocab();
            let n = vocab.n_tokens();
            let mut t = TextTable {
                bytes: Vec::new(),
                starts: Vec::with_capacity(n),
            };
            for id in 0..n as bitnet_token {
                t.starts.push(t.bytes.len());
                t.bytes
                    .extend_from_slice(vocab.token_text(id).unwrap_or("").as_bytes());
                t.bytes.push(0);
            }
            t
        })
    }
}

/// Token attribute bit flags (llama_token_attr), returned by bitnet_vocab_get_attr.
pub type bitnet_token_attr = i32;
pub const BITNET_TOKEN_ATTR_UNDEFINED: bitnet_token_attr = 0;
pub const BITNET_TOKEN_ATTR_UNKNOWN: bitnet_token_attr = 1 << 0;
pub const BITNET_TOKEN_ATTR_UNUSED: bitnet_token_attr = 1 << 1;
pub const BITNET_TOKEN_ATTR_NORMAL: bitnet_token_attr = 1 << 2;
pub const BITNET_TOKEN_ATTR_CONTROL: bitnet_token_attr = 1 << 3;
pub const BITNET_TOKEN_ATTR_USER_DEFINED: bitnet_token_attr = 1 << 4;
pub const BITNET_TOKEN_ATTR_BYTE: bitnet_token_attr = 1 << 5;
pub const BITNET_TOKEN_ATTR_NORMALIZED: bitnet_token_attr = 1 << 6;
pub const BITNET_TOKEN_ATTR_LSTRIP: bitnet_token_attr = 1 << 7;
pub const BITNET_TOKEN_ATTR_RSTRIP: bitnet_token_attr = 1 << 8;
pub const BITNET_TOKEN_ATTR_SINGLE_WORD: bitnet_token_attr = 1 << 9;

/// Tokenizer kinds (llama_vocab_type).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_vocab_type {
    BITNET_VOCAB_TYPE_NONE = 0,
    /// SentencePiece-style (tokenizer.ggml.model = "llama").
    BITNET_VOCAB_TYPE_SPM = 1,
    /// Byte-level BPE (tokenizer.ggml.model = "gpt2").
    BITNET_VOCAB_TYPE_BPE = 2,
    BITNET_VOCAB_TYPE_WPM = 3,
    BITNET_VOCAB_TYPE_UGM = 4,
    BITNET_VOCAB_TYPE_RWKV = 5,
}

/// What the tokenize/piece/detokenize calls return on a bad argument (NULL vocab, invalid
/// token, negative length): distinct from every -(needed) value.
const ARG_ERROR: i32 = i32::MIN;

fn vocab_ref<'a>(vocab: *const bitnet_vocab) -> Result<&'a Vocab> {
    Ok(borrow(vocab, "vocab")?.vocab())
}

/// Copies `items` into `out` (capacity `cap`) when it fits and returns the count; otherwise
/// returns -(needed) and records a BUFFER_TOO_SMALL message (llama.h's protocol: call again
/// with a bigger buffer).
fn fill<T: Copy>(items: &[T], out: *mut T, cap: i32, what: &str) -> Result<i32> {
    let n = i32::try_from(items.len()).map_err(|_| {
        Error::invalid_argument(format!("{what}: {} items do not fit int32_t", items.len()))
    })?;
    if n > cap.max(0) {
        error::set(Error::new(
            ErrorKind::BufferTooSmall,
            format!("{what}: needs {n}, the buffer holds {}", cap.max(0)),
        ));
        return Ok(-n);
    }
    slice_mut(out, n as i64, what)?.copy_from_slice(items);
    Ok(n)
}

/// Number of tokens in the vocabulary; -1 if vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_n_tokens(vocab: *const bitnet_vocab) -> i32 {
    call(-1, || Ok(vocab_ref(vocab)?.n_tokens() as i32))
}

/// Tokenizes `text_len` bytes of UTF-8 `text` into `tokens` (capacity `n_tokens_max`).
/// add_special: add BOS/EOS as the vocab says; parse_special: match control-token texts.
/// Returns the number of tokens, or -(needed) when n_tokens_max is too small (nothing
/// written; bitnet_last_status() then says BITNET_ERR_BUFFER_TOO_SMALL), or INT32_MIN on a bad argument (NULL vocab, NULL text with text_len > 0,
/// negative text_len).
#[no_mangle]
pub extern "C" fn bitnet_tokenize(
    vocab: *const bitnet_vocab,
    text: *const c_char,
    text_len: i32,
    tokens: *mut bitnet_token,
    n_tokens_max: i32,
    add_special: bool,
    parse_special: bool,
) -> i32 {
    call(ARG_ERROR, || {
        let vocab = vocab_ref(vocab)?;
        let text = slice(text.cast::<u8>(), text_len as i64, "text")?;
        let ids = vocab.tokenize(text, add_special, parse_special)?;
        fill(&ids, tokens, n_tokens_max, "tokens")
    })
}

/// Writes the bytes of `token` to `buf` (no NUL). lstrip: drop up to that many leading
/// spaces; special: render control tokens (otherwise they give 0 bytes). Returns the number
/// of bytes, -(needed) if `length` is too small (nothing written), INT32_MIN on a bad argument
/// (NULL vocab, token outside the vocabulary, negative lstrip).
#[no_mangle]
pub extern "C" fn bitnet_token_to_piece(
    vocab: *const bitnet_vocab,
    token: bitnet_token,
    buf: *mut c_char,
    length: i32,
    lstrip: i32,
    special: bool,
) -> i32 {
    call(ARG_ERROR, || {
        let vocab = vocab_ref(vocab)?;
        let lstrip = usize::try_from(lstrip)
            .map_err(|_| Error::invalid_argument(format!("lstrip {lstrip} is negative")))?;
        let piece = vocab.token_to_piece(token, lstrip, special)?;
        fill(&piece, buf.cast::<u8>(), length, "buf")
    })
}

/// Joins the pieces of `n_tokens` tokens into `text` (no NUL). remove_special: drop a leading
/// BOS / trailing EOS the vocab adds; unparse_special: render control tokens. Returns the
/// number of bytes, -(needed) if text_len_max is too small, INT32_MIN on a bad argument.
#[no_mangle]
pub extern "C" fn bitnet_detokenize(
    vocab: *const bitnet_vocab,
    tokens: *const bitnet_token,
    n_tokens: i32,
    text: *mut c_char,
    text_len_max: i32,
    remove_special: bool,
    unparse_special: bool,
) -> i32 {
    call(ARG_ERROR, || {
        let vocab = vocab_ref(vocab)?;
        let tokens = slice(tokens, n_tokens as i64, "tokens")?;
        let bytes = vocab.detokenize(tokens, remove_special, unparse_special)?;
        fill(&bytes, text.cast::<u8>(), text_len_max, "text")
    })
}

fn special(
    vocab: *const bitnet_vocab,
    f: impl FnOnce(&Vocab) -> Option<bitnet_token>,
) -> bitnet_token {
    call(BITNET_TOKEN_NULL, || {
        Ok(f(vocab_ref(vocab)?).unwrap_or(BITNET_TOKEN_NULL))
    })
}

/// Beginning-of-sequence token, BITNET_TOKEN_NULL if none (or vocab is NULL); likewise below.
#[no_mangle]
pub extern "C" fn bitnet_vocab_bos(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::bos)
}

/// End-of-sequence token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_eos(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::eos)
}

/// End-of-turn token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_eot(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::eot)
}

/// Separator token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_sep(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::sep)
}

/// Newline token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_nl(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::nl)
}

/// Padding token.
#[no_mangle]
pub extern "C" fn bitnet_vocab_pad(vocab: *const bitnet_vocab) -> bitnet_token {
    special(vocab, Vocab::pad)
}

/// Whether tokenizing with add_special prepends BOS. False if vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_add_bos(vocab: *const bitnet_vocab) -> bool {
    call(false, || Ok(vocab_ref(vocab)?.add_bos()))
}

/// Whether tokenizing with add_special appends EOS. False if vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_add_eos(vocab: *const bitnet_vocab) -> bool {
    call(false, || Ok(vocab_ref(vocab)?.add_eos()))
}

/// Whether `token` ends generation (EOS, EOT, EOM, ...). False for ids outside the vocabulary.
#[no_mangle]
pub extern "C" fn bitnet_vocab_is_eog(vocab: *const bitnet_vocab, token: bitnet_token) -> bool {
    call(false, || Ok(vocab_ref(vocab)?.is_eog(token)))
}

/// Whether `token` is a control token. False for ids outside the vocabulary.
#[no_mangle]
pub extern "C" fn bitnet_vocab_is_control(vocab: *const bitnet_vocab, token: bitnet_token) -> bool {
    call(false, || Ok(vocab_ref(vocab)?.is_control(token)))
}

/// The token's text as stored in the vocabulary (NUL-terminated, lives as long as the
/// model); NULL for an id outside the vocabulary.
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_text(
    vocab: *const bitnet_vocab,
    token: bitnet_token,
) -> *const c_char {
    call(std::ptr::null(), || {
        let v = borrow(vocab, "vocab")?;
        v.vocab().token_text(token)?; // range check with the vocab's own message
        let t = v.texts();
        Ok(t.bytes[t.starts[token as usize]..]
            .as_ptr()
            .cast::<c_char>())
    })
}

/// The token's score; 0.0 for an id outside the vocabulary (with an error message).
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_score(vocab: *const bitnet_vocab, token: bitnet_token) -> f32 {
    call(0.0, || vocab_ref(vocab)?.token_score(token))
}

/// The token's attribute flags (BITNET_TOKEN_ATTR_*); BITNET_TOKEN_ATTR_UNDEFINED for an id
/// outside the vocabulary (with an error message).
#[no_mangle]
pub extern "C" fn bitnet_vocab_get_attr(
    vocab: *const bitnet_vocab,
    token: bitnet_token,
) -> bitnet_token_attr {
    call(BITNET_TOKEN_ATTR_UNDEFINED, || {
        Ok(vocab_ref(vocab)?.token_attr(token)? as bitnet_token_attr)
    })
}

/// The tokenizer kind; BITNET_VOCAB_TYPE_NONE if vocab is NULL.
#[no_mangle]
pub extern "C" fn bitnet_vocab_type(vocab: *const bitnet_vocab) -> bitnet_vocab_type {
    call(bitnet_vocab_type::BITNET_VOCAB_TYPE_NONE, || {
        Ok(match vocab_ref(vocab)?.vocab_type() {
            VocabType::Spm => bitnet_vocab_type::BITNET_VOCAB_TYPE_SPM,
            VocabType::Bpe => bitnet_vocab_type::BITNET_VOCAB_TYPE_BPE,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::attr;

    #[test]
    fn attr_constants_are_the_vocab_bits() {
        for (c, r) in [
            (BITNET_TOKEN_ATTR_UNDEFINED, attr::UNDEFINED),
            (BITNET_TOKEN_ATTR_UNKNOWN, attr::UNKNOWN),
            (BITNET_TOKEN_ATTR_UNUSED, attr::UNUSED),
            (BITNET_TOKEN_ATTR_NORMAL, attr::NORMAL),
            (BITNET_TOKEN_ATTR_CONTROL, attr::CONTROL),
            (BITNET_TOKEN_ATTR_USER_DEFINED, attr::USER_DEFINED),
            (BITNET_TOKEN_ATTR_BYTE, attr::BYTE),
            (BITNET_TOKEN_ATTR_NORMALIZED, attr::NORMALIZED),
            (BITNET_TOKEN_ATTR_LSTRIP, attr::LSTRIP),
            (BITNET_TOKEN_ATTR_RSTRIP, attr::RSTRIP),
            (BITNET_TOKEN_ATTR_SINGLE_WORD, attr::SINGLE_WORD),
        ] {
            assert_eq!(c as u32, r);
        }
    }
}
