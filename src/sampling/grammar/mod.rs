//! GBNF grammars: parse ([`Grammar::parse`]), match text ([`Matcher`]) and constrain sampling
//! ([`GrammarSampler`], llama.cpp's `llama_sampler_init_grammar` and
//! `llama_sampler_init_grammar_lazy_patterns`).
//!
//! ```
//! use bitnet::sampling::grammar::Grammar;
//! let g = Grammar::parse("root ::= (\"yes\" | \"no\") \".\"", "root").unwrap();
//! assert!(g.accepts("yes."));
//! assert!(!g.accepts("maybe."));
//! ```
//!
//! Semantics follow llama.cpp (`src/llama-grammar.cpp`): the sampler sets the logit of every
//! candidate the grammar cannot continue with to -inf; end-of-generation tokens are allowed
//! only when the grammar is complete; a token is matched by its piece (the text
//! `token_to_piece(.., special = true)` gives), which may end inside a UTF-8 sequence.
//! See `docs/grammar.md`.

pub mod matcher;
pub mod parser;
pub mod regex;

use std::sync::Arc;

use self::matcher::{PartialUtf8, Rules, Stack, StateCache, TokenTable, DEAD};
use self::parser::ParsedGrammar;
use self::regex::Regex;
use super::candidates::TokenDataArray;
use super::Sampler;
use crate::vocab::Vocab;
use crate::{Error, Result};

pub use self::matcher::TokenTable as GrammarVocab;
pub use self::regex::trigger_words_pattern;

/// A parsed and checked grammar (immutable; share it with `Arc`).
#[derive(Debug, Clone)]
pub struct Grammar {
    parsed: ParsedGrammar,
    rules: Rules,
    root: usize,
    initial: Vec<Stack>,
}

impl Grammar {
    /// Parses GBNF text with `root` as the start rule. Token references must be `<[id]>`
    /// (use [`Grammar::parse_with_vocab`] for `<text>` references).
    pub fn parse(text: &str, root: &str) -> Result<Grammar> {
        Self::build(parser::parse(text, None)?, root)
    }

    /// As [`Grammar::parse`], resolving `<text>` token references (and checking `<[id]>`
    /// ranges) against `vocab`.
    pub fn parse_with_vocab(text: &str, root: &str, vocab: &Vocab) -> Result<Grammar> {
        Self::build(parser::parse(text, Some(vocab))?, root)
    }

    fn build(parsed: ParsedGrammar, root: &str) -> Result<Grammar> {
        let root_id = parsed.rule_id(root).ok_or_else(|| {
            Error::invalid_argument(format!("grammar has no rule named '{root}' (the root)"))
        })?;
        if let Some(r) = matcher::find_left_recursion(&parsed) {
            return Err(Error::invalid_argument(format!(
                "grammar is left-recursive at rule '{}' (it can reach itself without consuming \
                 input); rewrite it with repetition, e.g. `expr ::= term (\"+\" term)*`",
                parsed.names[r]
            )));
        }
        let rules = Rules::from_parsed(&parsed);
        let initial = matcher::initial_stacks(&rules, root_id)?;
        Ok(Grammar {
            parsed,
            rules,
            root: root_id,
            initial,
        })
    }

    /// The rules as parsed (generated rules included).
    pub fn parsed(&self) -> &ParsedGrammar {
        &self.parsed
    }

    /// The name of the root rule.
    pub fn root_name(&self) -> &str {
        &self.parsed.names[self.root]
    }

    /// A matcher at the start of the grammar.
    pub fn matcher(self: &Arc<Self>) -> Matcher {
        Matcher::new(self.clone())
    }

    /// Whether the whole string is in the grammar's language.
    pub fn accepts(&self, text: &str) -> bool {
        let mut m = Matcher::new(Arc::new(self.clone()));
        m.accept_bytes(text.as_bytes()).is_ok() && m.is_complete()
    }
}

/// Walks a grammar over text or tokens.
#[derive(Debug, Clone)]
pub struct Matcher {
    grammar: Arc<Grammar>,
    cache: StateCache,
    state: u32,
    partial: PartialUtf8,
}

