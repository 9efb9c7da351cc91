//! The grammar matcher: llama.cpp's pushdown stacks over code points, made cheap per token.
//!
//! A *stack* is a list of positions in the flattened rules (the last is the top); a *state* is
//! the set of stacks the grammar may be in. A state advances on one code point by taking each
//! stack whose top is a character class that matches, moving past the class and expanding rule
//! references at the top until every stack ends at a character class, a token element, or is
//! empty (an empty stack means the root rule is complete). This is exactly the reference's
//! `advance_stack` / `accept` (`src/llama-grammar.cpp`).
//!
//! Speed: states are interned (sorted, deduplicated stack sets → ids) and transitions memoized
//! (`[state][ascii]` table plus a map for other code points), so after warm-up a transition is
//! an array lookup. The set of tokens a state allows is computed once per state by walking a
//! trie of every token's decoded piece, pruning a subtree as soon as its prefix is dead, and
//! kept in a small cache; a sampling step then only tests one bit per candidate.
//!
//! Memory: caches are dropped when they grow past [`MAX_CACHED_ELEMS`]; one state may hold at
//! most [`MAX_STACKS`] stacks and one step may create at most [`MAX_STEP_ELEMS`] stack elements
//! before the grammar gives up with an error (an ambiguous or exploding grammar never hangs).

use std::collections::HashMap;
use std::sync::Arc;

use super::parser::{Elem, ParsedGrammar};
use crate::{Error, Result};

/// Most stacks one state may hold.
pub const MAX_STACKS: usize = 4096;
/// Stack elements the interned states may hold before the caches are cleared between steps.
pub const MAX_CACHED_ELEMS: usize = 4 << 20;
/// Stack elements one step (one token's mask or accept) may intern before it fails.
pub const MAX_STEP_ELEMS: usize = 32 << 20;

/// A position in the flattened rules.
pub type Pos = u32;
/// One pushdown stack (top last).
pub type Stack = Vec<Pos>;

/// Rules flattened into one element array (positions are indices into it).
#[derive(Debug, Clone)]
pub struct Rules {
    pub elems: Vec<Elem>,
    /// `start[rule]`: position of the rule's first element.
    pub start: Vec<Pos>,
}

impl Rules {
    pub fn from_parsed(g: &ParsedGrammar) -> Rules {
        let mut elems = Vec::new();
        let mut start = Vec::with_capacity(g.rules.len());
        for r in &g.rules {
            start.push(elems.len() as Pos);
            elems.extend_from_slice(r);
        }
        Rules { elems, start }
    }

    fn at(&self, p: Pos) -> Elem {
        self.elems[p as usize]
    }
}

/// A UTF-8 sequence cut at the end of a token: the bits seen so far and the bytes still due
/// (`n_remain < 0`: invalid input). llama.cpp's `llama_partial_utf8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PartialUtf8 {
    pub value: u32,
    pub n_remain: i32,
}

/// Decodes bytes continuing `partial` as the reference does: complete code points plus the
/// trailing partial sequence; `None` when the bytes are invalid (a continuation byte where a
/// sequence starts, or a non-continuation byte where `partial` expects one). Like the
/// reference, continuation bytes after a valid lead byte are not checked, and a NUL byte ends
/// the input.
pub fn decode_utf8(bytes: &[u8], partial: PartialUtf8) -> Option<(Vec<u32>, PartialUtf8)> {
    let bytes = match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut value = partial.value;
    let mut n_remain = partial.n_remain;
    if n_remain < 0 {
        return None;
    }
    while i < bytes.len() && n_remain > 0 {
        let b = bytes[i];
        if b >> 6 != 2 {
            return None;
        }
        value = (value << 6) + (b as u32 & 0x3f);
        i += 1;
        n_remain -= 1;
    }
    if partial.n_remain > 0 && n_remain == 0 {
        out.push(value);
    }
    while i < bytes.len() {
        let first = bytes[i];
        let len = match first >> 4 {
            0..=7 => 1,
            8..=11 => return None,
            12 | 13 => 2,
            14 => 3,
            _ => 4,
        };
        n_remain = len - 1;
        let mask = (1u32 << (7 - n_remain)) - 1;
        value = first as u32 & mask;
        i += 1;
        while i < bytes.len() && n_remain > 0 {
            value = (value << 6) + (bytes[i] as u32 & 0x3f);
            i += 1;
            n_remain -= 1;
        }
        if n_remain == 0 {
            out.push(value);
        }
    }
    if n_remain == 0 {
        value = 0;
    }
    Some((out, PartialUtf8 { value, n_remain }))
}

