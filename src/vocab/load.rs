//! `Vocab::from_gguf`: reads `tokenizer.ggml.*`, checks it, and applies the reference's
//! defaults and fix-ups (`llm_load_vocab` in the fork's llama.cpp), in the reference's order:
//! model defaults, pre-tokenizer defaults, token list, newline token, special ids from keys,
//! add_bos/add_eos keys, special tokens found by text (made CONTROL), end-of-generation set,
//! piece cache, per-model attributes.

use super::hash::{map_with_capacity, FxHashMap};
use super::special::SpecialMatcher;
use super::{
    attr, bpe, spm, PreType, SpecialTokens, Token, TokenData, TokenType, Vocab, VocabType,
};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use std::collections::HashSet;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// Special tokens the reference finds by text when no key names them; each becomes CONTROL.
/// Matching is on the exact text; when several exist the first in the list wins (llama.cpp
/// takes whichever its hash map yields first).
const BY_TEXT: [(Slot, &[&str]); 8] = [
    (
        Slot::Eot,
        &[
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<EOT>",
            "<｜end▁of▁sentence｜>",
        ],
    ),
    (Slot::Eom, &["<|eom_id|>"]),
    (
        Slot::FimPre,
        &["<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"],
    ),
    (
        Slot::FimSuf,
        &["<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"],
    ),
    (
        Slot::FimMid,
        &["<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"],
    ),
    (Slot::FimPad, &["<|fim_pad|>", "<fim-pad>", "<PAD>"]),
    (
        Slot::FimRep,
        &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"],
    ),
    (Slot::FimSep, &["<|file_sep|>"]),
];

/// Texts that end generation (the reference's list); they become CONTROL too.
const EOG_TEXTS: [&str; 7] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

#[derive(Clone, Copy)]
enum Slot {
    Bos,
    Eos,
    Eot,
    Eom,
    Unk,
    Sep,
    Pad,
    Cls,
    Mask,
    FimPre,
    FimSuf,
    FimMid,
    FimPad,
    FimRep,
    FimSep,
}

/// Keys of special token ids, in the reference's order (later keys overwrite earlier ones:
/// the deprecated prefix/suffix/middle keys come last).
const ID_KEYS: [(&str, Slot); 18] = [
    ("tokenizer.ggml.bos_token_id", Slot::Bos),
    ("tokenizer.ggml.eos_token_id", Slot::Eos),
    ("tokenizer.ggml.eot_token_id", Slot::Eot),
    ("tokenizer.ggml.eom_token_id", Slot::Eom),
    ("tokenizer.ggml.unknown_token_id", Slot::Unk),
    ("tokenizer.ggml.seperator_token_id", Slot::Sep),
    ("tokenizer.ggml.padding_token_id", Slot::Pad),
    ("tokenizer.ggml.cls_token_id", Slot::Cls),
    ("tokenizer.ggml.mask_token_id", Slot::Mask),
    ("tokenizer.ggml.fim_pre_token_id", Slot::FimPre),
    ("tokenizer.ggml.fim_suf_token_id", Slot::FimSuf),
    ("tokenizer.ggml.fim_mid_token_id", Slot::FimMid),
    ("tokenizer.ggml.fim_pad_token_id", Slot::FimPad),
    ("tokenizer.ggml.fim_rep_token_id", Slot::FimRep),
    ("tokenizer.ggml.fim_sep_token_id", Slot::FimSep),
    ("tokenizer.ggml.prefix_token_id", Slot::FimPre),
    ("tokenizer.ggml.suffix_token_id", Slot::FimSuf),
    ("tokenizer.ggml.middle_token_id", Slot::FimMid),
];

impl SpecialTokens {
    fn slot(&mut self, s: Slot) -> &mut Option<Token> {
        match s {
            Slot::Bos => &mut self.bos,
            Slot::Eos => &mut self.eos,
            Slot::Eot => &mut self.eot,
            Slot::Eom => &mut self.eom,
            Slot::Unk => &mut self.unk,
            Slot::Sep => &mut self.sep,
            Slot::Pad => &mut self.pad,
            Slot::Cls => &mut self.cls,
            Slot::Mask => &mut self.mask,
            Slot::FimPre => &mut self.fim_pre,
            Slot::FimSuf => &mut self.fim_suf,
            Slot::FimMid => &mut self.fim_mid,
            Slot::FimPad => &mut self.fim_pad,
            Slot::FimRep => &mut self.fim_rep,
            Slot::FimSep => &mut self.fim_sep,
        }
    }
}

/// Per-model settings before the token list is read.
struct Defaults {
    kind: VocabType,
    pre: PreType,
    special: SpecialTokens,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    ignore_merges: bool,
}

