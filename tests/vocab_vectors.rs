//! Tokenizer test vectors (llama.cpp's and the reference's extra ones) for the four vocabs,
//! round trips, random text, and bad input.
//!
//! Round-trip rule (llama.cpp's test-tokenizer-0 only compares ids; we also check text):
//! `detokenize(ids)` must equal the input after the reference's documented lossy steps:
//! - BPE vocabs: bytes without a byte token are dropped (falcon lacks 14 control bytes), then
//!   `clean_spaces` (space before `? ! . ,` and `'s 'm 're 've` removed, `" ' "` -> `"'"`);
//! - SPM: a literal `▁` in the input comes back as a space.
//!
//! In special mode (BOS added, special texts parsed), ids are detokenized with
//! `remove_special = true, unparse_special = true`; that gives the input back for the BPE
//! vocabs. SPM adds a space prefix after every special token, so there only inputs without
//! special-token text are compared (with that one leading space).

use bitnet::gguf::{GgufFile, GgufWriter, Value};
use bitnet::vocab::{clean_spaces, Token, VocabType};
use bitnet::{ErrorKind, Vocab};
use std::path::Path;

#[path = "common/vectors.rs"]
mod vectors;
use vectors::{read_inputs, read_outputs, sets, SEPARATOR, VOCABS};

fn load(name: &str) -> Option<Vocab> {
    let p = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf"))?;
    let f = GgufFile::open(&p).unwrap();
    Some(Vocab::from_gguf(&f).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// The bytes a BPE vocab cannot represent (no token for their byte-level char).
fn missing_bytes(v: &Vocab) -> Vec<u8> {
    if v.vocab_type() != VocabType::Bpe {
        return Vec::new();
    }
    (0..=255u8)
        .filter(|&b| {
            let printable = matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
            let cp = if printable {
                b as u32
            } else {
                0x100
                    + (0..b)
                        .filter(|&x| !matches!(x, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF))
                        .count() as u32
            };
            v.token_id(&char::from_u32(cp).unwrap().to_string())
                .is_none()
        })
        .collect()
}

/// What `detokenize(tokenize(input))` must give under the rules in the module doc.
fn expected_round_trip(v: &Vocab, input: &[u8], missing: &[u8]) -> Vec<u8> {
    match v.vocab_type() {
        VocabType::Bpe => {
            let kept: Vec<u8> = input
                .iter()
                .copied()
                .filter(|b| !missing.contains(b))
                .collect();
            clean_spaces(&kept)
        }
        VocabType::Spm => String::from_utf8_lossy(input)
            .replace('\u{2581}', " ")
            .into_bytes(),
    }
}

struct FileResult {
    name: String,
    tests: usize,
    ids_ok: usize,
    text_checked: usize,
    text_ok: usize,
}

fn run_file(v: &Vocab, inp: &Path, out: &Path, special: bool) -> FileResult {
    let inputs = read_inputs(inp);
    let expected = read_outputs(out);
    assert_eq!(
        inputs.len(),
        expected.len(),
        "{}: test count",
        inp.display()
    );
    let missing = missing_bytes(v);
    let special_texts: Vec<String> = (0..v.n_tokens() as Token)
        .filter(|&t| {
            v.token_attr(t).unwrap() & (bitnet::vocab::attr::CONTROL | bitnet::vocab::attr::UNKNOWN)
                != 0
        })
        .map(|t| v.token_text(t).unwrap().to_string())
        .collect();
    let mut r = FileResult {
        name: out.file_name().unwrap().to_string_lossy().into_owned(),
        tests: inputs.len(),
        ids_ok: 0,
        text_checked: 0,
        text_ok: 0,
    };
    let mut shown = 0;
    for (input, want) in inputs.iter().zip(&expected) {
        let got = v.tokenize(input, special, special).unwrap();
        if &got == want {
            r.ids_ok += 1;
        } else if shown < 5 {
            shown += 1;
            eprintln!(
                "{}: {:?}\n  want {:?}\n  got  {:?}",
                r.name,
                String::from_utf8_lossy(input),
                want,
                got
            );
        }
        // Round trip, from the expected ids.
        let text = v.detokenize(want, special, special).unwrap();
        let mut wanted_text = expected_round_trip(v, input, &missing);
        if special && v.vocab_type() == VocabType::Spm {
            let s = String::from_utf8_lossy(input);
            if special_texts.iter().any(|t| s.contains(t.as_str())) || input.is_empty() {
                continue;
            }
            wanted_text.insert(0, b' ');
        }
        r.text_checked += 1;
        if text == wanted_text {
            r.text_ok += 1;
        } else if shown < 5 {
            shown += 1;
            eprintln!(
                "{} round trip: {:?}\n  want {:?}\n  got  {:?}",
                r.name,
                String::from_utf8_lossy(input),
                String::from_utf8_lossy(&wanted_text),
                String::from_utf8_lossy(&text)
            );
        }
    }
    r
}

#[test]
fn all_vectors_all_vocabs() {
    let mut results = Vec::new();
    for name in VOCABS {
        let Some(v) = load(name) else { return };
        for (inp, out, special) in sets(name) {
            let (Some(inp), Some(out)) = (bitnet_testdata::path(&inp), bitnet_testdata::path(&out))
            else {
                return;
            };
            results.push(run_file(&v, &inp, &out, special));
        }
    }
    let mut failed = false;
    for r in &results {
        println!(
            "{:40} ids {:3}/{:3}  round trip {:3}/{:3}",
            r.name, r.ids_ok, r.tests, r.text_ok, r.text_checked
        );
        failed |= r.ids_ok != r.tests || r.text_ok != r.text_checked;
    }
    assert!(!failed, "some vectors failed (see above)");
}

/// A small deterministic PRNG (xorshift64*), so no crate is needed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn random_text(rng: &mut Rng) -> String {
    const POOLS: [&str; 9] = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789½²٣",
        "  \t\n\r\u{a0}\u{3000}\u{2009}\u{85}",
        ".,!?'\"()[]{}<>/\\|`~@#$%^&*-_=+;:",
        "😀👍🏽👨‍👩‍👧🇯🇵#️⃣❤️",
        "中文字符日本語한국어ひらがなカタカナ𠀀𠜎",
        "e\u{301}a\u{308}\u{200b}\u{200d}\u{feff}▁",
        "\u{1}\u{2}\u{3}\u{1b}\u{7f}\u{80}\u{9f}\u{b}\u{c}",
        "'s 're 've 'm 'll 'd 't <s></s><|endoftext|><|eot_id|>",
    ];
    let len = rng.below(40);
    let mut s = String::new();
    for _ in 0..len {
        match rng.below(12) {
            // Any scalar value, astral planes included.
            0 => {
                let cp = rng.below(0x110000) as u32;
                if let Some(c) = char::from_u32(cp) {
                    s.push(c);
                }
            }
            k => {
                let pool: Vec<char> = POOLS[k % POOLS.len()].chars().collect();
                s.push(pool[rng.below(pool.len())]);
            }
        }
    }
    s
}