/// Does code point `c` satisfy the class whose head is at `p`? Also returns the position after
/// the class.
pub fn match_char(rules: &Rules, mut p: Pos, c: u32) -> (bool, Pos) {
    let head = rules.at(p);
    let positive = matches!(head, Elem::Char(_) | Elem::CharAny);
    let mut found = false;
    loop {
        let e = rules.at(p);
        let lo = match e {
            Elem::Char(v) | Elem::CharNot(v) | Elem::CharAlt(v) => v,
            Elem::CharAny => {
                found = true;
                p += 1;
                if matches!(rules.at(p), Elem::CharAlt(_)) {
                    continue;
                }
                break;
            }
            _ => break,
        };
        if let Elem::CharRngUpper(hi) = rules.at(p + 1) {
            found = found || (lo <= c && c <= hi);
            p += 2;
        } else {
            found = found || lo == c;
            p += 1;
        }
        if !matches!(rules.at(p), Elem::CharAlt(_)) {
            break;
        }
    }
    (found == positive, p)
}

/// Could some completion of the partial sequence satisfy the class at `p`?
pub fn match_partial_char(rules: &Rules, mut p: Pos, partial: PartialUtf8) -> bool {
    let head = rules.at(p);
    let positive = matches!(head, Elem::Char(_) | Elem::CharAny);
    let n = partial.n_remain;
    if n < 0 || (n == 1 && partial.value < 2) {
        return false;
    }
    let mut low = partial.value << (n * 6);
    let high = low | ((1u32 << (n * 6)) - 1);
    if low == 0 {
        if n == 2 {
            low = 1 << 11;
        } else if n == 3 {
            low = 1 << 16;
        }
    }
    loop {
        let e = rules.at(p);
        let lo = match e {
            Elem::Char(v) | Elem::CharNot(v) | Elem::CharAlt(v) => v,
            Elem::CharAny => return true,
            _ => break,
        };
        if let Elem::CharRngUpper(hi) = rules.at(p + 1) {
            if lo <= high && low <= hi {
                return positive;
            }
            p += 2;
        } else {
            if low <= lo && lo <= high {
                return positive;
            }
            p += 1;
        }
        if !matches!(rules.at(p), Elem::CharAlt(_)) {
            break;
        }
    }
    !positive
}

/// Expands `stack` until every resulting stack's top is a terminal (class or token) or the
/// stack is empty; adds the results to `out` (no duplicates).
pub fn advance_stack(rules: &Rules, stack: Stack, out: &mut Vec<Stack>) -> Result<()> {
    let mut todo = vec![stack];
    let mut seen: std::collections::HashSet<Stack> = std::collections::HashSet::new();
    while let Some(cur) = todo.pop() {
        if seen.contains(&cur) {
            continue;
        }
        if seen.len() > 4 * MAX_STACKS {
            return Err(too_ambiguous());
        }
        seen.insert(cur.clone());
        let Some(&top) = cur.last() else {
            if !out.contains(&cur) {
                out.push(cur);
            }
            continue;
        };
        match rules.at(top) {
            Elem::RuleRef(r) => {
                let mut sub = rules.start[r as usize];
                loop {
                    let mut next: Stack = cur[..cur.len() - 1].to_vec();
                    if !rules.at(top + 1).is_end_of_sequence() {
                        next.push(top + 1);
                    }
                    if !rules.at(sub).is_end_of_sequence() {
                        next.push(sub);
                    }
                    todo.push(next);
                    while !rules.at(sub).is_end_of_sequence() {
                        sub += 1;
                    }
                    if rules.at(sub) == Elem::Alt {
                        sub += 1;
                    } else {
                        break;
                    }
                }
            }
            Elem::Char(_)
            | Elem::CharNot(_)
            | Elem::CharAny
            | Elem::Token(_)
            | Elem::TokenNot(_) => {
                if !out.contains(&cur) {
                    if out.len() >= MAX_STACKS {
                        return Err(too_ambiguous());
                    }
                    out.push(cur);
                }
            }
            e => {
                return Err(Error::internal(format!(
                    "grammar stack left on {e:?} at position {top}"
                )))
            }
        }
    }
    Ok(())
}