impl Matcher {
    pub fn new(grammar: Arc<Grammar>) -> Matcher {
        let mut cache = StateCache::new();
        let state = cache.intern(grammar.initial.clone());
        Matcher {
            grammar,
            cache,
            state,
            partial: PartialUtf8::default(),
        }
    }

    pub fn grammar(&self) -> &Arc<Grammar> {
        &self.grammar
    }

    /// Back to the start.
    pub fn reset(&mut self) {
        self.cache.trim();
        self.state = self.cache.intern(self.grammar.initial.clone());
        self.partial = PartialUtf8::default();
    }

    /// The root rule is complete here (end of generation would be allowed).
    pub fn is_complete(&self) -> bool {
        self.partial.n_remain == 0 && self.cache.stacks(self.state).iter().any(|s| s.is_empty())
    }

    /// The stacks the grammar is in.
    pub fn stacks(&self) -> &[Stack] {
        self.cache.stacks(self.state)
    }

    /// Accepts UTF-8 bytes (which may end, or start, inside a code point). Errors, leaving the
    /// matcher unchanged, when the grammar cannot continue with them.
    pub fn accept_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let (cps, partial) = matcher::decode_utf8(bytes, self.partial).ok_or_else(|| {
            Error::invalid_argument(format!(
                "grammar: invalid UTF-8 in {:?}",
                String::from_utf8_lossy(bytes)
            ))
        })?;
        let char_state = self.char_only_state();
        let mut st = char_state;
        for &c in &cps {
            st = self.cache.step(&self.grammar.rules, st, c)?;
            if st == DEAD {
                return Err(Error::invalid_argument(format!(
                    "grammar does not allow {:?} here",
                    String::from_utf8_lossy(bytes)
                )));
            }
        }
        self.state = st;
        self.partial = partial;
        Ok(())
    }

    /// The current state without empty and token-topped stacks (what survives a code point;
    /// with zero code points consumed those are dropped too, as in the reference).
    fn char_only_state(&mut self) -> u32 {
        let rules = &self.grammar.rules;
        let stacks = self.cache.stacks(self.state);
        if stacks.iter().all(|s| {
            s.last()
                .is_some_and(|&p| rules.elems[p as usize].is_char_head())
        }) {
            return self.state;
        }
        let kept: Vec<Stack> = stacks
            .iter()
            .filter(|s| {
                s.last()
                    .is_some_and(|&p| rules.elems[p as usize].is_char_head())
            })
            .cloned()
            .collect();
        self.cache.intern(kept)
    }

    /// Accepts one token: its id (for token elements) and its piece. End-of-generation
    /// handling is the sampler's (see [`GrammarSampler`]).
    pub fn accept_token(&mut self, token: u32, piece: &[u8]) -> Result<()> {
        let rules = self.grammar.rules.clone();
        let stacks = self.cache.stacks(self.state).clone();
        let mut out: Vec<Stack> = Vec::new();
        for s in stacks.iter() {
            let Some(&top) = s.last() else { continue };
            match rules.elems[top as usize] {
                parser::Elem::Token(t) | parser::Elem::TokenNot(t) => {
                    let want = matches!(rules.elems[top as usize], parser::Elem::Token(_));
                    if (t == token) == want {
                        let mut n: Stack = s[..s.len() - 1].to_vec();
                        if !rules.elems[top as usize + 1].is_end_of_sequence() {
                            n.push(top + 1);
                        }
                        matcher::advance_stack(&rules, n, &mut out)?;
                    }
                }
                _ => {}
            }
        }
        let saved = (self.state, self.partial);
        let char_result = self.accept_bytes(piece);
        let char_stacks: Vec<Stack> = match char_result {
            Ok(()) => self.cache.stacks(self.state).to_vec(),
            Err(_) => Vec::new(),
        };
        (self.state, self.partial) = saved;
        let token_ok = !out.is_empty();
        if char_stacks.is_empty() && !token_ok {
            return Err(Error::invalid_argument(format!(
                "grammar does not allow token {token} ({:?}) here",
                String::from_utf8_lossy(piece)
            )));
        }
        let partial = matcher::decode_utf8(piece, self.partial).map_or(self.partial, |(_, p)| p);
        out.extend(char_stacks);
        self.state = self.cache.intern(out);
        self.partial = partial;
        Ok(())
    }

    /// After a token that ends inside a UTF-8 sequence: can some stack still take it?
    fn partial_ok(&self) -> bool {
        let rules = &self.grammar.rules;
        self.partial.n_remain == 0
            || self.stacks().iter().any(|s| {
                s.last().is_some_and(|&p| {
                    rules.elems[p as usize].is_char_head()
                        && matcher::match_partial_char(rules, p, self.partial)
                })
            })
    }

    /// Clears the caches if they grew too large (between tokens).
    fn trim(&mut self) {
        if self.cache.n_states() > 1 {
            let stacks = self.cache.stacks(self.state).to_vec();
            let before = self.cache.n_states();
            self.cache.trim();
            if self.cache.n_states() < before {
                self.state = self.cache.intern(stacks);
            }
        }
    }
}