#[test]
fn random_text_round_trips() {
    for name in VOCABS {
        let Some(v) = load(name) else { return };
        let missing = missing_bytes(&v);
        let mut rng = Rng(0x9E3779B97F4A7C15 ^ name.len() as u64);
        for _ in 0..400 {
            let s = random_text(&mut rng);
            let ids = v.tokenize(&s, false, false).unwrap();
            assert!(ids.iter().all(|&t| t >= 0 && (t as usize) < v.n_tokens()));
            let back = v.detokenize(&ids, false, false).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&back),
                String::from_utf8_lossy(&expected_round_trip(&v, s.as_bytes(), &missing)),
                "{name}: {s:?}"
            );
            // With specials parsed and added: no panic, ids in range.
            let ids = v.tokenize(&s, true, true).unwrap();
            assert!(ids.iter().all(|&t| t >= 0 && (t as usize) < v.n_tokens()));
            v.detokenize(&ids, true, true).unwrap();
        }
        // Invalid UTF-8 is read as U+FFFD per bad byte, never a panic.
        let ids = v
            .tokenize(b"ab\xff\xfe\xc3(\xe2\x82", false, false)
            .unwrap();
        assert!(!ids.is_empty());
    }
}

#[test]
fn special_tokens_and_accessors() {
    let Some(v) = load("llama-bpe") else { return };
    assert_eq!(v.vocab_type(), VocabType::Bpe);
    assert_eq!(v.n_tokens(), 128256);
    assert_eq!(
        (v.bos(), v.eos(), v.eot()),
        (Some(128000), Some(128001), Some(128009))
    );
    assert!(v.add_bos() && !v.add_eos());
    assert!(v.is_eog(128001) && v.is_eog(128009) && !v.is_eog(128000));
    assert!(v.is_control(128000) && !v.is_control(9906));
    assert_eq!(
        v.nl(),
        v.tokenize("\u{010A}", false, false)
            .unwrap()
            .first()
            .copied()
    );
    assert_eq!(v.tokenize("Hello", true, false).unwrap(), [128000, 9906]);
    assert_eq!(
        v.tokenize("<|eot_id|>", false, true).unwrap(),
        [128009],
        "control text is one token when parse_special"
    );
    assert_ne!(v.tokenize("<|eot_id|>", false, false).unwrap(), [128009]);
    // Control tokens show only when asked.
    assert_eq!(v.token_to_piece(128009, 0, false).unwrap(), b"");
    assert_eq!(v.token_to_piece(128009, 0, true).unwrap(), b"<|eot_id|>");
    assert_eq!(v.token_to_piece(220, 0, false).unwrap(), b" ");
    assert_eq!(v.token_to_piece(220, 1, false).unwrap(), b"");

    let Some(s) = load("llama-spm") else { return };
    assert_eq!(s.vocab_type(), VocabType::Spm);
    assert_eq!((s.bos(), s.eos(), s.unk()), (Some(1), Some(2), Some(0)));
    assert_eq!(s.nl(), Some(13)); // <0x0A>
    assert_eq!(s.tokenize(" ", true, false).unwrap(), [1, 259]);
    assert_eq!(s.detokenize(&[1, 15043], true, false).unwrap(), b" Hello");
    assert_eq!(s.detokenize(&[15043], true, false).unwrap(), b"Hello");
    // UNKNOWN shows like CONTROL: only with `special` (the fork's attr_special).
    assert_eq!(s.token_to_piece(0, 0, false).unwrap(), b"");
    assert_eq!(s.token_to_piece(0, 0, true).unwrap(), b"<unk>");
    assert_eq!(s.token_to_piece(13, 0, false).unwrap(), b"\n");
}