fn too_ambiguous() -> Error {
    Error::invalid_argument(format!(
        "grammar is too ambiguous: more than {MAX_STACKS} parse stacks at one point \
         (simplify overlapping alternatives or nested repetitions)"
    ))
}

/// The stacks the grammar starts in: each alternative of the root rule, advanced.
pub fn initial_stacks(rules: &Rules, root: usize) -> Result<Vec<Stack>> {
    let mut out = Vec::new();
    let mut p = rules.start[root];
    loop {
        let mut s = Stack::new();
        if !rules.at(p).is_end_of_sequence() {
            s.push(p);
        }
        advance_stack(rules, s, &mut out)?;
        while !rules.at(p).is_end_of_sequence() {
            p += 1;
        }
        if rules.at(p) == Elem::Alt {
            p += 1;
        } else {
            break;
        }
    }
    Ok(out)
}

/// Left recursion (a rule that can reach itself without consuming input) makes the matcher
/// loop; the reference refuses such grammars, and so does this. Returns the offending rule.
pub fn find_left_recursion(g: &ParsedGrammar) -> Option<usize> {
    let n = g.rules.len();
    let mut visited = vec![false; n];
    let mut in_progress = vec![false; n];
    let mut may_be_empty = vec![false; n];
    fn visit(
        g: &ParsedGrammar,
        i: usize,
        visited: &mut [bool],
        in_progress: &mut [bool],
        may_be_empty: &mut [bool],
    ) -> bool {
        if in_progress[i] {
            return true;
        }
        in_progress[i] = true;
        let rule = &g.rules[i];
        let mut at_start = true;
        for e in rule {
            if e.is_end_of_sequence() {
                if at_start {
                    may_be_empty[i] = true;
                    break;
                }
                at_start = true;
            } else {
                at_start = false;
            }
        }
        let mut recurse = true;
        for e in rule {
            match e {
                Elem::RuleRef(r) if recurse => {
                    let r = *r as usize;
                    if visit(g, r, visited, in_progress, may_be_empty) {
                        return true;
                    }
                    if !may_be_empty[r] {
                        recurse = false;
                    }
                }
                e if e.is_end_of_sequence() => recurse = true,
                _ => recurse = false,
            }
        }
        in_progress[i] = false;
        visited[i] = true;
        false
    }
    (0..n).find(|&i| !visited[i] && visit(g, i, &mut visited, &mut in_progress, &mut may_be_empty))
}

/// Fixed-size bit set over token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub fn new(n: usize) -> Bitset {
        Bitset {
            words: vec![0; n.div_ceil(64)],
        }
    }
    pub fn set(&mut self, i: usize) {
        self.words[i >> 6] |= 1 << (i & 63);
    }
    pub fn get(&self, i: usize) -> bool {
        self.words
            .get(i >> 6)
            .is_some_and(|w| w & (1 << (i & 63)) != 0)
    }
    pub fn clear_bit(&mut self, i: usize) {
        if let Some(w) = self.words.get_mut(i >> 6) {
            *w &= !(1 << (i & 63));
        }
    }
    pub fn union_with(&mut self, o: &Bitset) {
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a |= b;
        }
    }
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// A token that ends at a trie node, with its trailing partial UTF-8 sequence.
#[derive(Debug, Clone, Copy)]
struct Terminal {
    token: u32,
    partial: PartialUtf8,
}