fn defaults(f: &GgufFile) -> Result<Defaults> {
    let model = f.get_str(KEY_MODEL)?;
    let mut d = Defaults {
        kind: VocabType::Spm,
        pre: PreType::Default,
        special: SpecialTokens::default(),
        add_bos: false,
        add_eos: false,
        add_space_prefix: true,
        clean_spaces: false,
        ignore_merges: false,
    };
    match model {
        "llama" => {
            d.special.bos = Some(1);
            d.special.eos = Some(2);
            d.special.unk = Some(0);
            d.add_bos = true;
        }
        "gpt2" => {
            d.kind = VocabType::Bpe;
            d.special.bos = Some(11);
            d.special.eos = Some(11);
            d.add_space_prefix = false;
            d.clean_spaces = true;
            let name = if present(f, KEY_PRE) {
                f.get_str(KEY_PRE)?
            } else {
                ""
            };
            d.pre = match name {
                "" | "default" => PreType::Default,
                "llama3" | "llama-v3" | "llama-bpe" => {
                    d.ignore_merges = true;
                    d.add_bos = true;
                    PreType::Llama3
                }
                "falcon" => PreType::Falcon,
                // These all use the GPT-2 regex in the reference.
                "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "jina-v1-en" | "jina-v2-es"
                | "jina-v2-de" | "jina-v2-code" | "mpt" | "olmo" | "jais" => PreType::Gpt2,
                other => {
                    return Err(Error::unsupported(format!(
                        "{KEY_PRE} = {other:?}: unsupported pre-tokenizer (supported: \
                         \"llama-bpe\"/\"llama3\"/\"llama-v3\", \"gpt-2\" and its aliases, \
                         \"falcon\", \"default\")"
                    )))
                }
            };
        }
        other => {
            return Err(Error::unsupported(format!(
                "{KEY_MODEL} = {other:?}: unknown or unsupported tokenizer model \
                 (supported: \"llama\" (SPM), \"gpt2\" (BPE))"
            )))
        }
    }
    if present(f, "tokenizer.ggml.add_space_prefix") {
        d.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix")?;
    }
    Ok(d)
}

impl Vocab {
    /// Loads the vocabulary from a GGUF file's metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Vocab> {
        let d = defaults(f)?;
        let (kind, mut special) = (d.kind, d.special);

