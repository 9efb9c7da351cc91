//! GBNF text → rules, with the syntax of llama.cpp's `grammars/README.md`.
//!
//! A grammar is a list of rules `name ::= alternatives`. Each rule is stored the way llama.cpp's
//! matcher walks it: a flat list of [`Elem`]s, alternatives separated by [`Elem::Alt`] and the
//! rule closed by [`Elem::End`]. A character class is one positive ([`Elem::Char`]) or negated
//! ([`Elem::CharNot`]) head element followed by [`Elem::CharAlt`] / [`Elem::CharRngUpper`]
//! elements; a literal string is one single-character class per character. Groups and
//! repetitions become generated rules named `<rule>_<n>`:
//!
//! - `S{m,n}` → `S` written m times, then `S'(n-m)` where `S'(1) ::= S |` and
//!   `S'(k) ::= S S'(k-1) |`;
//! - `S{m,}` → `S` m times then `S' ::= S S' |`; `*` = `{0,}`, `+` = `{1,}`, `?` = `{0,1}`.
//!
//! Limits (llama.cpp's, so a grammar cannot explode into millions of rules): a minimum count
//! above 2000 is an error, a maximum above 2000 counts as unbounded, and a repetition whose
//! generated rules (count times the rules of the repeated item) would exceed 2000 is an error.
//! Errors name the line and column (1-based, columns in characters).

use crate::vocab::Vocab;
use crate::{Error, Result};

/// Repetition counts beyond this are refused (minimum) or treated as unbounded (maximum).
pub const MAX_REPETITION: u64 = 2000;

/// One element of a rule (llama.cpp's `llama_grammar_element`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Elem {
    /// End of the rule.
    End,
    /// Start of another alternative of the same rule.
    Alt,
    /// A reference to rule `n`.
    RuleRef(u32),
    /// A positive class: matches this code point (or range / alternatives that follow).
    Char(u32),
    /// A negated class: matches any code point except this one (and those that follow).
    CharNot(u32),
    /// Upper bound of an inclusive range whose lower bound is the element before.
    CharRngUpper(u32),
    /// Another code point (or range start) of the class started before.
    CharAlt(u32),
    /// Any code point (`.`).
    CharAny,
    /// Exactly this token id (`<[id]>` or `<text>`).
    Token(u32),
    /// Any token but this id (`!<[id]>`).
    TokenNot(u32),
}

impl Elem {
    /// End of one alternative (End or Alt).
    pub fn is_end_of_sequence(self) -> bool {
        matches!(self, Elem::End | Elem::Alt)
    }
    /// The head of a character class (where a stack may stop).
    pub fn is_char_head(self) -> bool {
        matches!(self, Elem::Char(_) | Elem::CharNot(_) | Elem::CharAny)
    }
}

/// A parsed grammar: rules by id and their names (generated rules are `<rule>_<id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedGrammar {
    /// `rules[id]`: the elements of rule `id`, ending in [`Elem::End`].
    pub rules: Vec<Vec<Elem>>,
    /// `names[id]`: the rule's name.
    pub names: Vec<String>,
}