/// Every token's piece decoded (from a clean UTF-8 state) as a trie over code points.
#[derive(Debug)]
pub struct TokenTrie {
    /// Per node: first child, next sibling (u32::MAX = none), the code point on the edge into
    /// it, and the range of its terminals.
    first_child: Vec<u32>,
    next_sibling: Vec<u32>,
    cp: Vec<u32>,
    term_start: Vec<u32>,
    term_end: Vec<u32>,
    terms: Vec<Terminal>,
}

const NONE: u32 = u32::MAX;

impl TokenTrie {
    fn build(mut seqs: Vec<(Vec<u32>, Terminal)>) -> TokenTrie {
        seqs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut t = TokenTrie {
            first_child: vec![NONE],
            next_sibling: vec![NONE],
            cp: vec![0],
            term_start: vec![0],
            term_end: vec![0],
            terms: Vec::with_capacity(seqs.len()),
        };
        // path[d] = node at depth d for the previous sequence; last_child[d] = last child of
        // path[d] created so far.
        let mut path: Vec<u32> = vec![0];
        let mut last_child: Vec<u32> = vec![NONE];
        let mut prev: &[u32] = &[];
        for (i, (seq, term)) in seqs.iter().enumerate() {
            let common = if i == 0 {
                0
            } else {
                prev.iter().zip(seq).take_while(|(a, b)| a == b).count()
            };
            path.truncate(common + 1);
            last_child.truncate(common + 1);
            for &c in &seq[common..] {
                let parent = *path.last().unwrap_or(&0);
                let node = t.first_child.len() as u32;
                t.first_child.push(NONE);
                t.next_sibling.push(NONE);
                t.cp.push(c);
                t.term_start.push(0);
                t.term_end.push(0);
                let lc = last_child.last_mut().map(|x| std::mem::replace(x, node));
                match lc {
                    Some(NONE) | None => t.first_child[parent as usize] = node,
                    Some(prev_sib) => t.next_sibling[prev_sib as usize] = node,
                }
                path.push(node);
                last_child.push(NONE);
            }
            let node = *path.last().unwrap_or(&0) as usize;
            if t.term_end[node] == t.term_start[node] {
                t.term_start[node] = t.terms.len() as u32;
            }
            t.terms.push(*term);
            t.term_end[node] = t.terms.len() as u32;
            prev = seq;
        }
        t
    }

    pub fn n_nodes(&self) -> usize {
        self.cp.len()
    }
}

/// What the matcher needs to know about a vocabulary: each token's bytes (as
/// `token_to_piece(.., special = true)` gives them), which tokens end generation, and the trie.
#[derive(Debug)]
pub struct TokenTable {
    pub n_vocab: usize,
    pub pieces: Vec<Box<[u8]>>,
    pub eog: Bitset,
    /// Tokens whose piece decodes to at least one complete code point (what a token element
    /// can match).
    has_cp: Bitset,
    trie: TokenTrie,
}

impl TokenTable {
    /// From the pieces and the end-of-generation flags.
    pub fn new(pieces: Vec<Box<[u8]>>, eog: &[bool]) -> TokenTable {
        let n = pieces.len();
        let mut eog_bits = Bitset::new(n);
        let mut has_cp = Bitset::new(n);
        let mut seqs = Vec::with_capacity(n);
        for (id, piece) in pieces.iter().enumerate() {
            if eog.get(id).copied().unwrap_or(false) {
                eog_bits.set(id);
                continue;
            }
            if piece.is_empty() || piece[0] == 0 {
                continue;
            }
            if let Some((cps, partial)) = decode_utf8(piece, PartialUtf8::default()) {
                if !cps.is_empty() {
                    has_cp.set(id);
                }
                seqs.push((
                    cps,
                    Terminal {
                        token: id as u32,
                        partial,
                    },
                ));
            }
        }
        TokenTable {
            n_vocab: n,
            pieces,
            eog: eog_bits,
            has_cp,
            trie: TokenTrie::build(seqs),
        }
    }

    /// From a model's vocabulary.
    pub fn from_vocab(vocab: &crate::vocab::Vocab) -> Result<TokenTable> {
        let n = vocab.n_tokens();
        let mut pieces = Vec::with_capacity(n);
        let mut eog = Vec::with_capacity(n);
        for id in 0..n as i32 {
            pieces.push(vocab.token_to_piece(id, 0, true)?.into_boxed_slice());
            eog.push(vocab.is_eog(id));
        }
        Ok(TokenTable::new(pieces, &eog))
    }

