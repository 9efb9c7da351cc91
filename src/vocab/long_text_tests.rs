//! The merge loops against straightforward ones shaped like the reference's (`llm_tokenizer_spm`
//! and `llm_tokenizer_bpe`: one binary heap of full entries over the whole text, stale entries
//! skipped by their lengths), on long texts of every shape with the shared vocabularies. The
//! fast loops (compact keys, SPM cut into pieces) must give the same tokens.

use super::hash::FxHashMap;
use super::special::Fragment;
use super::unicode::{code_points, push_utf8, utf8_len};
use super::{pretokenize, Vocab, VocabType};
use crate::gguf::GgufFile;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The reference's SPM loop: (score, left reversed) max-heap of (score, left, right, size).
fn spm_reference(text: &[u8], vocab: &Vocab, out: &mut Vec<i32>) {
    #[derive(Clone, Copy)]
    struct Sym {
        start: usize,
        len: usize,
        prev: i64,
        next: i64,
    }
    let mut syms = Vec::new();
    let mut offs = 0;
    while offs < text.len() {
        let len = utf8_len(text[offs]).min(text.len() - offs);
        let i = syms.len() as i64;
        syms.push(Sym {
            start: offs,
            len,
            prev: i - 1,
            next: if offs + len == text.len() { -1 } else { i + 1 },
        });
        offs += len;
    }
    // Key: (score as ordered bits, reversed left), then right and size.
    let ordered = |s: f32| {
        let b = (s + 0.0).to_bits();
        if b >> 31 == 1 {
            !b
        } else {
            b | 0x8000_0000
        }
    };
    let mut heap: BinaryHeap<(u32, Reverse<i64>, i64, usize)> = BinaryHeap::new();
    let add = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: i64, r: i64| {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize], syms[r as usize]);
        let piece = &text[a.start..a.start + a.len + b.len];
        if let Some(&id) = vocab.token_to_id.get(piece) {
            let score = vocab.tokens[id as usize].score;
            heap.push((ordered(score), Reverse(l), r, piece.len()));
        }
    };
    for i in 1..syms.len() as i64 {
        add(&mut heap, &syms, i - 1, i);
    }
    while let Some((_, Reverse(l), r, size)) = heap.pop() {
        let (a, b) = (syms[l as usize], syms[r as usize]);
        if a.len == 0 || b.len == 0 || a.len + b.len != size {
            continue;
        }
        syms[l as usize].len += b.len;
        syms[r as usize].len = 0;
        syms[l as usize].next = b.next;
        if b.next >= 0 {
            syms[b.next as usize].prev = l;
        }
        add(&mut heap, &syms, a.prev, l);
        add(&mut heap, &syms, l, b.next);
    }
    let mut i = 0i64;
    while i >= 0 && !syms.is_empty() {
        let s = syms[i as usize];
        let piece = &text[s.start..s.start + s.len];
        match vocab.token_to_id.get(piece) {
            Some(&id) => out.push(id),
            None => out.extend(piece.iter().map(|&b| vocab.byte_to_token(b).unwrap())),
        }
        i = s.next;
    }
}

