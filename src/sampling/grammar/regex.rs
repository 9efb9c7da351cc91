//! A small backtracking regular-expression engine for lazy-grammar trigger patterns, with the
//! ECMAScript syntax llama.cpp's `std::regex` patterns use: literals and escapes (`\n \t \r \f
//! \v \xHH \uHHHH`, `\.` ...), classes `[...]`/`[^...]` with ranges and `\s \S \d \D \w \W`,
//! `.` (any byte but `\n`/`\r`), groups `( )` and `(?: )`, alternation, `* + ? {n} {n,} {n,m}`
//! with lazy `?` forms, anchors `^ $`. It works on bytes (as `std::regex` on `std::string`
//! does). Every search has a step budget, so a pathological pattern gives "no match" and a
//! warning instead of a hang.

use crate::{Error, Result};

#[derive(Debug, Clone)]
enum Inst {
    /// One byte in the set.
    Set(Box<[bool; 256]>),
    /// Try `x` first, then `y`.
    Split(usize, usize),
    Jmp(usize),
    Save(usize),
    AssertStart,
    AssertEnd,
    Match,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    pattern: String,
    prog: Vec<Inst>,
    n_groups: usize,
}

/// Steps one search may take before it gives up.
const STEP_BUDGET: usize = 2_000_000;
/// Most instructions a pattern may compile to (counted repetitions are expanded).
const MAX_PROG: usize = 100_000;

#[derive(Debug, Clone)]
enum Node {
    Set(Box<[bool; 256]>),
    Seq(Vec<Node>),
    Alt(Vec<Node>),
    Group(Option<usize>, Box<Node>),
    Repeat(Box<Node>, u32, Option<u32>, bool),
    Start,
    End,
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    groups: usize,
    pattern: &'a str,
}