impl ParsedGrammar {
    /// The id of the rule with this name.
    pub fn rule_id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The grammar written back as GBNF (one line per rule, generated rules included). Used
    /// in messages and tests; parsing the output gives the same language.
    pub fn to_gbnf(&self) -> String {
        let mut out = String::new();
        for (id, rule) in self.rules.iter().enumerate() {
            out.push_str(&self.names[id]);
            out.push_str(" ::=");
            let mut i = 0;
            while i < rule.len() {
                match rule[i] {
                    Elem::End => break,
                    Elem::Alt => out.push_str(" |"),
                    Elem::RuleRef(r) => {
                        out.push(' ');
                        out.push_str(&self.names[r as usize]);
                    }
                    Elem::Token(t) => out.push_str(&format!(" <[{t}]>")),
                    Elem::TokenNot(t) => out.push_str(&format!(" !<[{t}]>")),
                    Elem::CharAny => out.push_str(" ."),
                    Elem::Char(_) | Elem::CharNot(_) => {
                        out.push_str(if matches!(rule[i], Elem::CharNot(_)) {
                            " [^"
                        } else {
                            " ["
                        });
                        while let Elem::Char(c) | Elem::CharNot(c) | Elem::CharAlt(c) = rule[i] {
                            push_class_char(&mut out, c);
                            i += 1;
                            if let Some(Elem::CharRngUpper(u)) = rule.get(i) {
                                out.push('-');
                                push_class_char(&mut out, *u);
                                i += 1;
                            }
                            if !matches!(rule.get(i), Some(Elem::CharAlt(_))) {
                                break;
                            }
                        }
                        out.push(']');
                        continue;
                    }
                    Elem::CharAlt(_) | Elem::CharRngUpper(_) => {}
                }
                i += 1;
            }
            out.push('\n');
        }
        out
    }
}

fn push_class_char(out: &mut String, c: u32) {
    match char::from_u32(c) {
        Some(ch @ ('\\' | ']' | '[' | '-' | '^' | '"')) => {
            out.push('\\');
            out.push(ch);
        }
        Some(ch) if (c >= 0x20 && c != 0x7f) => out.push(ch),
        _ => out.push_str(&format!("\\U{c:08X}")),
    }
}

/// Parses GBNF. `vocab` is needed only for `<text>` token references (`<[id]>` works without).
pub fn parse(text: &str, vocab: Option<&Vocab>) -> Result<ParsedGrammar> {
    let mut p = Parser {
        src: text.as_bytes(),
        pos: 0,
        vocab,
        names: Vec::new(),
        rules: Vec::new(),
    };
    p.parse_all()?;
    Ok(ParsedGrammar {
        rules: p.rules.into_iter().map(|r| r.unwrap_or_default()).collect(),
        names: p.names,
    })
}