    /// [`TokenTable::from_vocab`], shared: tables are kept (weakly) by a fingerprint of every
    /// piece and end-of-generation flag, so samplers built for the same vocabulary share one
    /// (building the trie for a 128k vocabulary takes a quarter of a second; the fingerprint
    /// a few milliseconds).
    pub fn shared(vocab: &crate::vocab::Vocab) -> Result<Arc<TokenTable>> {
        use std::sync::{Mutex, Weak};
        static CACHE: Mutex<Vec<(u64, usize, Weak<TokenTable>)>> = Mutex::new(Vec::new());
        let n = vocab.n_tokens();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |b: u8| {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for id in 0..n as i32 {
            for &b in vocab.token_to_piece(id, 0, true)?.iter() {
                mix(b);
            }
            mix(0xff);
            mix(vocab.is_eog(id) as u8);
        }
        let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(_, _, w)| w.strong_count() > 0);
        if let Some(t) = cache
            .iter()
            .find(|(fp, len, _)| *fp == h && *len == n)
            .and_then(|(_, _, w)| w.upgrade())
        {
            return Ok(t);
        }
        let t = Arc::new(TokenTable::from_vocab(vocab)?);
        cache.push((h, n, Arc::downgrade(&t)));
        Ok(t)
    }

    pub fn trie_nodes(&self) -> usize {
        self.trie.n_nodes()
    }
}

/// Interned states, memoized transitions and per-state token masks.
#[derive(Debug, Default, Clone)]
pub struct StateCache {
    sets: Vec<Arc<Vec<Stack>>>,
    index: HashMap<Arc<Vec<Stack>>, u32>,
    ascii: Vec<Option<Box<[u32; 128]>>>,
    other: HashMap<(u32, u32), u32>,
    masks: HashMap<u32, Arc<Bitset>>,
    mask_order: Vec<u32>,
    elems: usize,
}

/// The dead state (no stacks).
pub const DEAD: u32 = 0;
const UNKNOWN: u32 = u32::MAX;
const MAX_MASKS: usize = 48;

impl StateCache {
    pub fn new() -> StateCache {
        let mut c = StateCache::default();
        c.intern(Vec::new());
        c
    }

    /// Drops everything when the caches hold too much (call between steps only).
    pub fn trim(&mut self) {
        if self.elems > MAX_CACHED_ELEMS {
            *self = StateCache::new();
        }
    }

    pub fn n_states(&self) -> usize {
        self.sets.len()
    }