fn set_of(f: impl Fn(u8) -> bool) -> Box<[bool; 256]> {
    let mut s = Box::new([false; 256]);
    for b in 0..=255u8 {
        s[b as usize] = f(b);
    }
    s
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl<'a> P<'a> {
    fn err(&self, what: &str) -> Error {
        Error::invalid_argument(format!(
            "trigger pattern '{}': {what} at offset {}",
            self.pattern, self.i
        ))
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn alt(&mut self) -> Result<Node> {
        let mut alts = vec![self.seq()?];
        while self.peek() == Some(b'|') {
            self.i += 1;
            alts.push(self.seq()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Node::Seq(vec![]))
        } else {
            Node::Alt(alts)
        })
    }

    fn seq(&mut self) -> Result<Node> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quant(atom)?;
            items.push(atom);
        }
        Ok(Node::Seq(items))
    }

    fn quant(&mut self, atom: Node) -> Result<Node> {
        let (lo, hi) = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                (0, None)
            }
            Some(b'+') => {
                self.i += 1;
                (1, None)
            }
            Some(b'?') => {
                self.i += 1;
                (0, Some(1))
            }
            Some(b'{') => {
                let save = self.i;
                self.i += 1;
                let Some(lo) = self.num() else {
                    // A literal '{' (ECMAScript is lenient here).
                    self.i = save;
                    return Ok(atom);
                };
                let hi = if self.peek() == Some(b',') {
                    self.i += 1;
                    self.num()
                } else {
                    Some(lo)
                };
                if self.peek() != Some(b'}') {
                    return Err(self.err("expecting '}'"));
                }
                self.i += 1;
                if hi.is_some_and(|h| h < lo) {
                    return Err(self.err("repetition maximum below minimum"));
                }
                (lo, hi)
            }
            _ => return Ok(atom),
        };
        if matches!(atom, Node::Start | Node::End) {
            return Err(self.err("nothing to repeat"));
        }
        let lazy = self.peek() == Some(b'?');
        if lazy {
            self.i += 1;
        }
        Ok(Node::Repeat(Box::new(atom), lo, hi, lazy))
    }

    fn num(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn hex(&mut self, n: usize) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self
                .peek()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(|| self.err("bad hex escape"))?;
            v = v * 16 + d;
            self.i += 1;
        }
        Ok(v)
    }

    /// An escape after `\`: a set of bytes, or a literal byte sequence (for `\u`).
    fn escape(&mut self) -> Result<std::result::Result<Box<[bool; 256]>, Vec<u8>>> {
        let c = self.peek().ok_or_else(|| self.err("trailing backslash"))?;
        self.i += 1;
        Ok(match c {
            b'd' => Ok(set_of(|b| b.is_ascii_digit())),
            b'D' => Ok(set_of(|b| !b.is_ascii_digit())),
            b's' => Ok(set_of(is_space)),
            b'S' => Ok(set_of(|b| !is_space(b))),
            b'w' => Ok(set_of(is_word)),
            b'W' => Ok(set_of(|b| !is_word(b))),
            b'n' => Err(vec![b'\n']),
            b't' => Err(vec![b'\t']),
            b'r' => Err(vec![b'\r']),
            b'f' => Err(vec![0x0c]),
            b'v' => Err(vec![0x0b]),
            b'0' => Err(vec![0]),
            b'x' => Err(vec![self.hex(2)? as u8]),
            b'u' => {
                let v = self.hex(4)?;
                let ch = char::from_u32(v).ok_or_else(|| self.err("bad \\u escape"))?;
                let mut buf = [0u8; 4];
                Err(ch.encode_utf8(&mut buf).as_bytes().to_vec())
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(self.err(&format!("unsupported escape \\{}", c as char)))
            }
            c => Err(vec![c]),
        })
    }

    fn atom(&mut self) -> Result<Node> {
        let c = self.peek().ok_or_else(|| self.err("unexpected end"))?;
        self.i += 1;
        Ok(match c {
            b'^' => Node::Start,
            b'$' => Node::End,
            b'.' => Node::Set(set_of(|b| b != b'\n' && b != b'\r')),
            b'(' => {
                let idx = if self.s[self.i..].starts_with(b"?:") {
                    self.i += 2;
                    None
                } else if self.peek() == Some(b'?') {
                    return Err(self.err("lookaround groups are not supported"));
                } else {
                    self.groups += 1;
                    Some(self.groups)
                };
                let inner = self.alt()?;
                if self.peek() != Some(b')') {
                    return Err(self.err("expecting ')'"));
                }
                self.i += 1;
                Node::Group(idx, Box::new(inner))
            }
            b')' => return Err(self.err("unbalanced ')'")),
            b'*' | b'+' | b'?' => return Err(self.err("nothing to repeat")),
            b'[' => self.class()?,
            b'\\' => match self.escape()? {
                Ok(set) => Node::Set(set),
                Err(bytes) => Node::Seq(
                    bytes
                        .into_iter()
                        .map(|b| Node::Set(set_of(|x| x == b)))
                        .collect(),
                ),
            },
            c => Node::Set(set_of(|x| x == c)),
        })
    }

    fn class(&mut self) -> Result<Node> {
        let negate = self.peek() == Some(b'^');
        if negate {
            self.i += 1;
        }
        let mut set = Box::new([false; 256]);
        let mut first = true;
        loop {
            let c = self.peek().ok_or_else(|| self.err("unterminated class"))?;
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            let lo = if c == b'\\' {
                match self.escape()? {
                    Ok(s) => {
                        for b in 0..256 {
                            set[b] |= s[b];
                        }
                        continue;
                    }
                    Err(bytes) if bytes.len() == 1 => bytes[0],
                    Err(bytes) => {
                        for b in bytes {
                            set[b as usize] = true;
                        }
                        continue;
                    }
                }
            } else {
                c
            };
            if self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|&n| n != b']') {
                self.i += 1;
                let h = self.peek().ok_or_else(|| self.err("unterminated class"))?;
                self.i += 1;
                let hi = if h == b'\\' {
                    match self.escape()? {
                        Err(bytes) if bytes.len() == 1 => bytes[0],
                        _ => return Err(self.err("bad range end")),
                    }
                } else {
                    h
                };
                if hi < lo {
                    return Err(self.err("range out of order"));
                }
                for b in lo..=hi {
                    set[b as usize] = true;
                }
            } else {
                set[lo as usize] = true;
            }
        }
        if negate {
            for b in set.iter_mut() {
                *b = !*b;
            }
        }
        Ok(Node::Set(set))
    }
}