/// A compiled trigger pattern.
#[derive(Debug, Clone)]
struct Trigger {
    regex: Regex,
}

/// The grammar sampler: `llama_sampler_init_grammar` / `_grammar_lazy_patterns`.
///
/// `apply` sets the logit of every candidate that cannot continue the grammar to -inf;
/// `accept` advances the grammar. A lazy sampler does nothing until a trigger token is
/// accepted or a trigger pattern matches the text generated so far; the grammar then starts
/// from the trigger (the token itself, or the text from the pattern's first capture group).
///
/// Errors during `accept` (a token the grammar does not allow, end of generation before the
/// grammar is complete) cannot be returned through [`Sampler::accept`]: the sampler records
/// the error ([`GrammarSampler::error`]), logs it, and from then on removes every candidate,
/// so the chain's `sample` fails instead of producing text outside the grammar.
#[derive(Debug)]
pub struct GrammarSampler {
    table: Arc<TokenTable>,
    matcher: Option<Matcher>,
    lazy: bool,
    awaiting: bool,
    trigger_tokens: Vec<i32>,
    triggers: Vec<Trigger>,
    buffer: Vec<u8>,
    buffer_tokens: Vec<(i32, usize, usize)>,
    error: Option<Error>,
}

impl GrammarSampler {
    /// `llama_sampler_init_grammar(vocab, text, root)`: an empty `text` gives a sampler that
    /// does nothing (as the reference).
    pub fn new(vocab: &Vocab, text: &str, root: &str) -> Result<GrammarSampler> {
        let table = TokenTable::shared(vocab)?;
        Self::with_table(table, vocab, text, root, false, &[], &[])
    }

    /// `llama_sampler_init_grammar_lazy_patterns`: constrained only after a trigger.
    pub fn new_lazy(
        vocab: &Vocab,
        text: &str,
        root: &str,
        trigger_patterns: &[&str],
        trigger_tokens: &[i32],
    ) -> Result<GrammarSampler> {
        let table = TokenTable::shared(vocab)?;
        Self::with_table(
            table,
            vocab,
            text,
            root,
            true,
            trigger_patterns,
            trigger_tokens,
        )
    }

    /// Builds from a shared [`GrammarVocab`] ([`GrammarVocab::shared`] or `from_vocab`; a
    /// server keeps one per model and passes it here).
    pub fn with_table(
        table: Arc<TokenTable>,
        vocab: &Vocab,
        text: &str,
        root: &str,
        lazy: bool,
        trigger_patterns: &[&str],
        trigger_tokens: &[i32],
    ) -> Result<GrammarSampler> {
        if table.n_vocab != vocab.n_tokens() {
            return Err(Error::invalid_argument(format!(
                "grammar: the token table has {} tokens, the vocabulary {}",
                table.n_vocab,
                vocab.n_tokens()
            )));
        }
        let matcher = if text.is_empty() {
            None
        } else {
            Some(Matcher::new(Arc::new(Grammar::parse_with_vocab(
                text, root, vocab,
            )?)))
        };
        Self::from_parts(table, matcher, lazy, trigger_patterns, trigger_tokens)
    }