#[test]
fn invalid_tokens_are_errors() {
    for name in ["llama-bpe", "llama-spm"] {
        let Some(v) = load(name) else { return };
        let n = v.n_tokens() as Token;
        for bad in [-1, n, i32::MAX, i32::MIN] {
            assert_eq!(
                v.token_to_piece(bad, 0, true).unwrap_err().kind(),
                ErrorKind::InvalidToken
            );
            let e = v.detokenize(&[1, bad], false, false).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidToken);
            assert!(e.message().contains(&bad.to_string()), "{}", e.message());
            assert_eq!(
                v.token_text(bad).unwrap_err().kind(),
                ErrorKind::InvalidToken
            );
            assert!(!v.is_control(bad) && !v.is_eog(bad));
        }
    }
}

/// A copy of a real vocab file's metadata with `edit` applied, loaded from memory.
fn edited(
    name: &str,
    edit: impl FnOnce(&mut Vec<(String, Value)>),
) -> Option<bitnet::Result<Vocab>> {
    let p = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf"))?;
    let f = GgufFile::open(&p).unwrap();
    let mut kvs: Vec<(String, Value)> = f.metadata().to_vec();
    edit(&mut kvs);
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.set(k, v);
    }
    let bytes = w.to_bytes().unwrap();
    Some(Vocab::from_gguf(&GgufFile::from_bytes(&bytes).unwrap()))
}

fn remove(kvs: &mut Vec<(String, Value)>, key: &str) {
    kvs.retain(|(k, _)| k != key);
}

fn set(kvs: &mut [(String, Value)], key: &str, v: Value) {
    kvs.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
}

fn expect_err(r: Option<bitnet::Result<Vocab>>, kind: ErrorKind, needle: &str) {
    let Some(r) = r else { return };
    let e = r
        .err()
        .unwrap_or_else(|| panic!("expected an error mentioning {needle}"));
    assert_eq!(e.kind(), kind, "{}", e.message());
    assert!(
        e.message().contains(needle),
        "message {:?} should name {needle}",
        e.message()
    );
}

