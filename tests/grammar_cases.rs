//! The GBNF grammar matcher against a table of accept / reject cases: the behaviours llama.cpp
//! documents (grammars/README.md, its grammar integration tests: facts restated here) and our
//! own, over small grammars and the JSON, arithmetic, list and C-like grammars in
//! `tests/data/grammar/`. Also: parse errors, JSON-schema grammars, the grammar sampler on a
//! real 128k vocabulary (with a per-token timing printed to the test log), and the C API.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use bitnet::sampling::grammar::{Grammar, GrammarSampler, GrammarVocab};
use bitnet::sampling::json_schema::to_gbnf;
use bitnet::sampling::{Sampler, TokenDataArray};

fn data(name: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/grammar")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// (grammar, strings it accepts, strings it rejects)
fn table() -> Vec<(String, Vec<&'static str>, Vec<&'static str>)> {
    let g = |s: &str| s.to_string();
    vec![
        // Literals and sequences.
        (
            g(r#"root ::= "abc""#),
            vec!["abc"],
            vec!["", "ab", "abcd", "abd", "ABC"],
        ),
        (
            g(r#"root ::= "a" "b" "c""#),
            vec!["abc"],
            vec!["ac", "abcc"],
        ),
        // Alternatives, grouping.
        (
            g(r#"root ::= "cat" | "dog" | "bird""#),
            vec!["cat", "dog", "bird"],
            vec!["cow", "catdog", "ca"],
        ),
        (
            g(r#"root ::= ("a" | "b") ("c" | "d")"#),
            vec!["ac", "ad", "bc", "bd"],
            vec!["ab", "cd", "a"],
        ),
        // Repetition operators.
        (
            g(r#"root ::= "a"*"#),
            vec!["", "a", "aaaaa"],
            vec!["b", "aab"],
        ),
        (g(r#"root ::= "a"+"#), vec!["a", "aaaa"], vec!["", "ab"]),
        (g(r#"root ::= "a"? "b""#), vec!["b", "ab"], vec!["aab", "a"]),
        (g(r#"root ::= "a"{3}"#), vec!["aaa"], vec!["aa", "aaaa", ""]),
        (
            g(r#"root ::= "a"{2,}"#),
            vec!["aa", "aaaaaa"],
            vec!["a", ""],
        ),
        (
            g(r#"root ::= "a"{0,3}"#),
            vec!["", "a", "aa", "aaa"],
            vec!["aaaa"],
        ),
        (
            g(r#"root ::= "a"{1,2} "b""#),
            vec!["ab", "aab"],
            vec!["b", "aaab"],
        ),
        (
            g(r#"root ::= ("ab"){2,3}"#),
            vec!["abab", "ababab"],
            vec!["ab", "abababab", "aba"],
        ),
        (
            g(r#"root ::= [0-9]{2} "-" [0-9]{2}"#),
            vec!["12-34", "00-99"],
            vec!["1-34", "123-4", "12-3a"],
        ),
        // Character classes: ranges, several ranges, negation, escapes.
        (
            g("root ::= [a-z]+"),
            vec!["hello", "z"],
            vec!["Hello", "", "a1"],
        ),
        (
            g("root ::= [a-zA-Z_] [a-zA-Z0-9_]*"),
            vec!["x", "_a9", "Var_1"],
            vec!["9a", "a-b"],
        ),
        (
            g("root ::= [^abc]+"),
            vec!["xyz", "123", "é"],
            vec!["a", "xa", ""],
        ),
        (
            g(r"root ::= [^\n]+ \n".replace(" \\n", " \"\\n\"").as_str()),
            vec!["line\n"],
            vec!["line", "a\nb\n"],
        ),
        (g(r#"root ::= [\-+]"#), vec!["-", "+"], vec!["\\", "*"]),
        (g(r#"root ::= [\]\[]"#), vec!["]", "["], vec!["\\"]),
        (
            g(r#"root ::= "\x41\u00e9\U0001F600""#),
            vec!["Aé😀"],
            vec!["Ae😀"],
        ),
        (
            g(r#"root ::= "tab\there\r\n""#),
            vec!["tab\there\r\n"],
            vec!["tab here\r\n"],
        ),
        (
            g(r#"root ::= "quote\"back\\""#),
            vec!["quote\"back\\"],
            vec!["quote\"back"],
        ),
        // Unicode classes (hiragana, from the README) and any-char.
        (
            g("root ::= [ぁ-ゟ]+"),
            vec!["ひらがな"],
            vec!["カタカナ", "abc"],
        ),
        (
            g("root ::= . . ."),
            vec!["abc", "a😀c", "   "],
            vec!["ab", "abcd"],
        ),
        (
            g(r#"root ::= "<" .* ">""#),
            vec!["<>", "<a b>", "<>>"],
            vec!["<", "a>"],
        ),
        // Rule references, recursion (right), empty alternatives.
        (
            g("root ::= item (\",\" item)*\nitem ::= [0-9]+"),
            vec!["1", "1,22,333"],
            vec!["1,", ",1", "1,,2"],
        ),
        (
            g("root ::= \"(\" root \")\" | \"\""),
            vec!["", "()", "((()))"],
            vec!["(", "())", ")("],
        ),
        (
            g("root ::= a | b\na ::= \"x\" b?\nb ::= \"y\" | \"z\""),
            vec!["x", "xy", "xz", "y", "z"],
            vec!["xx", "yz", ""],
        ),
        (g("root ::= | \"a\""), vec!["", "a"], vec!["aa"]),
        // Comments and newlines inside groups and after `|`.
        (
            g("# a comment\nroot ::= ( # open\n  \"a\" # first\n  | \"b\"\n) # done\n"),
            vec!["a", "b"],
            vec!["ab"],
        ),
        (g("root ::= \"a\" |\n  \"b\"\n"), vec!["a", "b"], vec!["c"]),
        // The README's list grammar and chess-like numbering.
        (
            g("root ::= (\"- \" item)+\nitem ::= [^\\n]+ \"\\n\""),
            vec!["- one\n", "- one\n- two\n"],
            vec!["- one", "* one\n", "- \n"],
        ),
        (
            g("root ::= \"1. \" m (\" \" [1-9] [0-9]? \". \" m)*\nm ::= [a-h] [1-8]"),
            vec!["1. e4", "1. e4 2. d5 10. a1"],
            vec!["1. e9", "1. e4 0. d5", "1.e4"],
        ),
        // Token references (by id).
        (g("root ::= <[5]> \"a\""), vec![], vec!["a", ""]),
    ]
}

fn file_table() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (
            "json.gbnf",
            vec![
                "{}",
                "{\"a\": 1}",
                "{\"a\":[1,2.5,-3e2,true,false,null],\"b\":{\"c\":\"d\"}}",
                "{ \"k\" : \"v\\n\\u00e9\" }",
                "{\n  \"nested\": [ [], {} ]\n}",
                "{\"n\":-0.5E+10}",
                "{\"s\":\"\\/\"}",
            ],
            vec![
                "[]",
                "{",
                "{\"a\"}",
                "{\"a\":}",
                "{\"a\":01}",
                "{\"a\":1,}",
                "{a:1}",
                "{\"a\":\"\\x\"}",
                "{\"a\":\"tab\there\"}",
                "{\"a\":tru}",
                "{\"a\":1}}",
                "{\"a\":.5}",
            ],
        ),
        (
            "json_small.gbnf",
            vec![
                "{}",
                "{\"a\": 1}",
                "{\"a\": {\"b\": null}, \"c\": [1, \"x\"]}",
                "{\"k_1\": -12.5}",
            ],
            vec![
                "{\"a\": {\"b\": {\"c\": 1}}}",
                "{\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4, \"e\": 5}",
                "{\"A\": 1}",
                "{\"a\": \"01234567890123456\"}",
            ],
        ),
        (
            "arithmetic.gbnf",
            vec![
                "1+2=3\n",
                "(a +b) *c = x\n",
                "x=1\ny=2\n",
                "a1_b/(2-3)= 7\n",
            ],
            vec!["1+2=3", "=3\n", "1++2=3\n", "A=1\n", "1+2\n"],
        ),
        (
            "list.gbnf",
            vec!["- a\n", "- buy milk\n- eggs\n", "- ü and 😀\n"],
            vec!["", "- a", "-a\n", "- \n", "- a\u{2028}b\n", "- a\n-b\n"],
        ),
        (
            "c_like.gbnf",
            vec![
                "",
                "int main(){}",
                "int f(int x){return x*2;}",
                "int main(){int a = 1;while(a<10){a = a+1;}return a;}",
                "float g(){if(x==1){y = 2;}else{y = 3;}}",
                "char h(){// note\nputs (s);}",
            ],
            vec![
                "int main()",
                "main(){}",
                "int main(){int a = ;}",
                "int main(){return 1}",
                "int 9x(){}",
                "double f(){}",
            ],
        ),
    ]
}

#[test]
fn accept_reject_table() {
    let mut n = 0;
    for (text, accept, reject) in table() {
        let g = Grammar::parse(&text, "root").unwrap_or_else(|e| panic!("{text}: {e}"));
        for s in accept {
            assert!(g.accepts(s), "grammar {text:?} should accept {s:?}");
            n += 1;
        }
        for s in reject {
            assert!(!g.accepts(s), "grammar {text:?} should reject {s:?}");
            n += 1;
        }
    }
    for (file, accept, reject) in file_table() {
        let text = data(file);
        let g = Grammar::parse(&text, "root").unwrap_or_else(|e| panic!("{file}: {e}"));
        for s in accept {
            assert!(g.accepts(s), "{file} should accept {s:?}");
            n += 1;
        }
        for s in reject {
            assert!(!g.accepts(s), "{file} should reject {s:?}");
            n += 1;
        }
    }
    assert!(n >= 100, "only {n} cases");
    eprintln!("grammar accept/reject cases: {n}");
}

#[test]
fn parse_errors_are_clear() {
    for (text, needle) in [
        ("root ::= \"abc", "unterminated string literal"),
        ("root ::= [abc", "unterminated character class"),
        ("root ::= (\"a\"", "expecting ')'"),
        ("root ::= \"a\" )", "expecting newline"),
        (
            "root ::= undefined-rule",
            "'undefined-rule' is used but never defined",
        ),
        ("root ::= \"a\"{", "expecting an integer"),
        ("root ::= \"a\"{2,1}", "below the minimum"),
        ("root ::= \"a\"{1 2}", "expecting ',' or '}'"),
        ("root = \"a\"", "expecting ::="),
        ("root ::= \"\\z\"", "unknown escape"),
        ("root ::= \"\\x4\"", "hex digits"),
        ("root ::= [z-a]", "below its start"),
        ("root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
        ("root ::= \"a\"{2001}", "exceeds the limit"),
        ("root ::= (\"a\"{0,40}){0,60}", "more than 2000 rules"),
        ("root ::= <[x]>", "expecting an integer"),
        ("root ::= root \"a\"", "left-recursive at rule 'root'"),
        (
            "root ::= a\na ::= b \"x\"\nb ::= \"y\"? a",
            "left-recursive",
        ),
    ] {
        let e = Grammar::parse(text, "root").unwrap_err();
        assert!(e.message().contains(needle), "{text:?}: {e}");
    }
    let e = Grammar::parse("root ::= \"a\"\n\nitem ::= [a-\n", "root").unwrap_err();
    assert!(e.message().contains("line 3"), "{e}");
    assert!(Grammar::parse("start ::= \"a\"", "root").is_err());
    assert!(Grammar::parse("start ::= \"a\"", "start")
        .unwrap()
        .accepts("a"));
}

#[test]
fn json_schema_cases() {
    // (schema, accepted values, rejected values): facts from llama.cpp's schema tests and ours.
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            r#"{"type":"integer","minimum":0}"#,
            vec!["0", "10", "12", "10000"],
            vec![
                "-1",
                "-10",
                "00",
                "01",
                "-0",
                "100000000000000000000000000000000",
            ],
        ),
        (
            r#"{"type":"integer","minimum":2}"#,
            vec!["2", "3", "10", "20", "1234567890000000"],
            vec!["0", "1", "-1", "02", "12345678900000000"],
        ),
        (
            r#"{"type":"integer","minimum":456}"#,
            vec!["456", "4560", "457", "460", "500"],
            vec!["455", "356", "50", "050", "-456"],
        ),
        (
            r#"{"type":"integer","minimum":-123}"#,
            vec!["-123", "-122", "-11", "-1", "0", "1", "123", "1234"],
            vec!["-1234", "-124"],
        ),
        (
            r#"{"type":"integer","maximum":9999}"#,
            vec!["-99999", "0", "9999"],
            vec!["10000", "99991"],
        ),
        (
            r#"{"type":"integer","maximum":-9999}"#,
            vec!["-10000", "-9999"],
            vec!["-9998", "0", "9999"],
        ),
        (
            r#"{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":8}"#,
            vec!["1", "7"],
            vec!["0", "8", "-1"],
        ),
        (
            r#"{"type":"boolean"}"#,
            vec!["true", "false"],
            vec!["1", "null"],
        ),
        (r#"{"const":"x"}"#, vec!["\"x\""], vec!["\"y\"", "x"]),
        (
            r#"{"enum":["red","amber",3,null]}"#,
            vec!["\"red\"", "\"amber\"", "3", "null"],
            vec!["\"blue\"", "4"],
        ),
        (
            r#"{"type":"string","minLength":2,"maxLength":3}"#,
            vec!["\"ab\"", "\"abc\"", "\"\\n\\t\""],
            vec!["\"a\"", "\"abcd\""],
        ),
        (
            r#"{"type":"string","format":"uuid"}"#,
            vec!["\"12345678-1234-1234-1234-1234567890ab\""],
            vec!["\"12345678-1234-1234-1234-1234567890a\""],
        ),
        (
            r#"{"type":"string","format":"date"}"#,
            vec!["\"2024-12-31\""],
            vec!["\"2024-12-32\"", "\"24-12-31\""],
        ),
        (
            r#"{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3}"#,
            vec!["[1,2]", "[1, 2, 3]"],
            vec!["[1]", "[1,2,3,4]", "[1,\"a\"]"],
        ),
        (
            r#"{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}]}"#,
            vec!["[\"a\", 1.5]"],
            vec!["[1.5, \"a\"]", "[\"a\"]"],
        ),
        (
            r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#,
            vec!["\"x\"", "42"],
            vec!["4.2", "true"],
        ),
        (
            r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name","age"],"additionalProperties":false}"#,
            vec![
                "{\"name\":\"x\",\"age\":150}",
                "{ \"name\": \"\", \"age\": 0 }",
            ],
            vec![
                "{\"name\":\"x\"}",
                "{\"name\":\"x\",\"age\":151}",
                "{\"age\":1,\"name\":\"x\"}",
            ],
        ),
        (
            r#"{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"integer"},"c":{"type":"integer"}}}"#,
            vec![
                "{}",
                "{\"a\":1}",
                "{\"b\":1}",
                "{\"a\":1,\"c\":3}",
                "{\"a\":1,\"b\":2,\"c\":3}",
            ],
            vec!["{\"c\":1,\"a\":2}", "{\"d\":1}"],
        ),
        (
            r#"{"type":"object","additionalProperties":{"type":"integer"}}"#,
            vec!["{}", "{\"anything\":1,\"else\":2}"],
            vec!["{\"a\":\"b\"}"],
        ),
        (
            r#"{"allOf":[{"properties":{"a":{"type":"integer"}},"required":["a"]},{"properties":{"b":{"type":"boolean"}}}]}"#,
            vec!["{\"a\":1}", "{\"a\":1,\"b\":true}"],
            vec!["{\"b\":true}"],
        ),
        (
            r#"{"type":"number","minimum":-1.5,"maximum":2.25}"#,
            vec!["-1.5", "0", "2.25", "2.2", "-0.75", "1"],
            vec!["2.26", "-1.6", "3", "-2"],
        ),
    ];
    for (schema, ok, bad) in cases {
        let gbnf = to_gbnf(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let g = Grammar::parse(&gbnf, "root").unwrap_or_else(|e| panic!("{schema}: {e}\n{gbnf}"));
        for s in ok {
            assert!(g.accepts(s), "{schema} should accept {s}\n{gbnf}");
        }
        for s in bad {
            assert!(!g.accepts(s), "{schema} should reject {s}\n{gbnf}");
        }
    }
}

/// The JSON grammar over the 128k llama-bpe vocabulary (the 2B-4T tokenizer): a constrained
/// walk through a JSON text, one token at a time, checking the grammar allows each real token;
/// prints the time per token of the grammar step beside an unconstrained softmax + dist.
#[test]
fn json_grammar_on_128k_vocab_with_timing() {
    let Some(path) = bitnet_testdata::path("vocab/ggml-vocab-llama-bpe.gguf") else {
        return;
    };
    let m = bitnet::vocab::vocab_only::VocabOnlyModel::load(&path).unwrap();
    let vocab = m.vocab();
    let t0 = std::time::Instant::now();
    let table = Arc::new(GrammarVocab::from_vocab(vocab).unwrap());
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let grammar = Arc::new(Grammar::parse(&data("json.gbnf"), "root").unwrap());
    let text = r#"{"name": "Ada Lovelace", "born": 1815, "tags": ["math", "poetry"], "alive": false, "note": "caf\u00e9 \n ok", "nested": {"x": -1.5e3, "y": [true, null, {}]}}"#;
    let tokens = vocab.tokenize(text, false, false).unwrap();
    let n_vocab = vocab.n_tokens();
    let logits: Vec<f32> = (0..n_vocab)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
        .collect();
    let mut s = GrammarSampler::from_grammar(table.clone(), grammar, false, &[], &[]).unwrap();
    let mut grammar_us = 0u128;
    let mut allowed_total = 0usize;
    for &tok in &tokens {
        let mut cur = TokenDataArray::from_logits(&logits);
        let t = std::time::Instant::now();
        s.apply(&mut cur);
        grammar_us += t.elapsed().as_micros();
        assert!(
            cur.data[tok as usize].logit.is_finite(),
            "token {tok} ({:?}) rejected",
            String::from_utf8_lossy(&vocab.token_to_piece(tok, 0, true).unwrap())
        );
        allowed_total += cur.data.iter().filter(|t| t.logit.is_finite()).count();
        let t = std::time::Instant::now();
        s.accept(tok);
        grammar_us += t.elapsed().as_micros();
        assert!(s.error().is_none(), "{:?}", s.error());
    }
    assert!(s.is_complete());
    // End of generation is allowed now, and any non-space text is not.
    let mut cur = TokenDataArray::from_logits(&logits);
    s.apply(&mut cur);
    let eos = vocab.eos().unwrap() as usize;
    assert!(cur.data[eos].logit.is_finite());
    let x = vocab.tokenize("x", false, false).unwrap()[0] as usize;
    assert!(!cur.data[x].logit.is_finite());
    // The unconstrained reference: softmax + dist over the same logits.
    let mut plain = bitnet::sampling::Chain::new(Default::default())
        .with(bitnet::sampling::Softmax)
        .with(bitnet::sampling::Dist::new(1));
    let t = std::time::Instant::now();
    for _ in &tokens {
        plain.sample(&logits).unwrap();
    }
    let plain_us = t.elapsed().as_micros();
    let n = tokens.len() as f64;
    eprintln!(
        "json grammar, 128k vocab ({} trie nodes, table built in {build_ms:.0} ms): {:.3} ms/token \
         grammar apply+accept vs {:.3} ms/token softmax+dist, {} tokens, {:.0} allowed on average",
        table.trie_nodes(),
        grammar_us as f64 / 1e3 / n,
        plain_us as f64 / 1e3 / n,
        tokens.len(),
        allowed_total as f64 / n
    );
}

fn last_error() -> String {
    let p = bitnet::ffi::bitnet_last_error();
    if p.is_null() {
        return String::new();
    }
    // SAFETY: bitnet_last_error returns NULL or a NUL-terminated string valid until the next call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn c_api_arguments_and_errors() {
    use bitnet::ffi::sampler::*;
    use bitnet::ffi::sampler_ext::*;
    let null_vocab = std::ptr::null();
    let g = CString::new("root ::= \"a\"").unwrap();
    let root = CString::new("root").unwrap();
    assert!(bitnet_sampler_init_grammar(null_vocab, g.as_ptr(), root.as_ptr()).is_null());
    assert!(last_error().contains("vocab is NULL"), "{}", last_error());
    assert!(bitnet_sampler_init_infill(null_vocab).is_null());
    assert!(bitnet_sampler_init_dry(null_vocab, 1.0, 1.75, 2, 64, std::ptr::null(), 0).is_null());
    // Vocab-free samplers.
    let x = bitnet_sampler_init_xtc(0.5, 0.1, 1, 42);
    assert!(!x.is_null());
    assert_eq!(bitnet_sampler_get_seed(x), 42);
    bitnet_sampler_free(x);
    let t = bitnet_sampler_init_top_n_sigma(1.0);
    let name = unsafe { CStr::from_ptr(bitnet_sampler_name(t)) };
    assert_eq!(name.to_str().unwrap(), "top-n-sigma");
    bitnet_sampler_free(t);
    // JSON schema to grammar with snprintf semantics.
    let schema = CString::new(r#"{"type":"boolean"}"#).unwrap();
    let need = bitnet_json_schema_to_grammar(schema.as_ptr(), std::ptr::null_mut(), 0);
    assert!(need > 0);
    let mut buf = vec![0 as std::ffi::c_char; need as usize + 1];
    assert_eq!(
        bitnet_json_schema_to_grammar(schema.as_ptr(), buf.as_mut_ptr(), buf.len()),
        need
    );
    let text = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .unwrap()
        .to_string();
    assert!(Grammar::parse(&text, "root").unwrap().accepts("true"));
    let bad = CString::new(r#"{"type":"string","pattern":"x"}"#).unwrap();
    assert!(bitnet_json_schema_to_grammar(bad.as_ptr(), buf.as_mut_ptr(), buf.len()) < 0);
    assert!(last_error().contains("pattern"), "{}", last_error());
    assert!(bitnet_json_schema_to_grammar(std::ptr::null(), buf.as_mut_ptr(), buf.len()) < 0);

    // With a real vocabulary.
    let Some(path) = bitnet_testdata::path("vocab/ggml-vocab-llama-spm.gguf") else {
        return;
    };
    use bitnet::ffi::model::*;
    let mut params = bitnet_model_default_params();
    params.vocab_only = true;
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let model = bitnet_model_load_from_file(c.as_ptr(), params);
    assert!(!model.is_null(), "{}", last_error());
    let vocab = bitnet_model_get_vocab(model);
    let bad = CString::new("root ::= \"a\" )").unwrap();
    assert!(bitnet_sampler_init_grammar(vocab, bad.as_ptr(), root.as_ptr()).is_null());
    assert!(
        last_error().contains("line 1, column 14"),
        "{}",
        last_error()
    );
    assert!(bitnet_sampler_init_grammar(vocab, g.as_ptr(), std::ptr::null()).is_null());
    let empty = bitnet_sampler_init_grammar(vocab, std::ptr::null(), std::ptr::null());
    assert!(!empty.is_null(), "an empty grammar is a no-op sampler");
    bitnet_sampler_free(empty);
    let s = bitnet_sampler_init_grammar(vocab, g.as_ptr(), root.as_ptr());
    assert!(!s.is_null(), "{}", last_error());
    assert!(bitnet_sampler_init_grammar_lazy_patterns(
        vocab,
        g.as_ptr(),
        root.as_ptr(),
        std::ptr::null(),
        2,
        std::ptr::null(),
        0
    )
    .is_null());
    let pat = CString::new("(\\{").unwrap();
    let pats = [pat.as_ptr()];
    assert!(bitnet_sampler_init_grammar_lazy_patterns(
        vocab,
        g.as_ptr(),
        root.as_ptr(),
        pats.as_ptr(),
        1,
        std::ptr::null(),
        0
    )
    .is_null());
    assert!(last_error().contains("trigger pattern"), "{}", last_error());
    let toks = [1_000_000];
    assert!(bitnet_sampler_init_grammar_lazy_patterns(
        vocab,
        g.as_ptr(),
        root.as_ptr(),
        std::ptr::null(),
        0,
        toks.as_ptr(),
        1
    )
    .is_null());
    // Accepting a token outside the grammar poisons the sampler; apply then empties the
    // candidates; reset recovers.
    let n_vocab = bitnet::ffi::vocab::bitnet_vocab_n_tokens(vocab);
    let mut data: Vec<bitnet_token_data> = (0..n_vocab)
        .map(|i| bitnet_token_data {
            id: i,
            logit: 0.0,
            p: 0.0,
        })
        .collect();
    let mut arr = bitnet_token_data_array {
        data: data.as_mut_ptr(),
        size: data.len(),
        selected: -1,
        sorted: false,
    };
    bitnet_sampler_apply(s, &mut arr);
    let allowed = data.iter().filter(|d| d.logit.is_finite()).count();
    assert!((1..10).contains(&allowed), "{allowed}");
    bitnet_sampler_accept(s, 13); // <0x0A>, not "a"
    arr.size = data.len();
    bitnet_sampler_apply(s, &mut arr);
    assert_eq!(arr.size, 0);
    bitnet_sampler_reset(s);
    let c2 = bitnet_sampler_clone(s);
    assert!(!c2.is_null());
    bitnet_sampler_free(c2);
    bitnet_sampler_free(s);
    let br = [CString::new("\n").unwrap(), CString::new(":").unwrap()];
    let brp: Vec<*const std::ffi::c_char> = br.iter().map(|b| b.as_ptr()).collect();
    let d = bitnet_sampler_init_dry(vocab, 0.8, 1.75, 2, -1, brp.as_ptr(), brp.len());
    assert!(!d.is_null(), "{}", last_error());
    bitnet_sampler_free(d);
    let inf = bitnet_sampler_init_infill(vocab);
    assert!(!inf.is_null(), "{}", last_error());
    bitnet_sampler_free(inf);
    bitnet_model_free(model);
    let _ = Sampler::name(&bitnet::sampling::TopNSigma { n: 1.0 });
}