    /// From an already parsed grammar (no vocabulary needed beyond the token table).
    pub fn from_grammar(
        table: Arc<TokenTable>,
        grammar: Arc<Grammar>,
        lazy: bool,
        trigger_patterns: &[&str],
        trigger_tokens: &[i32],
    ) -> Result<GrammarSampler> {
        Self::from_parts(
            table,
            Some(Matcher::new(grammar)),
            lazy,
            trigger_patterns,
            trigger_tokens,
        )
    }

    fn from_parts(
        table: Arc<TokenTable>,
        matcher: Option<Matcher>,
        lazy: bool,
        trigger_patterns: &[&str],
        trigger_tokens: &[i32],
    ) -> Result<GrammarSampler> {
        for &t in trigger_tokens {
            if t < 0 || t as usize >= table.n_vocab {
                return Err(Error::invalid_token(format!(
                    "grammar trigger token {t} is outside the vocabulary (0..{})",
                    table.n_vocab
                )));
            }
        }
        let triggers = trigger_patterns
            .iter()
            .map(|p| {
                Ok(Trigger {
                    regex: Regex::new(p)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GrammarSampler {
            table,
            matcher,
            lazy,
            awaiting: lazy,
            trigger_tokens: trigger_tokens.to_vec(),
            triggers,
            buffer: Vec::new(),
            buffer_tokens: Vec::new(),
            error: None,
        })
    }

    /// The error that stopped the sampler, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Still waiting for a trigger (lazy samplers only).
    pub fn is_awaiting_trigger(&self) -> bool {
        self.awaiting
    }

    /// The grammar is complete (end of generation allowed).
    pub fn is_complete(&self) -> bool {
        self.matcher.as_ref().is_none_or(|m| m.is_complete())
    }

    /// The matcher (None for the empty grammar).
    pub fn matcher(&self) -> Option<&Matcher> {
        self.matcher.as_ref()
    }

    /// Sets -inf on every candidate the grammar does not allow; errors only on internal limits.
    pub fn try_apply(&mut self, cur: &mut TokenDataArray) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let Some(m) = self.matcher.as_mut() else {
            return Ok(());
        };
        if self.awaiting {
            return Ok(());
        }
        let table = &self.table;
        let allow_eog = m.stacks().iter().any(|s| s.is_empty());
        if m.partial.n_remain == 0 {
            let mask = m.cache.mask(&m.grammar.rules, table, m.state)?;
            for t in cur.data.iter_mut() {
                let id = t.id as usize;
                let ok = if t.id < 0 || id >= table.n_vocab {
                    false
                } else if table.eog.get(id) {
                    allow_eog
                } else {
                    mask.get(id)
                };
                if !ok {
                    t.logit = f32::NEG_INFINITY;
                }
            }
        } else {
            // Inside a UTF-8 sequence (after a byte token): test each candidate on its own.
            for t in cur.data.iter_mut() {
                let id = t.id as usize;
                let ok = if t.id < 0 || id >= table.n_vocab {
                    false
                } else if table.eog.get(id) {
                    allow_eog
                } else {
                    let piece = &table.pieces[id];
                    if piece.is_empty() || piece[0] == 0 {
                        false
                    } else {
                        let mut probe = m.clone_light();
                        probe.accept_token(t.id as u32, piece).is_ok() && probe.partial_ok()
                    }
                };
                if !ok {
                    t.logit = f32::NEG_INFINITY;
                }
            }
        }
        Ok(())
    }

    /// Advances the grammar by one token (with llama.cpp's lazy-trigger handling).
    pub fn try_accept(&mut self, token: i32) -> Result<()> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.matcher.is_none() {
            return Ok(());
        }
        if token < 0 || token as usize >= self.table.n_vocab {
            return Err(Error::invalid_token(format!(
                "grammar: token {token} is outside the vocabulary (0..{})",
                self.table.n_vocab
            )));
        }
        let piece = self.table.pieces[token as usize].clone();
        if self.awaiting {
            if self.trigger_tokens.contains(&token) {
                self.awaiting = false;
                self.buffer.clear();
                self.buffer_tokens.clear();
                return self.accept_piece(token, &piece);
            }
            let start = self.buffer.len();
            self.buffer.extend_from_slice(&piece);
            self.buffer_tokens.push((token, start, self.buffer.len()));
            let found = self
                .triggers
                .iter()
                .find_map(|t| t.regex.trigger_start(&self.buffer));
            if let Some(at) = found {
                self.awaiting = false;
                let buffer = std::mem::take(&mut self.buffer);
                let toks = std::mem::take(&mut self.buffer_tokens);
                for (tok, a, b) in toks {
                    if b <= at {
                        continue;
                    }
                    let from = a.max(at);
                    self.accept_piece(tok, &buffer[from..b])?;
                }
            }
            return Ok(());
        }
        if self.table.eog.get(token as usize) {
            if self.is_complete() || self.matcher_stacks_have_empty() {
                return Ok(());
            }
            return Err(Error::invalid_argument(format!(
                "grammar: end of generation (token {token}) before the grammar is complete"
            )));
        }
        self.accept_piece(token, &piece)
    }

    fn matcher_stacks_have_empty(&self) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|m| m.stacks().iter().any(|s| s.is_empty()))
    }

    fn accept_piece(&mut self, token: i32, piece: &[u8]) -> Result<()> {
        if let Some(m) = self.matcher.as_mut() {
            m.accept_token(token as u32, piece)?;
            m.trim();
        }
        Ok(())
    }

    fn fail(&mut self, e: Error) {
        crate::log::log(crate::log::Level::Error, &format!("grammar sampler: {e}"));
        self.error = Some(e);
    }
}