#[test]
fn bad_vocab_metadata() {
    use bitnet::gguf::Array;
    // The unedited copy loads.
    if let Some(r) = edited("llama-spm", |_| {}) {
        r.unwrap();
    }
    expect_err(
        edited("llama-spm", |k| remove(k, "tokenizer.ggml.tokens")),
        ErrorKind::Metadata,
        "tokenizer.ggml.tokens",
    );
    expect_err(
        edited("llama-spm", |k| remove(k, "tokenizer.ggml.model")),
        ErrorKind::Metadata,
        "tokenizer.ggml.model",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(k, "tokenizer.ggml.model", Value::String("bert".into()))
        }),
        ErrorKind::Unsupported,
        "bert",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(
                k,
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![1; 100])),
            )
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.token_type",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(
                k,
                "tokenizer.ggml.scores",
                Value::Array(Array::F32(vec![0.0; 5])),
            )
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.scores",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(k, "tokenizer.ggml.bos_token_id", Value::U32(32000))
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.bos_token_id",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(
                k,
                "tokenizer.ggml.tokens",
                Value::Array(Array::U32(vec![1, 2])),
            )
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.tokens",
    );
    expect_err(
        edited("llama-spm", |k| {
            set(k, "tokenizer.ggml.add_bos_token", Value::U32(1))
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.add_bos_token",
    );
    expect_err(
        edited("gpt-2", |k| remove(k, "tokenizer.ggml.merges")),
        ErrorKind::Metadata,
        "tokenizer.ggml.merges",
    );
    expect_err(
        edited("gpt-2", |k| {
            set(k, "tokenizer.ggml.pre", Value::String("qwen2".into()))
        }),
        ErrorKind::Unsupported,
        "qwen2",
    );
    expect_err(
        edited("gpt-2", |k| {
            set(k, "tokenizer.ggml.eos_token_id", Value::U32(u32::MAX))
        }),
        ErrorKind::Metadata,
        "tokenizer.ggml.eos_token_id",
    );
}

#[test]
fn documented_round_trip_rules() {
    if let Some(v) = load("llama-bpe") {
        let ids = v
            .tokenize(
                "Hello , world ! It 's ok , isn 't it ? ' quoted '",
                false,
                false,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(v.detokenize(&ids, false, false).unwrap()).unwrap(),
            "Hello, world! It's ok, isn 't it?'quoted '"
        );
    }
    if let Some(v) = load("falcon") {
        // No byte token for 0x1E: dropped without an error.
        assert_eq!(
            v.tokenize("\x1e", false, false).unwrap(),
            Vec::<Token>::new()
        );
        let ids = v.tokenize("a\x1eb\x03", false, false).unwrap();
        assert_eq!(v.detokenize(&ids, false, false).unwrap(), b"ab");
    }
    if let Some(v) = load("llama-spm") {
        let ids = v.tokenize("a\u{2581}b  c", false, false).unwrap();
        assert_eq!(v.detokenize(&ids, false, false).unwrap(), b"a b  c");
        // After a special token the text gets its own space prefix.
        assert_eq!(v.tokenize("<s> ", true, true).unwrap(), [1, 1, 259]);
        assert_eq!(v.tokenize("<unk>", false, true).unwrap(), [0]);
    }
}

#[test]
fn loads_from_tiny_models() {
    for (model, kind, n) in [
        ("tiny-b158-i2_s", VocabType::Bpe, 128256),
        ("tiny-spm-f32", VocabType::Spm, 32000),
    ] {
        let Some(p) = bitnet_testdata::path(&format!("models/{model}.gguf")) else {
            return;
        };
        let v = Vocab::from_gguf(&GgufFile::open(&p).unwrap()).unwrap();
        assert_eq!((v.vocab_type(), v.n_tokens()), (kind, n));
        assert!(v.add_bos());
        let ids = v.tokenize("Hello world", true, false).unwrap();
        assert_eq!(ids[0], v.bos().unwrap());
        // SPM keeps the prefix space when a BOS was removed (the reference does the same).
        let want: &[u8] = if kind == VocabType::Spm {
            b" Hello world"
        } else {
            b"Hello world"
        };
        assert_eq!(v.detokenize(&ids, true, false).unwrap(), want);
        assert_eq!(
            v.detokenize(&ids[1..], true, false).unwrap(),
            b"Hello world"
        );
    }
}

#[test]
fn vocab_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Vocab>();
    let Some(v) = load("gpt-2") else { return };
    let want = v.tokenize("Hello threads 123", false, false).unwrap();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| assert_eq!(v.tokenize("Hello threads 123", false, false).unwrap(), want));
        }
    });
}

