//! `Vocab::from_gguf`: reads `tokenizer.ggml.*`, checks it, and applies the reference's
//! defaults and fix-ups (`llm_load_vocab` in the fork's llama.cpp).

use super::hash::{map_with_capacity, FxHashMap};
use super::special::SpecialMatcher;
use super::{attr, bpe, PreType, SpecialTokens, Token, TokenData, TokenType, Vocab, VocabType};
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use std::collections::HashSet;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// Texts the reference takes as end-of-turn when no `eot_token_id` is given.
const EOT_TEXTS: [&str; 7] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "<｜end▁of▁sentence｜>",
];

/// Texts that end generation (the reference's list, matched on token text).
const EOG_TEXTS: [&str; 7] = [
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
];

impl Vocab {
    /// Loads the vocabulary from a GGUF file's metadata.
    pub fn from_gguf(f: &GgufFile) -> Result<Vocab> {
        let model = f.get_str(KEY_MODEL)?;
        let kind = match model {
            "llama" => VocabType::Spm,
            "gpt2" => VocabType::Bpe,
            other => {
                return Err(Error::unsupported(format!(
                    "{KEY_MODEL} = {other:?}: unknown or unsupported tokenizer model \
                     (supported: \"llama\" (SPM), \"gpt2\" (BPE))"
                )))
            }
        };
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
        }
        let mut tokens: Vec<TokenData> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let ty = types.map_or(TokenType::Normal, |t| TokenType::from_i32(t[i]));
                TokenData {
                    text: text.clone(),
                    score: scores.map_or(0.0, |s| s[i]),
                    ty,
                    attr: ty.attr(),
                }
            })
            .collect();
        let mut token_to_id: FxHashMap<Box<[u8]>, Token> = map_with_capacity(n);
        for (i, t) in tokens.iter().enumerate() {
            token_to_id.insert(t.text.as_bytes().into(), i as Token); // last wins
        }

        // Per-model defaults, then the pre-tokenizer's, then explicit keys.
        let mut special = SpecialTokens::default();
        let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces);
        let mut ignore_merges = false;
        let pre;
        let in_range = |id: Token| (id as usize) < n;
        match kind {
            VocabType::Spm => {
                special.bos = Some(1).filter(|&i| in_range(i));
                special.eos = Some(2).filter(|&i| in_range(i));
                special.unk = Some(0);
                pre = PreType::Default;
                add_space_prefix = true;
                clean_spaces = false;
                add_bos = true;
                add_eos = false;
            }
            VocabType::Bpe => {
                special.bos = Some(11).filter(|&i| in_range(i));
                special.eos = Some(11).filter(|&i| in_range(i));
                add_space_prefix = false;
                clean_spaces = true;
                add_bos = false;
                add_eos = false;
                let name = if present(f, KEY_PRE) {
                    f.get_str(KEY_PRE)?
                } else {
                    ""
                };
                pre = match name {
                    "" | "default" => PreType::Default,
                    "llama3" | "llama-v3" | "llama-bpe" => {
                        ignore_merges = true;
                        add_bos = true;
                        PreType::Llama3
                    }
                    "gpt-2" => PreType::Gpt2,
                    "falcon" => PreType::Falcon,
                    other => {
                        return Err(Error::unsupported(format!(
                            "{KEY_PRE} = {other:?}: unsupported pre-tokenizer (supported: \
                             \"llama-bpe\"/\"llama3\"/\"llama-v3\", \"gpt-2\", \"falcon\", \
                             \"default\")"
                        )))
                    }
                };
            }
        }
        if let Some(v) = f.opt("tokenizer.ggml.add_space_prefix", GgufFile::get_bool)? {
            add_space_prefix = v;
        }
        for (key, slot) in [
            ("tokenizer.ggml.bos_token_id", &mut special.bos),
            ("tokenizer.ggml.eos_token_id", &mut special.eos),
            ("tokenizer.ggml.eot_token_id", &mut special.eot),
            ("tokenizer.ggml.eom_token_id", &mut special.eom),
            ("tokenizer.ggml.unknown_token_id", &mut special.unk),
            ("tokenizer.ggml.seperator_token_id", &mut special.sep),
            ("tokenizer.ggml.padding_token_id", &mut special.pad),
            ("tokenizer.ggml.cls_token_id", &mut special.cls),
            ("tokenizer.ggml.mask_token_id", &mut special.mask),
        ] {
            if let Some(id) = f.opt(key, GgufFile::get_u32)? {
                if id as usize >= n {
                    return Err(Error::metadata(format!(
                        "{key} = {id}: out of range for a vocabulary of {n} tokens"
                    )));
                }
                *slot = Some(id as Token);
            }
        }
        if let Some(v) = f.opt("tokenizer.ggml.add_bos_token", GgufFile::get_bool)? {
            add_bos = v;
        }
        if let Some(v) = f.opt("tokenizer.ggml.add_eos_token", GgufFile::get_bool)? {
            add_eos = v;
        }
        // SPM's unknown token default (0) is only kept if it exists.
        special.unk = special.unk.filter(|&i| in_range(i));

        let bpe = match kind {
            VocabType::Bpe => {
                let merges = f.get_str_array(KEY_MERGES).map_err(|e| {
                    e.context("a \"gpt2\" (BPE) vocabulary needs tokenizer.ggml.merges")
                })?;
                Some(bpe::BpeTables::new(texts, &token_to_id, merges)?)
            }
            VocabType::Spm => None,
        };

        // End-of-generation tokens by text; the reference makes them CONTROL.
        let by_text = |t: &str| token_to_id.get(t.as_bytes()).copied();
        if special.eot.is_none() {
            special.eot = EOT_TEXTS.iter().find_map(|t| by_text(t));
            if let Some(id) = special.eot {
                make_control(&mut tokens[id as usize]);
            }
        }
        if special.eom.is_none() {
            special.eom = by_text("<|eom_id|>");
            if let Some(id) = special.eom {
                make_control(&mut tokens[id as usize]);
            }
        }
        let mut eog = HashSet::new();
        for t in EOG_TEXTS {
            if let Some(id) = by_text(t) {
                eog.insert(id);
                make_control(&mut tokens[id as usize]);
            }
        }
        eog.extend(
            [special.eos, special.eot, special.eom]
                .into_iter()
                .flatten(),
        );

        let special_matcher = SpecialMatcher::new(
            tokens
                .iter()
                .enumerate()
                .map(|(i, t)| (i as Token, t.text.as_str(), t.attr)),
        );

        let mut vocab = Vocab {
            kind,
            pre,
            tokens,
            token_to_id,
            special,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            ignore_merges,
            special_matcher,
            bpe,
        };
        vocab.special.nl = match kind {
            VocabType::Spm => vocab.byte_to_token(b'\n').ok().filter(|_| {
                // byte_to_token falls back to UNK; the reference would fail instead.
                vocab.token_id("<0x0A>").is_some() || vocab.token_id("\n").is_some()
            }),
            // The reference tokenizes U+010A ("Ċ", the byte-level newline) as text.
            VocabType::Bpe => vocab
                .tokenize("\u{010A}", false, false)
                .ok()
                .and_then(|v| v.first().copied()),
        };
        Ok(vocab)
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

/// The reference turns end-of-generation tokens into CONTROL tokens (replacing their
/// attributes) unless they already are.
fn make_control(t: &mut TokenData) {
    if t.attr & attr::CONTROL == 0 {
        t.attr = attr::CONTROL;
    }
}

fn present(f: &GgufFile, key: &str) -> bool {
    f.get(key).is_some()
}