struct Parser<'a> {
    src: &'a [u8],
    pos: usize,
    vocab: Option<&'a Vocab>,
    names: Vec<String>,
    rules: Vec<Option<Vec<Elem>>>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> u8 {
        self.src.get(self.pos).copied().unwrap_or(0)
    }
    fn peek_at(&self, k: usize) -> u8 {
        self.src.get(self.pos + k).copied().unwrap_or(0)
    }
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    /// An error at byte offset `at`, with 1-based line and column (in characters).
    fn err_at(&self, at: usize, what: impl std::fmt::Display) -> Error {
        let at = at.min(self.src.len());
        let before = &self.src[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&self.src[line_start..at])
            .chars()
            .count()
            + 1;
        let line_end = self.src[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.src.len(), |i| at + i);
        let line_text = String::from_utf8_lossy(&self.src[line_start..line_end]);
        Error::invalid_argument(format!(
            "grammar parse error at line {line}, column {col}: {what} (line: \"{}\")",
            line_text.trim_end_matches('\r')
        ))
    }
    fn err(&self, what: impl std::fmt::Display) -> Error {
        self.err_at(self.pos, what)
    }

    fn skip_space(&mut self, newline_ok: bool) {
        loop {
            match self.peek() {
                b' ' | b'\t' => self.pos += 1,
                b'\r' | b'\n' if newline_ok => self.pos += 1,
                b'#' if !self.at_end() => {
                    while !self.at_end() && self.peek() != b'\r' && self.peek() != b'\n' {
                        self.pos += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn symbol_id(&mut self, name: &str) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i as u32;
        }
        self.names.push(name.to_string());
        self.rules.push(None);
        (self.names.len() - 1) as u32
    }

    fn generate_symbol_id(&mut self, base: &str) -> u32 {
        let id = self.names.len();
        self.names.push(format!("{base}_{id}"));
        self.rules.push(None);
        id as u32
    }

    fn parse_name(&mut self) -> Result<&'a str> {
        let start = self.pos;
        while is_word_byte(self.peek()) && !self.at_end() {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expecting a rule name"));
        }
        // Word bytes are ASCII, so this slice is valid UTF-8.
        Ok(std::str::from_utf8(&self.src[start..self.pos]).unwrap_or(""))
    }

    fn parse_int(&mut self) -> Result<u64> {
        let start = self.pos;
        while self.peek().is_ascii_digit() && !self.at_end() {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err("expecting an integer"));
        }
        let s = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("");
        s.parse::<u64>()
            .map_err(|_| self.err_at(start, format!("integer {s} is too large")))
    }

    fn parse_hex(&mut self, n: usize) -> Result<u32> {
        let start = self.pos;
        let mut v: u32 = 0;
        for _ in 0..n {
            let d = match self.peek() {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                c @ b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.err_at(start, format!("expecting {n} hex digits"))),
            };
            v = (v << 4) | d as u32;
            self.pos += 1;
        }
        Ok(v)
    }

    /// One character of a literal or class: an escape or one UTF-8 code point.
    fn parse_char(&mut self) -> Result<u32> {
        if self.at_end() {
            return Err(self.err("unexpected end of input"));
        }
        let b = self.peek();
        if b == b'\\' {
            let esc = self.peek_at(1);
            let start = self.pos;
            self.pos += 2;
            return match esc {
                b'x' => self.parse_hex(2),
                b'u' => self.parse_hex(4),
                b'U' => self.parse_hex(8),
                b't' => Ok('\t' as u32),
                b'r' => Ok('\r' as u32),
                b'n' => Ok('\n' as u32),
                b'\\' | b'"' | b'[' | b']' | b'-' => Ok(esc as u32),
                _ => Err(self.err_at(start, "unknown escape")),
            };
        }
        // One UTF-8 code point; the input is a &str, so it is valid.
        let rest = std::str::from_utf8(&self.src[self.pos..]).unwrap_or("");
        match rest.chars().next() {
            Some(c) => {
                self.pos += c.len_utf8();
                Ok(c as u32)
            }
            None => Err(self.err("invalid UTF-8")),
        }
    }

    fn parse_token(&mut self) -> Result<u32> {
        let start = self.pos;
        if self.peek() != b'<' {
            return Err(self.err("expecting '<'"));
        }
        self.pos += 1;
        if self.peek() == b'[' {
            self.pos += 1;
            let id = self.parse_int()?;
            if self.peek() != b']' {
                return Err(self.err("expecting ']'"));
            }
            self.pos += 1;
            if self.peek() != b'>' {
                return Err(self.err("expecting '>'"));
            }
            self.pos += 1;
            let id = u32::try_from(id).map_err(|_| self.err_at(start, "token id too large"))?;
            if let Some(v) = self.vocab {
                if id as usize >= v.n_tokens() {
                    return Err(self.err_at(
                        start,
                        format!(
                            "token id {id} is outside the vocabulary (0..{})",
                            v.n_tokens()
                        ),
                    ));
                }
            }
            return Ok(id);
        }
        while !self.at_end() && self.peek() != b'>' {
            self.pos += 1;
        }
        if self.peek() != b'>' {
            return Err(self.err("expecting '>'"));
        }
        self.pos += 1;
        let text = &self.src[start..self.pos];
        let vocab = self.vocab.ok_or_else(|| {
            self.err_at(
                start,
                "a token given by text needs a vocabulary (use <[id]>)",
            )
        })?;
        let toks = vocab.tokenize(text, false, true)?;
        if toks.len() != 1 {
            return Err(self.err_at(
                start,
                format!(
                    "token '{}' is not exactly one token of the vocabulary ({} tokens)",
                    String::from_utf8_lossy(text),
                    toks.len()
                ),
            ));
        }
        Ok(toks[0] as u32)
    }

    fn parse_all(&mut self) -> Result<()> {
        self.skip_space(true);
        while !self.at_end() {
            self.parse_rule()?;
        }
        if self.names.is_empty() {
            return Err(self.err("the grammar has no rules"));
        }
        // Every referenced rule must be defined.
        for (i, r) in self.rules.iter().enumerate() {
            if r.is_none() {
                return Err(Error::invalid_argument(format!(
                    "grammar error: rule '{}' is used but never defined",
                    self.names[i]
                )));
            }
        }
        Ok(())
    }

    fn parse_rule(&mut self) -> Result<()> {
        let name_start = self.pos;
        let name = self.parse_name()?;
        self.skip_space(false);
        let id = self.symbol_id(name);
        if self.rules[id as usize].is_some() {
            return Err(self.err_at(name_start, format!("rule '{name}' is defined twice")));
        }
        if !self.src[self.pos..].starts_with(b"::=") {
            return Err(self.err("expecting ::="));
        }
        self.pos += 3;
        self.skip_space(true);
        self.parse_alternates(name, id, false)?;
        match self.peek() {
            b'\r' => {
                self.pos += if self.peek_at(1) == b'\n' { 2 } else { 1 };
            }
            b'\n' => self.pos += 1,
            _ if self.at_end() => {}
            _ => return Err(self.err("expecting newline or end of rule")),
        }
        self.skip_space(true);
        Ok(())
    }

    fn parse_alternates(&mut self, rule_name: &str, rule_id: u32, nested: bool) -> Result<()> {
        let mut rule = Vec::new();
        self.parse_sequence(rule_name, &mut rule, nested)?;
        while self.peek() == b'|' && !self.at_end() {
            rule.push(Elem::Alt);
            self.pos += 1;
            self.skip_space(true);
            self.parse_sequence(rule_name, &mut rule, nested)?;
        }
        rule.push(Elem::End);
        self.rules[rule_id as usize] = Some(rule);
        Ok(())
    }

    fn parse_sequence(
        &mut self,
        rule_name: &str,
        rule: &mut Vec<Elem>,
        nested: bool,
    ) -> Result<()> {
        let mut last_sym_start = rule.len();
        // How many rules the last item stands for (a group's generated rules count).
        let mut n_prev_rules: u64 = 1;
        while !self.at_end() {
            let c = self.peek();
            let item_start = self.pos;
            match c {
                b'"' => {
                    self.pos += 1;
                    last_sym_start = rule.len();
                    n_prev_rules = 1;
                    while self.peek() != b'"' || self.at_end() {
                        if self.at_end() {
                            return Err(self.err_at(item_start, "unterminated string literal"));
                        }
                        let ch = self.parse_char()?;
                        rule.push(Elem::Char(ch));
                    }
                    self.pos += 1;
                    self.skip_space(nested);
                }
                b'[' => {
                    self.pos += 1;
                    let negated = self.peek() == b'^';
                    if negated {
                        self.pos += 1;
                    }
                    last_sym_start = rule.len();
                    n_prev_rules = 1;
                    while self.peek() != b']' || self.at_end() {
                        if self.at_end() {
                            return Err(self.err_at(item_start, "unterminated character class"));
                        }
                        let ch = self.parse_char()?;
                        let e = if rule.len() > last_sym_start {
                            Elem::CharAlt(ch)
                        } else if negated {
                            Elem::CharNot(ch)
                        } else {
                            Elem::Char(ch)
                        };
                        rule.push(e);
                        if self.peek() == b'-' && self.peek_at(1) != b']' {
                            if self.pos + 1 >= self.src.len() {
                                return Err(self.err_at(item_start, "unterminated character class"));
                            }
                            self.pos += 1;
                            let hi = self.parse_char()?;
                            if hi < ch {
                                return Err(self.err_at(
                                    item_start,
                                    format!("range end U+{hi:04X} is below its start U+{ch:04X}"),
                                ));
                            }
                            rule.push(Elem::CharRngUpper(hi));
                        }
                    }
                    if rule.len() == last_sym_start {
                        // `[]` (matches nothing) or `[^]` (any char): the reference encodes
                        // no head element and would misread the rule; refuse it clearly.
                        return Err(self.err_at(item_start, "empty character class"));
                    }
                    self.pos += 1;
                    self.skip_space(nested);
                }
                b'<' | b'!' => {
                    let negated = c == b'!';
                    if negated {
                        self.pos += 1;
                    }
                    let id = self.parse_token()?;
                    last_sym_start = rule.len();
                    n_prev_rules = 1;
                    rule.push(if negated {
                        Elem::TokenNot(id)
                    } else {
                        Elem::Token(id)
                    });
                    self.skip_space(nested);
                }
                c if is_word_byte(c) => {
                    let name = self.parse_name()?;
                    let id = self.symbol_id(name);
                    self.skip_space(nested);
                    last_sym_start = rule.len();
                    n_prev_rules = 1;
                    rule.push(Elem::RuleRef(id));
                }
                b'(' => {
                    self.pos += 1;
                    self.skip_space(true);
                    let n_before = self.names.len();
                    let sub = self.generate_symbol_id(rule_name);
                    self.parse_alternates(rule_name, sub, true)?;
                    n_prev_rules = (self.names.len() - n_before).max(1) as u64;
                    last_sym_start = rule.len();
                    rule.push(Elem::RuleRef(sub));
                    if self.peek() != b')' || self.at_end() {
                        return Err(self.err_at(item_start, "expecting ')' to close this group"));
                    }
                    self.pos += 1;
                    self.skip_space(nested);
                }
                b'.' => {
                    self.pos += 1;
                    last_sym_start = rule.len();
                    n_prev_rules = 1;
                    rule.push(Elem::CharAny);
                    self.skip_space(nested);
                }
                b'*' | b'+' | b'?' => {
                    self.pos += 1;
                    self.skip_space(nested);
                    let (lo, hi) = match c {
                        b'*' => (0, None),
                        b'+' => (1, None),
                        _ => (0, Some(1)),
                    };
                    self.repeat(
                        rule_name,
                        rule,
                        last_sym_start,
                        &mut n_prev_rules,
                        lo,
                        hi,
                        item_start,
                    )?;
                }
                b'{' => {
                    self.pos += 1;
                    self.skip_space(nested);
                    if !self.peek().is_ascii_digit() {
                        return Err(self.err("expecting an integer after '{'"));
                    }
                    let lo = self.parse_int()?;
                    self.skip_space(nested);
                    let hi = match self.peek() {
                        b'}' => {
                            self.pos += 1;
                            Some(lo)
                        }
                        b',' => {
                            self.pos += 1;
                            self.skip_space(nested);
                            let hi = if self.peek().is_ascii_digit() {
                                let h = self.parse_int()?;
                                self.skip_space(nested);
                                Some(h)
                            } else {
                                None
                            };
                            if self.peek() != b'}' {
                                return Err(self.err("expecting '}'"));
                            }
                            self.pos += 1;
                            hi
                        }
                        _ => return Err(self.err("expecting ',' or '}'")),
                    };
                    self.skip_space(nested);
                    if lo > MAX_REPETITION {
                        return Err(self.err_at(
                            item_start,
                            format!("repetition minimum {lo} exceeds the limit {MAX_REPETITION}"),
                        ));
                    }
                    if let Some(h) = hi {
                        if h < lo {
                            return Err(self.err_at(
                                item_start,
                                format!("repetition maximum {h} is below the minimum {lo}"),
                            ));
                        }
                    }
                    let hi = hi.filter(|&h| h <= MAX_REPETITION);
                    self.repeat(
                        rule_name,
                        rule,
                        last_sym_start,
                        &mut n_prev_rules,
                        lo,
                        hi,
                        item_start,
                    )?;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Rewrites the item at `rule[last..]` as a repetition (see the module comment).
    #[allow(clippy::too_many_arguments)]
    fn repeat(
        &mut self,
        rule_name: &str,
        rule: &mut Vec<Elem>,
        last: usize,
        n_prev_rules: &mut u64,
        lo: u64,
        hi: Option<u64>,
        at: usize,
    ) -> Result<()> {
        if last == rule.len() {
            return Err(self.err_at(at, "expecting an item before */+/?/{"));
        }
        let total = match hi {
            Some(h) if h > 0 => h,
            _ => lo.max(1),
        };
        if n_prev_rules.saturating_mul(total) > MAX_REPETITION {
            return Err(self.err_at(
                at,
                format!(
                    "this repetition would generate more than {MAX_REPETITION} rules \
                     (reduce the count or the size of the repeated item)"
                ),
            ));
        }
        let item: Vec<Elem> = rule[last..].to_vec();
        if lo == 0 {
            rule.truncate(last);
        } else {
            for _ in 1..lo {
                rule.extend_from_slice(&item);
            }
        }
        let n_opt = match hi {
            None => 1,
            Some(h) => h - lo,
        };
        let mut last_rec = 0u32;
        for i in 0..n_opt {
            let id = self.generate_symbol_id(rule_name);
            let mut rec = item.clone();
            if hi.is_none() {
                rec.push(Elem::RuleRef(id));
            } else if i > 0 {
                rec.push(Elem::RuleRef(last_rec));
            }
            rec.push(Elem::Alt);
            rec.push(Elem::End);
            self.rules[id as usize] = Some(rec);
            last_rec = id;
        }
        if n_opt > 0 {
            rule.push(Elem::RuleRef(last_rec));
        }
        *n_prev_rules = n_prev_rules.saturating_mul(total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text, None).unwrap_err().message().to_string()
    }

    #[test]
    fn simple_rules_and_classes() {
        let g = parse("root ::= \"ab\" [c-e^] | x\nx ::= [^\\n]", None).unwrap();
        assert_eq!(g.names, vec!["root", "x"]);
        assert_eq!(
            g.rules[0],
            vec![
                Elem::Char('a' as u32),
                Elem::Char('b' as u32),
                Elem::Char('c' as u32),
                Elem::CharRngUpper('e' as u32),
                Elem::CharAlt('^' as u32),
                Elem::Alt,
                Elem::RuleRef(1),
                Elem::End
            ]
        );
        assert_eq!(g.rules[1], vec![Elem::CharNot('\n' as u32), Elem::End]);
    }

    #[test]
    fn repetitions_generate_rules() {
        let g = parse("root ::= \"a\"{2,4}", None).unwrap();
        // a a then two optional levels.
        assert_eq!(g.rules.len(), 3);
        let g = parse("root ::= [0-9]+", None).unwrap();
        assert_eq!(g.rules.len(), 2);
        let text = g.to_gbnf();
        assert!(text.contains("root ::= [0-9] root_1"), "{text}");
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = err("root ::= \"a\"\nfoo ::= bar\n");
        assert!(e.contains("'bar' is used but never defined"), "{e}");
        let e = err("root ::= \"a\"\n  x ::= [a-z\n");
        assert!(e.contains("line 2"), "{e}");
        let e = err("root ::= \"a\" )");
        assert!(e.contains("line 1, column 14"), "{e}");
        let e = err("root := \"a\"");
        assert!(e.contains("expecting ::="), "{e}");
        let e = err("root ::= \"\\q\"");
        assert!(e.contains("unknown escape"), "{e}");
        let e = err("root ::= \"a\"{3000}");
        assert!(e.contains("exceeds the limit"), "{e}");
        let e = err("root ::= *");
        assert!(e.contains("expecting an item"), "{e}");
        let e = err("root ::= <foo>");
        assert!(e.contains("needs a vocabulary"), "{e}");
        let e = err("");
        assert!(e.contains("no rules"), "{e}");
        let e = err("root ::= (\"a\"{0,50}){0,50}");
        assert!(e.contains("more than 2000 rules"), "{e}");
    }
}