#[test]
fn token_list_fixups() {
    use bitnet::gguf::Array;
    let rename = |k: &mut Vec<(String, Value)>, id: usize, text: &str| {
        let slot = k
            .iter_mut()
            .find(|(k, _)| k == "tokenizer.ggml.tokens")
            .unwrap();
        let Value::Array(Array::String(v)) = &mut slot.1 else {
            panic!()
        };
        v[id] = text.to_string();
    };
    // Duplicate texts: the reference asserts; we say which.
    expect_err(
        edited("llama-spm", |k| rename(k, 500, "<s>")),
        ErrorKind::Metadata,
        "appears twice (ids 1 and 500)",
    );
    // An empty text is named [EMPTY_<id>], as the reference does.
    if let Some(r) = edited("llama-spm", |k| rename(k, 500, "")) {
        let v = r.unwrap();
        assert_eq!(v.token_text(500).unwrap(), "[EMPTY_500]");
    }
    // FIM and end-of-turn tokens are found by text and become CONTROL.
    if let Some(r) = edited("llama-spm", |k| {
        rename(k, 500, "<PRE>");
        rename(k, 501, "<|fim_pad|>");
        rename(k, 502, "<|im_end|>");
    }) {
        let v = r.unwrap();
        let s = v.special_tokens();
        assert_eq!(
            (s.fim_pre, s.fim_pad, s.eot),
            (Some(500), Some(501), Some(502))
        );
        assert!(v.is_control(500) && v.is_control(501) && v.is_control(502));
        assert!(v.is_eog(501) && v.is_eog(502) && v.is_eog(2) && !v.is_eog(500));
        assert_eq!(v.tokenize("a<PRE>", false, true).unwrap(), [263, 500]);
        assert_eq!(v.token_to_piece(500, 0, false).unwrap(), b"");
    }
}

/// Every token's piece (special off with lstrip 0, special on with lstrip 1) and the special
/// ids, against values taken from the reference build with `tools/vocab_diff/harness.cpp`:
/// an FNV-1a 64 hash over its `P<id>.<special>:<hex>\n` lines for all tokens.
#[test]
fn pieces_and_special_ids_match_reference() {
    let fnv = |h: &mut u64, bytes: &[u8]| {
        for &b in bytes {
            *h ^= b as u64;
            *h = h.wrapping_mul(0x100000001b3);
        }
    };
    let cases = [
        (
            "llama-bpe",
            0xf4305cac0e0c6f1e_u64,
            [128000, 128001, 128009, 128],
            vec![128001, 128009],
        ),
        ("llama-spm", 0x83fcce2ec9c73180, [1, 2, -1, 13], vec![2]),
        (
            "gpt-2",
            0x1afd3fe8a66fd8d4,
            [50256, 50256, 50256, 128],
            vec![50256],
        ),
        ("falcon", 0x9e4bd42e6f00db87, [11, 11, 11, 138], vec![11]),
    ];
    for (name, want_hash, [bos, eos, eot, nl], eog) in cases {
        let Some(v) = load(name) else { return };
        let mut h = 0xcbf29ce484222325_u64;
        for t in 0..v.n_tokens() as Token {
            for sp in [false, true] {
                let piece = v.token_to_piece(t, sp as usize, sp).unwrap();
                let mut line = format!("P{t}.{}:", sp as i32);
                for b in piece {
                    line.push_str(&format!("{b:02x}"));
                }
                line.push('\n');
                fnv(&mut h, line.as_bytes());
            }
        }
        assert_eq!(h, want_hash, "{name}: pieces differ from the reference");
        let o = |x: Option<Token>| x.unwrap_or(-1);
        assert_eq!(
            [o(v.bos()), o(v.eos()), o(v.eot()), o(v.nl())],
            [bos, eos, eot, nl],
            "{name}"
        );
        assert_eq!(v.pad(), None);
        assert_eq!(v.eog_tokens(), eog, "{name}");
    }
}