fn emit(n: &Node, prog: &mut Vec<Inst>) -> Result<()> {
    if prog.len() > MAX_PROG {
        return Err(Error::invalid_argument(
            "trigger pattern is too large once its counted repetitions are expanded",
        ));
    }
    match n {
        Node::Set(s) => prog.push(Inst::Set(s.clone())),
        Node::Seq(items) => {
            for i in items {
                emit(i, prog)?;
            }
        }
        Node::Alt(alts) => {
            let mut jumps = Vec::new();
            for (k, a) in alts.iter().enumerate() {
                if k + 1 < alts.len() {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    emit(a, prog)?;
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    let next = prog.len();
                    prog[split] = Inst::Split(split + 1, next);
                } else {
                    emit(a, prog)?;
                }
            }
            let end = prog.len();
            for j in jumps {
                prog[j] = Inst::Jmp(end);
            }
        }
        Node::Group(idx, inner) => {
            if let Some(g) = idx {
                prog.push(Inst::Save(2 * g));
            }
            emit(inner, prog)?;
            if let Some(g) = idx {
                prog.push(Inst::Save(2 * g + 1));
            }
        }
        Node::Repeat(inner, lo, hi, lazy) => {
            for _ in 0..*lo {
                emit(inner, prog)?;
            }
            let split = |a: usize, b: usize| {
                if *lazy {
                    Inst::Split(b, a)
                } else {
                    Inst::Split(a, b)
                }
            };
            match hi {
                None => {
                    let l = prog.len();
                    prog.push(Inst::Jmp(0));
                    emit(inner, prog)?;
                    prog.push(Inst::Jmp(l));
                    let end = prog.len();
                    prog[l] = split(l + 1, end);
                }
                Some(h) => {
                    let mut holes = Vec::new();
                    for _ in *lo..*h {
                        holes.push(prog.len());
                        prog.push(Inst::Jmp(0));
                        emit(inner, prog)?;
                    }
                    let end = prog.len();
                    for hole in holes {
                        prog[hole] = split(hole + 1, end);
                    }
                }
            }
        }
        Node::Start => prog.push(Inst::AssertStart),
        Node::End => prog.push(Inst::AssertEnd),
    }
    Ok(())
}

/// Capture positions of a match: `groups[0]` is the whole match, `None` = did not take part.
pub type Captures = Vec<Option<(usize, usize)>>;