/// The reference's BPE loop over one word: min-heap of (rank, left, right, text), an entry is
/// stale when either side's text changed.
fn bpe_reference_word(
    word: &[u8],
    vocab: &Vocab,
    merges: &FxHashMap<(String, String), usize>,
    out: &mut Vec<i32>,
) {
    let mut text: Vec<String> = word
        .iter()
        .map(|&b| super::bpe::encode_bytes(&[b]))
        .collect();
    let n = word.len();
    let mut prev: Vec<i64> = (0..n as i64).map(|i| i - 1).collect();
    let mut next: Vec<i64> = (0..n as i64)
        .map(|i| if i + 1 == n as i64 { -1 } else { i + 1 })
        .collect();
    let mut start: Vec<usize> = (0..n).collect();
    let mut len: Vec<usize> = vec![1; n];
    type Entry = Reverse<(usize, i64, i64, String)>;
    let mut heap: BinaryHeap<Entry> = BinaryHeap::new();
    let add = |heap: &mut BinaryHeap<Entry>, text: &[String], l: i64, r: i64| {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (&text[l as usize], &text[r as usize]);
        if let Some(&rank) = merges.get(&(a.clone(), b.clone())) {
            heap.push(Reverse((rank, l, r, format!("{a}{b}"))));
        }
    };
    for i in 1..n as i64 {
        add(&mut heap, &text, i - 1, i);
    }
    while let Some(Reverse((_, l, r, t))) = heap.pop() {
        let (lu, ru) = (l as usize, r as usize);
        if len[lu] == 0 || len[ru] == 0 || format!("{}{}", text[lu], text[ru]) != t {
            continue;
        }
        text[lu] = t;
        len[lu] += len[ru];
        len[ru] = 0;
        next[lu] = next[ru];
        if next[ru] >= 0 {
            prev[next[ru] as usize] = l;
        }
        add(&mut heap, &text, prev[lu], l);
        add(&mut heap, &text, l, next[lu]);
    }
    let mut i = 0i64;
    while i >= 0 {
        let iu = i as usize;
        match vocab.token_to_id.get(text[iu].as_bytes()) {
            Some(&id) => out.push(id),
            None => {
                for &b in &word[start[iu]..start[iu] + len[iu]] {
                    if let Some(&id) = vocab.token_to_id.get(&[b][..]) {
                        out.push(id);
                    }
                }
            }
        }
        i = next[iu];
    }
    start.clear();
}

fn merge_ranks(lines: &[String]) -> FxHashMap<(String, String), usize> {
    let mut map = FxHashMap::default();
    for (rank, line) in lines.iter().enumerate() {
        let Some(sp) = line.as_bytes().iter().skip(1).position(|&b| b == b' ') else {
            continue;
        };
        let (a, b) = (&line[..sp + 1], &line[sp + 2..]);
        if !b.is_empty() {
            map.entry((a.to_string(), b.to_string())).or_insert(rank);
        }
    }
    map
}

/// `Vocab::tokenize(text, false, false)` with the reference-shaped loops.
fn reference_tokenize(
    vocab: &Vocab,
    merges: &FxHashMap<(String, String), usize>,
    text: &[u8],
) -> Vec<i32> {
    let mut out = Vec::new();
    let mut prev_special = true;
    for f in vocab.special_matcher.partition(text, false) {
        let Fragment::Text(a, b) = f else {
            if let Fragment::Token(id) = f {
                out.push(id);
            }
            prev_special = true;
            continue;
        };
        let text = &text[a..b];
        match vocab.kind {
            VocabType::Spm => {
                let mut buf = Vec::new();
                if vocab.add_space_prefix && prev_special {
                    buf.extend_from_slice("\u{2581}".as_bytes());
                }
                for &c in text {
                    if c == b' ' {
                        buf.extend_from_slice("\u{2581}".as_bytes());
                    } else {
                        buf.push(c);
                    }
                }
                spm_reference(&buf, vocab, &mut out);
            }
            VocabType::Bpe => {
                let cps = code_points(text);
                let mut word = Vec::new();
                for (s, e) in pretokenize::split(vocab.pre, &cps) {
                    word.clear();
                    for &cp in &cps[s..e] {
                        push_utf8(&mut word, cp);
                    }
                    let whole = vocab.bpe.as_ref().and_then(|t| t.whole_word_token(&word));
                    match whole {
                        Some(id) if vocab.ignore_merges => out.push(id as i32),
                        _ => bpe_reference_word(&word, vocab, merges, &mut out),
                    }
                }
            }
        }
        prev_special = false;
    }
    out
}