/// Seeded random strings built from whole items (words, white space runs, contractions,
/// special-token texts of all four vocabs, emoji sequences, marks, controls, random code
/// points), for the check against the reference below.
fn diff_inputs(seed: u64, n: usize) -> Vec<String> {
    const ITEMS: [&[&str]; 10] = [
        &[
            "a",
            "Z",
            "word",
            "Hello",
            " world",
            "ünïcödé",
            "ǅ",
            "ß",
            "ﬁ",
            "İ",
            "Ⅻ",
            "ꙮ",
        ],
        &[
            "0",
            "7",
            "42",
            "123456",
            " 3.14159",
            "½",
            "²",
            "٣",
            "໒",
            "①",
            "𝟙",
            "\u{1D2C0}",
        ],
        &[
            " ", "  ", "   ", "\t", "\n", "\n\n", "\r", "\r\n", " \n ", "\u{a0}", "\u{3000}",
            "\u{85}", "\u{b}", "\u{2028}",
        ],
        &[
            ".", ",", "!", "?", "'", "\"", "(", ")", "...", "$", "+", "<", ">", "`", "~", "|",
            "、", "。", "«", "—", "…", "¿", "‘", "’",
        ],
        &["😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "#️⃣", "❤️", "🏳️‍🌈"],
        &[
            "中文",
            "日本語",
            "한국어",
            "ひらがな",
            "カタカナ",
            "𠀀",
            "𪚥",
            "\u{2EBF0}",
            "\u{31350}",
            "ไทย",
            "العربية",
            "עברית",
            "हिन्दी",
        ],
        &[
            "e\u{301}", "a\u{308}", "\u{200b}", "\u{200d}", "\u{feff}", "▁", "▁▁", "\u{300}",
            "\u{903}",
        ],
        &[
            "\u{1}", "\u{3}", "\u{1b}", "\u{7f}", "\u{80}", "\u{9f}", "\u{1c}", "\u{1e}", "\u{11}",
        ],
        &[
            "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D",
            "’s", " ' ",
        ],
        &[
            "<|eot_id|>",
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<s>",
            "</s>",
            "<unk>",
            "<|endoftext|>",
            ">>TITLE<<",
            ">>MIDDLE<<",
            "<|reserved_special_token_3|>",
            "<|eot_id|",
            "<S>",
        ],
    ];
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let len = [0, 1, 2, 3, 5, 8, 13, 21, 40][rng.below(9)];
            let mut s = String::new();
            for _ in 0..len {
                let k = rng.below(ITEMS.len() + 2);
                if k >= ITEMS.len() {
                    if let Some(c) =
                        char::from_u32(rng.below(0x110000) as u32).filter(|&c| c != '\0')
                    {
                        s.push(c);
                    }
                } else {
                    s.push_str(ITEMS[k][rng.below(ITEMS[k].len())]);
                }
            }
            s
        })
        .collect()
}

/// The per-string lines of `tools/vocab_diff/harness.cpp` for one input: ids in plain and in
/// special mode, each followed by its detokenization with remove_special off and on.
fn diff_lines(v: &Vocab, text: &str, out: &mut String) {
    use std::fmt::Write;
    for mode in [false, true] {
        let ids = v.tokenize(text, mode, mode).unwrap();
        for t in &ids {
            write!(out, " {t}").unwrap();
        }
        out.push('\n');
        for remove in [false, true] {
            for b in v.detokenize(&ids, remove, mode).unwrap() {
                write!(out, "{b:02x}").unwrap();
            }
            out.push('\n');
        }
    }
}

/// Writes the inputs of `matches_reference_on_random_text` for the harness:
/// `BITNET_VOCAB_DIFF_OUT=/tmp/in.inp cargo test --test vocab_vectors -- --ignored write_diff_inputs`
#[test]
#[ignore]
fn write_diff_inputs() {
    let path = std::env::var("BITNET_VOCAB_DIFF_OUT").expect("set BITNET_VOCAB_DIFF_OUT");
    let mut data = Vec::new();
    for s in diff_inputs(DIFF_SEED, DIFF_COUNT) {
        data.extend_from_slice(s.as_bytes());
        data.extend_from_slice(SEPARATOR);
    }
    std::fs::write(path, data).unwrap();
}

const DIFF_SEED: u64 = 0x005E_ED0F_70C3;
const DIFF_COUNT: usize = 1500;

/// Tokenize + detokenize of 1500 random strings in both modes, compared with the reference
/// build's output (`tools/vocab_diff/harness.cpp` on `write_diff_inputs`' file) through an
/// FNV-1a 64 hash of its per-string lines (the first 6 x 1500 lines of the harness dump). On a
/// mismatch, dump both sides with the harness and `examples/vocab_dump.rs` and diff them.
#[test]
fn matches_reference_on_random_text() {
    let cases = [
        ("llama-bpe", 0x517410a8c3e10f38_u64),
        ("llama-spm", 0x2919a076ad31f323),
        ("gpt-2", 0x406d42da9f6be095),
        ("falcon", 0x16eedb36b4dc4232),
    ];
    let inputs = diff_inputs(DIFF_SEED, DIFF_COUNT);
    for (name, want) in cases {
        let Some(v) = load(name) else { return };
        let mut lines = String::new();
        for s in &inputs {
            diff_lines(&v, s, &mut lines);
        }
        let mut h = 0xcbf29ce484222325_u64;
        for &b in lines.as_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        assert_eq!(h, want, "{name}: output differs from the reference's");
    }
}