impl Regex {
    pub fn new(pattern: &str) -> Result<Regex> {
        let mut p = P {
            s: pattern.as_bytes(),
            i: 0,
            groups: 0,
            pattern,
        };
        let node = p.alt()?;
        if p.i != p.s.len() {
            return Err(p.err("unbalanced ')'"));
        }
        let mut prog = vec![Inst::Save(0)];
        emit(&node, &mut prog)?;
        prog.push(Inst::Save(1));
        prog.push(Inst::Match);
        Ok(Regex {
            pattern: pattern.to_string(),
            prog,
            n_groups: p.groups,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Runs at `start`; `full`: the match must end at the end of the input.
    fn run(&self, input: &[u8], start: usize, full: bool, steps: &mut usize) -> Option<Captures> {
        let nslots = 2 * (self.n_groups + 1);
        let mut stack: Vec<(usize, usize, Vec<Option<usize>>)> =
            vec![(0, start, vec![None; nslots])];
        while let Some((mut pc, mut sp, mut slots)) = stack.pop() {
            loop {
                *steps += 1;
                if *steps > STEP_BUDGET {
                    return None;
                }
                match &self.prog[pc] {
                    Inst::Set(s) => {
                        if sp < input.len() && s[input[sp] as usize] {
                            sp += 1;
                            pc += 1;
                        } else {
                            break;
                        }
                    }
                    Inst::Split(a, b) => {
                        stack.push((*b, sp, slots.clone()));
                        pc = *a;
                    }
                    Inst::Jmp(a) => pc = *a,
                    Inst::Save(k) => {
                        slots[*k] = Some(sp);
                        pc += 1;
                    }
                    Inst::AssertStart => {
                        if sp == 0 {
                            pc += 1
                        } else {
                            break;
                        }
                    }
                    Inst::AssertEnd => {
                        if sp == input.len() {
                            pc += 1
                        } else {
                            break;
                        }
                    }
                    Inst::Match => {
                        if full && sp != input.len() {
                            break;
                        }
                        return Some(
                            (0..=self.n_groups)
                                .map(|g| match (slots[2 * g], slots[2 * g + 1]) {
                                    (Some(a), Some(b)) => Some((a, b)),
                                    _ => None,
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
        None
    }

    /// `std::regex_match`: the whole input.
    pub fn full_match(&self, input: &[u8]) -> Option<Captures> {
        let mut steps = 0;
        let r = self.run(input, 0, true, &mut steps);
        self.warn_budget(steps);
        r
    }

    /// `std::regex_search`: the leftmost match.
    pub fn search(&self, input: &[u8]) -> Option<Captures> {
        let mut steps = 0;
        for start in 0..=input.len() {
            if let Some(c) = self.run(input, start, false, &mut steps) {
                return Some(c);
            }
            if steps > STEP_BUDGET {
                break;
            }
        }
        self.warn_budget(steps);
        None
    }

    fn warn_budget(&self, steps: usize) {
        if steps > STEP_BUDGET {
            crate::log::log(
                crate::log::Level::Warn,
                &format!(
                    "trigger pattern '{}' gave up after {STEP_BUDGET} steps (treated as no match)",
                    self.pattern
                ),
            );
        }
    }

    /// llama.cpp's trigger position: a pattern written `^...$` is first tried against the whole
    /// input, then (any pattern) searched anywhere; the start is that of the first capture
    /// group that matched something, else of the whole match.
    pub fn trigger_start(&self, input: &[u8]) -> Option<usize> {
        let start_of = |c: Captures| {
            c.iter()
                .skip(1)
                .flatten()
                .find(|(a, b)| b > a)
                .map(|(a, _)| *a)
                .or(c[0].map(|(a, _)| a))
        };
        if self.pattern.starts_with('^') && self.pattern.ends_with('$') {
            if let Some(c) = self.full_match(input) {
                return start_of(c);
            }
        }
        self.search(input).and_then(start_of)
    }
}

/// The pattern llama.cpp builds from trigger words: `[\s\S]*?(w1|w2|...)[\s\S]*` with the
/// words' special characters escaped.
pub fn trigger_words_pattern(words: &[&str]) -> String {
    let mut p = String::from("[\\s\\S]*?(");
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            p.push('|');
        }
        for ch in w.chars() {
            if ".^$|()*+?[]{}\\".contains(ch) {
                p.push('\\');
            }
            p.push(ch);
        }
    }
    p.push_str(")[\\s\\S]*");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> Option<(usize, usize)> {
        Regex::new(p)
            .unwrap()
            .search(s.as_bytes())
            .and_then(|c| c[0])
    }

    #[test]
    fn basics() {
        assert_eq!(m("abc", "xxabcx"), Some((2, 5)));
        assert_eq!(m("a|bc", "xbc"), Some((1, 3)));
        assert_eq!(m("a+", "baaa"), Some((1, 4)));
        assert_eq!(m("a+?", "baaa"), Some((1, 2)));
        assert_eq!(m("^a", "ba"), None);
        assert_eq!(m("a$", "ab"), None);
        assert_eq!(m("[^a-c]x", "axdx"), Some((2, 4)));
        assert_eq!(m("\\d{2,3}", "a12345"), Some((1, 4)));
        assert_eq!(m("a{2}", "aba aa"), Some((4, 6)));
        assert_eq!(m("(?:ab)+c", "ababc"), Some((0, 5)));
        assert_eq!(m("\\s\\S", "a  b"), Some((2, 4)));
        assert_eq!(m("\\.", "ab.c"), Some((2, 3)));
        assert_eq!(m("<tool_call>", "x <tool_call>"), Some((2, 13)));
        assert!(Regex::new("(a").is_err());
        assert!(Regex::new("a)").is_err());
        assert!(Regex::new("*a").is_err());
        assert!(Regex::new("(?=a)").is_err());
    }

    #[test]
    fn trigger_start_uses_first_group() {
        let r = Regex::new(&trigger_words_pattern(&["<tool>", "a.b"])).unwrap();
        assert_eq!(r.trigger_start(b"hello <tool> x"), Some(6));
        assert_eq!(r.trigger_start(b"xa.bz"), Some(1));
        assert_eq!(r.trigger_start(b"xaxbz"), None);
        let r = Regex::new("^.*?(\\{).*$").unwrap();
        assert_eq!(r.trigger_start(b"abc {\"a\""), Some(4));
    }

    #[test]
    fn pathological_patterns_give_up() {
        let r = Regex::new("(a*)*b").unwrap();
        let input = vec![b'a'; 40];
        assert_eq!(r.search(&input), None);
    }
}