        let texts = f.get_str_array(KEY_TOKENS)?;
        let n = texts.len();
        if n == 0 {
            return Err(Error::metadata(format!("{KEY_TOKENS}: empty array")));
        }
        if n > i32::MAX as usize {
            return Err(Error::metadata(format!(
                "{KEY_TOKENS}: {n} tokens is too many"
            )));
        }
        let scores = present(f, KEY_SCORES)
            .then(|| f.get_f32_array(KEY_SCORES))
            .transpose()?;
        if let Some(s) = scores {
            check_len(KEY_SCORES, s.len(), n)?;
        }
        let types = present(f, KEY_TYPES)
            .then(|| f.get_i32_array(KEY_TYPES))
            .transpose()?;
        if let Some(t) = types {
            check_len(KEY_TYPES, t.len(), n)?;
            // llama_token_type has the values 0 (undefined) ..= 6 (byte); anything else is a
            // corrupt or foreign file, not a type to guess at.
            if let Some((i, &v)) = t.iter().enumerate().find(|(_, &v)| !(0..=6).contains(&v)) {
                return Err(Error::metadata(format!(
                    "{KEY_TYPES}: token {i} has type {v}, not a token type (0..=6: undefined, \
                     normal, unknown, control, user-defined, unused, byte)"
                )));
            }
        }
        let tokens: Vec<TokenData> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let ty = types.map_or(TokenType::Normal, |t| TokenType::from_i32(t[i]));
                TokenData {
                    // The reference names empty tokens so that every text is distinct.
                    text: if text.is_empty() {
                        format!("[EMPTY_{i}]")
                    } else {
                        text.clone()
                    },
                    score: scores.map_or(0.0, |s| s[i]),
                    ty,
                    attr: ty.attr(),
                }
            })
            .collect();
        let mut token_to_id: FxHashMap<Box<[u8]>, Token> = map_with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            if let Some(first) = token_to_id.insert(t.text.as_bytes().into(), i as Token) {
                // The reference asserts that texts are unique.
                return Err(Error::metadata(format!(
                    "{KEY_TOKENS}: text {:?} appears twice (ids {first} and {i})",
                    t.text
                )));
            }
        }
        let bpe = match kind {
            VocabType::Bpe => {
                let merges = f.get_str_array(KEY_MERGES).map_err(|e| {
                    e.context("a \"gpt2\" (BPE) vocabulary needs tokenizer.ggml.merges")
                })?;
                let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
                Some(bpe::BpeTables::new(&texts, &token_to_id, merges)?)
            }
            VocabType::Spm => None,
        };
        let spm = match kind {
            VocabType::Spm => {
                let texts: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
                spm::SpmTables::new(&texts, tokens.iter().map(|t| t.score))
            }
            VocabType::Bpe => spm::SpmTables::default(),
        };
        // Defaults that name a token the vocab does not have are dropped.
        for s in [&mut special.bos, &mut special.eos, &mut special.unk] {
            *s = s.filter(|&id| (id as usize) < n);
        }
        let byte_tokens = std::array::from_fn(|b| {
            let hex = format!("<0x{b:02X}>");
            token_to_id
                .get(hex.as_bytes())
                .or_else(|| token_to_id.get(&[b as u8][..]))
                .copied()
        });

        let mut vocab = Vocab {
            kind,
            pre: d.pre,
            tokens,
            token_to_id,
            special,
            eog: HashSet::new(),
            add_bos: d.add_bos,
            add_eos: d.add_eos,
            add_space_prefix: d.add_space_prefix,
            clean_spaces: d.clean_spaces,
            ignore_merges: d.ignore_merges,
            // Empty until the attributes are final; the newline lookup below runs without
            // special tokens, as in the reference.
            special_matcher: SpecialMatcher::new(std::iter::empty()),
            bpe,
            spm,
            pieces: Vec::new(),
            byte_tokens,
        };
        vocab.special.nl = match kind {
            VocabType::Spm => vocab.byte_tokens[b'\n' as usize],
            // The reference tokenizes U+010A ("Ċ", the byte-level newline) as text.
            VocabType::Bpe => vocab.tokenize("\u{010A}", false, false)?.first().copied(),
        };

        for (key, slot) in ID_KEYS {
            if present(f, key) {
                let id = f.get_u32(key)?;
                if id as usize >= n {
                    return Err(Error::metadata(format!(
                        "{key} = {id}: out of range for a vocabulary of {n} tokens"
                    )));
                }
                *vocab.special.slot(slot) = Some(id as Token);
            }
        }
        if present(f, "tokenizer.ggml.add_bos_token") {
            vocab.add_bos = f.get_bool("tokenizer.ggml.add_bos_token")?;
        }
        if present(f, "tokenizer.ggml.add_eos_token") {
            vocab.add_eos = f.get_bool("tokenizer.ggml.add_eos_token")?;
        }

        vocab.find_special_by_text();
        vocab.special_matcher = SpecialMatcher::new(
            vocab
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (i as Token, t.text.as_str(), t.attr)),
        );
        vocab.pieces = vocab.render_pieces();
        vocab.apply_model_attrs(f)?;
        Ok(vocab)
    }

    /// EOT, EOM and FIM tokens by text, then the end-of-generation set.
    fn find_special_by_text(&mut self) {
        for (slot, texts) in BY_TEXT {
            if self.special.slot(slot).is_some() {
                continue;
            }
            if let Some(id) = texts.iter().find_map(|t| self.token_id(t)) {
                *self.special.slot(slot) = Some(id);
                make_control(&mut self.tokens[id as usize]);
            }
        }
        let mut eog: HashSet<Token> = [
            self.special.fim_pad,
            self.special.fim_rep,
            self.special.fim_sep,
        ]
        .into_iter()
        .flatten()
        .collect();
        for t in EOG_TEXTS {
            if let Some(id) = self.token_id(t) {
                eog.insert(id);
                make_control(&mut self.tokens[id as usize]);
            }
        }
        eog.extend(
            [self.special.eos, self.special.eot, self.special.eom]
                .into_iter()
                .flatten(),
        );
        self.eog = eog;
    }

    /// The reference's per-model token attributes (set after the piece cache, and they only
    /// change how special tokens eat neighbouring spaces).
    fn apply_model_attrs(&mut self, f: &GgufFile) -> Result<()> {
        let name = if present(f, "general.name") {
            f.get_str("general.name")?.to_lowercase()
        } else {
            String::new()
        };
        let pre = if present(f, KEY_PRE) {
            f.get_str(KEY_PRE)?
        } else {
            ""
        };
        let mut changed = false;
        if ["jina-v2-de", "jina-v2-es", "jina-v2-code"]
            .iter()
            .any(|p| pre.contains(p))
        {
            if let Some(id) = self.token_id("<mask>") {
                self.tokens[id as usize].attr |= attr::LSTRIP;
                changed = true;
            }
        } else if name.contains("phi-3") || name.contains("phi3") {
            for t in &mut self.tokens {
                if t.attr & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0 {
                    t.attr |= attr::RSTRIP;
                }
            }
            if let Some(id) = self.token_id("</s>") {
                self.tokens[id as usize].attr |= attr::RSTRIP;
            }
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = self.token_id(t) {
                    self.tokens[id as usize].attr &= !attr::RSTRIP;
                }
            }
            changed = true;
        }
        if changed {
            self.special_matcher = SpecialMatcher::new(
                self.tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i as Token, t.text.as_str(), t.attr)),
            );
        }
        Ok(())
    }
}

/// The reference turns special-looking tokens into CONTROL tokens (replacing their
/// attributes) unless they already are.
fn make_control(t: &mut TokenData) {
    if t.attr & attr::CONTROL == 0 {
        t.attr = attr::CONTROL;
    }
}

fn check_len(key: &str, got: usize, n: usize) -> Result<()> {
    if got != n {
        return Err(Error::metadata(format!(
            "{key}: {got} entries, but {KEY_TOKENS} has {n}"
        )));
    }
    Ok(())
}

fn present(f: &GgufFile, key: &str) -> bool {
    f.get(key).is_some()
}