    /// The id of a stack set (sorted and deduplicated here).
    pub fn intern(&mut self, mut set: Vec<Stack>) -> u32 {
        set.sort_unstable();
        set.dedup();
        if let Some(&id) = self.index.get(&set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.elems += set.iter().map(|s| s.len() + 1).sum::<usize>();
        let set = Arc::new(set);
        self.sets.push(set.clone());
        self.index.insert(set, id);
        self.ascii.push(None);
        id
    }

    pub fn stacks(&self, id: u32) -> &Arc<Vec<Stack>> {
        &self.sets[id as usize]
    }

    /// The state after code point `c`.
    pub fn step(&mut self, rules: &Rules, id: u32, c: u32) -> Result<u32> {
        if id == DEAD {
            return Ok(DEAD);
        }
        if c < 128 {
            if let Some(t) = &self.ascii[id as usize] {
                let v = t[c as usize];
                if v != UNKNOWN {
                    return Ok(v);
                }
            }
        } else if let Some(&v) = self.other.get(&(id, c)) {
            return Ok(v);
        }
        let mut out = Vec::new();
        let set = self.sets[id as usize].clone();
        for s in set.iter() {
            let Some(&top) = s.last() else { continue };
            if !rules.at(top).is_char_head() {
                continue;
            }
            let (ok, after) = match_char(rules, top, c);
            if ok {
                let mut n: Stack = s[..s.len() - 1].to_vec();
                if !rules.at(after).is_end_of_sequence() {
                    n.push(after);
                }
                advance_stack(rules, n, &mut out)?;
            }
        }
        let v = self.intern(out);
        if self.elems > MAX_STEP_ELEMS {
            return Err(Error::invalid_argument(format!(
                "grammar matching needs more than {MAX_STEP_ELEMS} stack elements for one step \
                 (the grammar is too ambiguous or nests too deeply)"
            )));
        }
        if c < 128 {
            let t = self.ascii[id as usize].get_or_insert_with(|| Box::new([UNKNOWN; 128]));
            t[c as usize] = v;
        } else {
            self.other.insert((id, c), v);
        }
        Ok(v)
    }

    /// The tokens state `id` allows (end-of-generation tokens excluded; see `allows_eog`).
    pub fn mask(&mut self, rules: &Rules, table: &TokenTable, id: u32) -> Result<Arc<Bitset>> {
        if let Some(m) = self.masks.get(&id) {
            return Ok(m.clone());
        }
        let mut mask = Bitset::new(table.n_vocab);
        let set = self.sets[id as usize].clone();
        // Token elements at the top: match by id.
        for s in set.iter() {
            match s.last().map(|&p| rules.at(p)) {
                Some(Elem::Token(t)) if table.has_cp.get(t as usize) => mask.set(t as usize),
                Some(Elem::TokenNot(t)) => {
                    let mut all = table.has_cp.clone();
                    all.clear_bit(t as usize);
                    mask.union_with(&all);
                }
                _ => {}
            }
        }
        // Character stacks: walk the trie.
        let trie = &table.trie;
        let mut todo: Vec<(u32, u32)> = vec![(0, id)];
        while let Some((node, st)) = todo.pop() {
            let (a, b) = (trie.term_start[node as usize], trie.term_end[node as usize]);
            for term in &trie.terms[a as usize..b as usize] {
                if node == 0 && term.partial.n_remain == 0 {
                    continue; // empty piece
                }
                let ok = if term.partial.n_remain == 0 {
                    true
                } else {
                    self.sets[st as usize].iter().any(|s| {
                        s.last().is_some_and(|&p| {
                            rules.at(p).is_char_head() && match_partial_char(rules, p, term.partial)
                        })
                    })
                };
                if ok {
                    mask.set(term.token as usize);
                }
            }
            let mut ch = trie.first_child[node as usize];
            while ch != NONE {
                let next = self.step(rules, st, trie.cp[ch as usize])?;
                if next != DEAD {
                    todo.push((ch, next));
                }
                ch = trie.next_sibling[ch as usize];
            }
        }
        let mask = Arc::new(mask);
        if self.mask_order.len() >= MAX_MASKS {
            let old = self.mask_order.remove(0);
            self.masks.remove(&old);
        }
        self.mask_order.push(id);
        self.masks.insert(id, mask.clone());
        Ok(mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_matches_reference_rules() {
        let p0 = PartialUtf8::default();
        assert_eq!(decode_utf8(b"ab", p0), Some((vec![97, 98], p0)));
        let (cps, p) = decode_utf8(&[0xe2, 0x82], p0).unwrap();
        assert!(cps.is_empty());
        assert_eq!(p.n_remain, 1);
        let (cps, p2) = decode_utf8(&[0xac, b'x'], p).unwrap();
        assert_eq!(cps, vec![0x20ac, 'x' as u32]);
        assert_eq!(p2.n_remain, 0);
        assert_eq!(decode_utf8(&[0x80], p0), None);
        assert_eq!(decode_utf8(b"x", p), None);
        assert_eq!(decode_utf8(b"a\0b", p0).unwrap().0, vec![97]);
    }

    #[test]
    fn trie_shares_prefixes() {
        let pieces: Vec<Box<[u8]>> = ["a", "ab", "abc", "b", "ab"]
            .iter()
            .map(|s| s.as_bytes().to_vec().into_boxed_slice())
            .collect();
        let t = TokenTable::new(pieces, &[false; 5]);
        // root, a, b (under a), c, b (top) = 5 nodes.
        assert_eq!(t.trie_nodes(), 5);
    }
}