/// Deterministic text of a shape: prose, nospace, allspace, cjk, mixed (every script and
/// byte the test vectors use, in random runs).
fn text(shape: &str, bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rnd = move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33
    };
    let words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "was",
        "with",
        "be",
        "Hello",
        "world",
        "don't",
        "I'm",
        "1234567",
        "3.14",
        "!!",
        "\n",
        "  ",
        "\t",
        "über",
        "naïve",
        "日本語",
        "Привет",
        "مرحبا",
        "🦙",
        "🦙🦙",
        "<s>",
        "</s>",
        "'",
        "''",
        "    ",
    ];
    let mut out = Vec::new();
    while out.len() < bytes {
        match shape {
            "allspace" => out.push(b' '),
            "cjk" => {
                let cp = 0x4E00 + rnd() as u32 % 0x5000;
                let mut b = [0u8; 4];
                out.extend_from_slice(
                    char::from_u32(cp)
                        .unwrap_or('x')
                        .encode_utf8(&mut b)
                        .as_bytes(),
                );
            }
            "nospace" => out.extend_from_slice(words[(rnd() % 12) as usize].as_bytes()),
            "prose" => {
                out.extend_from_slice(words[(rnd() % 13) as usize].as_bytes());
                out.push(if rnd() % 9 == 0 { b'\n' } else { b' ' });
            }
            _ => {
                out.extend_from_slice(words[(rnd() % words.len() as u64) as usize].as_bytes());
                if rnd() % 3 == 0 {
                    out.push(b' ');
                }
            }
        }
    }
    out
}

#[test]
fn long_texts_match_reference_loops() {
    for name in ["llama-spm", "llama-bpe", "gpt-2", "falcon"] {
        let Some(p) = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf")) else {
            return;
        };
        let f = GgufFile::open(&p).unwrap();
        let vocab = Vocab::from_gguf(&f).unwrap();
        let merges = match vocab.kind {
            VocabType::Bpe => merge_ranks(f.get_str_array("tokenizer.ggml.merges").unwrap()),
            VocabType::Spm => FxHashMap::default(),
        };
        // The SPM texts are long enough to be cut into many pieces (4 kB each).
        let bytes = if vocab.kind == VocabType::Spm {
            60_000
        } else {
            6_000
        };
        for (i, shape) in ["prose", "nospace", "allspace", "cjk", "mixed"]
            .iter()
            .enumerate()
        {
            for seed in 0..2u64 {
                let t = text(shape, bytes, seed * 31 + i as u64);
                let ours = vocab.tokenize(&t, false, false).unwrap();
                let want = reference_tokenize(&vocab, &merges, &t);
                assert_eq!(
                    ours.len(),
                    want.len(),
                    "{name} {shape} seed {seed}: token count"
                );
                assert!(ours == want, "{name} {shape} seed {seed}: tokens differ");
            }
        }
    }
}

#[test]
fn spm_merges_run_on_bounded_pieces() {
    let Some(p) = bitnet_testdata::path("vocab/ggml-vocab-llama-spm.gguf") else {
        return;
    };
    let vocab = Vocab::from_gguf(&GgufFile::open(&p).unwrap()).unwrap();
    let peak = |t: &[u8]| {
        super::SPM_SESSION.with(|s| s.borrow_mut().peak_symbols = 0);
        vocab.tokenize(t, false, false).unwrap();
        super::SPM_SESSION.with(|s| s.borrow().peak_symbols)
    };
    // 2 MB of prose, of words without spaces and of CJK: merge runs of a few kB, not one run
    // over the whole text (which took memory in proportion to it, and time more than that).
    for shape in ["prose", "nospace", "cjk"] {
        let n = peak(&text(shape, 2 << 20, 7));
        assert!(n < 64 << 10, "{shape}: a merge run of {n} symbols");
    }
    // A run of spaces has no place to cut ("▁▁" is a token): one run over the whole text.
    assert!(peak(&text("allspace", 100_000, 7)) > 100_000);
}