impl Matcher {
    /// A copy sharing nothing mutable, with a fresh cache (for one-off probes).
    fn clone_light(&self) -> Matcher {
        let mut cache = StateCache::new();
        let state = cache.intern(self.stacks().to_vec());
        Matcher {
            grammar: self.grammar.clone(),
            cache,
            state,
            partial: self.partial,
        }
    }
}

impl Sampler for GrammarSampler {
    fn name(&self) -> &'static str {
        "grammar"
    }

    fn apply(&mut self, cur: &mut TokenDataArray) {
        if let Err(e) = self.try_apply(cur) {
            if self.error.is_none() {
                self.fail(e);
            }
            cur.data.clear();
            cur.selected = -1;
        }
    }

    fn accept(&mut self, token: i32) {
        if let Err(e) = self.try_accept(token) {
            if self.error.is_none() {
                self.fail(e);
            }
        }
    }

    fn reset(&mut self) {
        if let Some(m) = self.matcher.as_mut() {
            m.reset();
        }
        self.awaiting = self.lazy;
        self.buffer.clear();
        self.buffer_tokens.clear();
        self.error = None;
    }

    fn clone_box(&self) -> Box<dyn Sampler> {
        Box::new(GrammarSampler {
            table: self.table.clone(),
            matcher: self.matcher.as_ref().map(|m| m.clone_light()),
            lazy: self.lazy,
            awaiting: self.awaiting,
            trigger_tokens: self.trigger_tokens.clone(),
            triggers: self.triggers.clone(),
            buffer: self.buffer.clone(),
            buffer_tokens: self.buffer_tokens.clone(),
            error: self.error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_recursion_is_refused() {
        let e = Grammar::parse("root ::= root \"a\" | \"a\"", "root").unwrap_err();
        assert!(e.message().contains("left-recursive at rule 'root'"), "{e}");
        let e = Grammar::parse("root ::= x \"a\"\nx ::= y\ny ::= \"\" | root", "root").unwrap_err();
        assert!(e.message().contains("left-recursive"), "{e}");
        let e = Grammar::parse("root ::= \"a\"", "start").unwrap_err();
        assert!(e.message().contains("no rule named 'start'"), "{e}");
    }

    fn table(pieces: &[&str], eog: &[usize]) -> Arc<TokenTable> {
        let p: Vec<Box<[u8]>> = pieces
            .iter()
            .map(|s| s.as_bytes().to_vec().into_boxed_slice())
            .collect();
        let e: Vec<bool> = (0..pieces.len()).map(|i| eog.contains(&i)).collect();
        Arc::new(TokenTable::new(p, &e))
    }

    fn allowed(s: &mut GrammarSampler, n: usize) -> Vec<i32> {
        let mut cur = TokenDataArray::from_logits(&vec![0.0; n]);
        s.apply(&mut cur);
        cur.data
            .iter()
            .filter(|t| t.logit.is_finite())
            .map(|t| t.id)
            .collect()
    }

    #[test]
    fn sampler_masks_and_accepts() {
        let pieces = ["</s>", "a", "b", "ab", "{", "}", "\u{e9}", "\x7f", ""];
        let t = table(&pieces, &[0]);
        let g = Arc::new(Grammar::parse("root ::= \"a\"+ \"b\"?", "root").unwrap());
        let mut s = GrammarSampler::from_grammar(t, g, false, &[], &[]).unwrap();
        assert_eq!(allowed(&mut s, pieces.len()), vec![1, 3]);
        s.accept(1);
        assert_eq!(allowed(&mut s, pieces.len()), vec![0, 1, 2, 3]);
        s.accept(2);
        assert_eq!(allowed(&mut s, pieces.len()), vec![0]);
        s.accept(0);
        assert!(s.error().is_none());
        s.accept(1);
        assert!(s.error().is_some());
        assert!(allowed(&mut s, pieces.len()).is_empty());
        s.reset();
        assert_eq!(allowed(&mut s, pieces.len()), vec![1, 3]);
        // EOG before completion is an error.
        s.accept(0);
        assert!(s
            .error()
            .unwrap()
            .message()
            .contains("before the grammar is complete"));
    }

    #[test]
    fn partial_utf8_tokens() {
        // "é" = C3 A9 split over two byte tokens.
        let pieces: Vec<Box<[u8]>> = vec![
            b"x".to_vec().into(),
            vec![0xc3].into(),
            vec![0xa9].into(),
            vec![0xe2].into(),
        ];
        let t = Arc::new(TokenTable::new(pieces, &[false; 4]));
        let g = Arc::new(Grammar::parse("root ::= [\u{e0}-\u{ff}]+", "root").unwrap());
        let mut s = GrammarSampler::from_grammar(t, g, false, &[], &[]).unwrap();
        let allow = allowed(&mut s, 4);
        assert_eq!(
            allow,
            vec![1],
            "0xC3 can start é, 0xE2 cannot start U+00E0..U+00FF"
        );
        s.accept(1);
        assert_eq!(allowed(&mut s, 4), vec![2]);
        s.accept(2);
        assert!(s.is_complete());
    }

    #[test]
    fn lazy_trigger_patterns_and_tokens() {
        let pieces = ["</s>", "hi ", "<j>", "{", "}", "x", " {"];
        let t = table(&pieces, &[0]);
        let g = Arc::new(Grammar::parse("root ::= \"{\" \"}\"", "root").unwrap());
        let pat = trigger_words_pattern(&["{"]);
        let mut s = GrammarSampler::from_grammar(t.clone(), g.clone(), true, &[&pat], &[]).unwrap();
        assert_eq!(allowed(&mut s, pieces.len()).len(), pieces.len());
        s.accept(1);
        assert!(s.is_awaiting_trigger());
        s.accept(6); // " {" : the grammar starts at "{"
        assert!(!s.is_awaiting_trigger());
        assert_eq!(allowed(&mut s, pieces.len()), vec![4]);
        // Trigger token: grammar fed from the token itself.
        let g2 = Arc::new(Grammar::parse("root ::= <[2]> \"x\"", "root").unwrap());
        let mut s = GrammarSampler::from_grammar(t, g2, true, &[], &[2]).unwrap();
        s.accept(5);
        assert!(s.is_awaiting_trigger());
        s.accept(2);
        assert_eq!(allowed(&mut s, pieces.len()), vec![5]);
    }
}
