//! Constrained generation on the shared tiny models: 200 seeded generations under a JSON
//! grammar and generations under 20 JSON schemas, every output checked by Python's `json` and
//! the `jsonschema` package (PyPI), plus seeded determinism of the grammar chain and of the
//! dry / xtc / top-n-sigma / infill samplers on real logits.
//!
//! The outputs are written to files (`$TMPDIR/bitnet-grammar-<pid>/`) and validated by one
//! Python run. Without python3 + jsonschema the validation is skipped with a message, unless
//! `BITNET_REQUIRE_TEST_DATA=1` (CI installs jsonschema in `.ci/grammar.sh`).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bitnet::sampling::grammar::{Grammar, GrammarSampler, GrammarVocab};
use bitnet::sampling::json_schema::to_gbnf;
use bitnet::sampling::{
    Chain, ChainParams, Dist, Dry, Infill, Sampler, Softmax, Temp, TokenDataArray, TopK, TopNSigma,
    Xtc,
};
use bitnet::Model;
use bitnet::{Batch, Context, ContextParams};

struct Generator {
    model: Arc<Model>,
    ctx: Context,
    table: Arc<GrammarVocab>,
    prompt: Vec<i32>,
}

impl Generator {
    fn new(stem: &str) -> Option<Generator> {
        let model = common::load(stem)?;
        let ctx = Context::new(
            model.clone(),
            ContextParams {
                n_ctx: 512,
                n_batch: 512,
                n_ubatch: 512,
                n_seq_max: 1,
                n_threads: 2,
                n_threads_batch: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let table = Arc::new(GrammarVocab::from_vocab(model.vocab()).unwrap());
        let prompt = model
            .vocab()
            .tokenize("Answer in JSON:\n", true, false)
            .unwrap();
        Some(Generator {
            model,
            ctx,
            table,
            prompt,
        })
    }

    /// One seeded generation under `grammar` (top-k 40, temperature 0.9, dist), until an
    /// end-of-generation token. Returns the text the grammar saw and the tokens.
    fn generate(&mut self, grammar: &Arc<Grammar>, seed: u32) -> (Vec<u8>, Vec<i32>) {
        let mut chain = Chain::new(ChainParams::default())
            .with(
                GrammarSampler::from_grammar(self.table.clone(), grammar.clone(), false, &[], &[])
                    .unwrap(),
            )
            .with(TopK { k: 40 })
            .with(Temp { t: 0.9 })
            .with(Softmax)
            .with(Dist::new(seed));
        self.run(&mut chain, 500, true)
    }

    fn run(&mut self, chain: &mut Chain, max_tokens: usize, must_end: bool) -> (Vec<u8>, Vec<i32>) {
        self.ctx.kv_mut().clear();
        self.ctx.decode(&Batch::get_one(&self.prompt)).unwrap();
        let vocab = self.model.vocab();
        let mut text = Vec::new();
        let mut tokens = Vec::new();
        loop {
            let tok = chain
                .sample(self.ctx.logits_ith(-1).unwrap())
                .unwrap_or_else(|e| panic!("after {:?}: {e}", String::from_utf8_lossy(&text)));
            if vocab.is_eog(tok) {
                break;
            }
            tokens.push(tok);
            text.extend_from_slice(&vocab.token_to_piece(tok, 0, true).unwrap());
            if !must_end && tokens.len() >= max_tokens {
                break;
            }
            assert!(
                tokens.len() < max_tokens && self.prompt.len() + tokens.len() < 512,
                "generation did not end after {} tokens: {:?}",
                tokens.len(),
                String::from_utf8_lossy(&text)
            );
            self.ctx.decode(&Batch::get_one(&[tok])).unwrap();
        }
        (text, tokens)
    }
}

fn grammar_file(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/grammar")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// Twenty schemas, every one with a finite language (bounded strings and arrays) so that a
/// random-weight model always finishes.
const SCHEMAS: [&str; 20] = [
    r#"{"type":"boolean"}"#,
    r#"{"type":"integer","minimum":-50,"maximum":1200}"#,
    r#"{"type":"number","minimum":-2.5,"maximum":99.75}"#,
    r#"{"enum":["red","green","blue",7,null]}"#,
    r#"{"const":{"version":2,"ok":true}}"#,
    r#"{"type":"string","minLength":1,"maxLength":12}"#,
    r#"{"type":"string","format":"date"}"#,
    r#"{"type":"string","format":"uuid"}"#,
    r#"{"type":"array","items":{"type":"integer","minimum":0,"maximum":9},"minItems":1,"maxItems":5}"#,
    r#"{"type":"object","properties":{"name":{"type":"string","maxLength":10},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name","age"],"additionalProperties":false}"#,
    r#"{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":"null"},"c":{"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10}}}"#,
    r#"{"type":"object","properties":{"point":{"type":"object","properties":{"x":{"type":"number","minimum":0,"maximum":1},"y":{"type":"number","minimum":0,"maximum":1}},"required":["x","y"]}},"required":["point"]}"#,
    r#"{"anyOf":[{"type":"integer","minimum":0,"maximum":100},{"type":"string","maxLength":5}]}"#,
    r#"{"oneOf":[{"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"integer","minimum":1,"maximum":9}},"required":["kind","r"]},{"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"integer","minimum":1,"maximum":9}},"required":["kind","side"]}]}"#,
    r#"{"type":"array","prefixItems":[{"type":"string","maxLength":4},{"type":"integer","minimum":1,"maximum":3},{"type":"boolean"}]}"#,
    r#"{"type":["integer","null"],"minimum":10,"maximum":20}"#,
    r##"{"$defs":{"tag":{"type":"string","enum":["a","b","c"]}},"type":"object","properties":{"tags":{"type":"array","items":{"$ref":"#/$defs/tag"},"maxItems":3}},"required":["tags"]}"##,
    r#"{"allOf":[{"type":"object","properties":{"id":{"type":"integer","minimum":1,"maximum":999}},"required":["id"]},{"properties":{"label":{"type":"string","maxLength":6}},"required":["label"]}]}"#,
    r#"{"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"q":{"type":"integer","minimum":1,"maximum":5},"sku":{"type":"string","maxLength":4}},"required":["q","sku"]},"maxItems":2}},"required":["items"]}"#,
    r#"{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}"#,
];

fn out_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("bitnet-grammar-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Validates `<dir>/*.json` (each against `<stem before the first '_'>.schema.json` when that
/// file exists, else parse only) with Python. Returns false when it had to skip.
fn validate_with_python(dir: &Path, expected: usize) -> bool {
    let script = r#"
import json, os, sys
try:
    import jsonschema
except ImportError:
    print("SKIP: jsonschema missing"); sys.exit(3)
d = sys.argv[1]
n = 0
for f in sorted(os.listdir(d)):
    if not f.endswith(".json") or f.endswith(".schema.json"):
        continue
    with open(os.path.join(d, f), "rb") as fh:
        raw = fh.read()
    try:
        value = json.loads(raw.decode("utf-8"))
    except Exception as e:
        print("INVALID JSON", f, repr(raw[:200]), e); sys.exit(1)
    sp = os.path.join(d, f.split("_")[0] + ".schema.json")
    if os.path.exists(sp):
        with open(sp) as fh:
            schema = json.load(fh)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        errors = list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(value))
        if errors:
            print("SCHEMA FAIL", f, repr(raw[:200]), errors[0].message); sys.exit(1)
    n += 1
print("OK", n)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output();
    let required = bitnet_testdata::required();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            assert!(
                !required,
                "python3 is needed (BITNET_REQUIRE_TEST_DATA=1): {e}"
            );
            eprintln!("SKIPPED: python3 not found: {e}");
            return false;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(3) {
        assert!(
            !required,
            "pip package jsonschema is needed (BITNET_REQUIRE_TEST_DATA=1)"
        );
        eprintln!("SKIPPED: python jsonschema not installed (pip install jsonschema)");
        return false;
    }
    assert!(
        out.status.success(),
        "validation failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("OK {expected}"));
    eprintln!("python json + jsonschema: {expected} outputs valid");
    true
}

#[test]
fn json_grammar_200_seeded_generations() {
    let Some(mut spm) = Generator::new("tiny-spm-i2_s") else {
        return;
    };
    let Some(mut bpe) = Generator::new("tiny-b158-i2_s-q6k") else {
        return;
    };
    let grammar = Arc::new(Grammar::parse(&grammar_file("json_small.gbnf"), "root").unwrap());
    let dir = out_dir().join("json");
    std::fs::create_dir_all(&dir).unwrap();
    let t = std::time::Instant::now();
    let mut n_tokens = 0;
    for seed in 0..200u32 {
        let g = if seed % 4 == 3 { &mut bpe } else { &mut spm };
        let (text, toks) = g.generate(&grammar, seed);
        n_tokens += toks.len();
        assert!(grammar.accepts(std::str::from_utf8(&text).unwrap()));
        std::fs::write(dir.join(format!("g{seed:03}.json")), &text).unwrap();
    }
    eprintln!(
        "200 JSON-grammar generations: {n_tokens} tokens in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Seeded: the same seed gives the same text.
    let (a, _) = spm.generate(&grammar, 7);
    let (b, _) = spm.generate(&grammar, 7);
    assert_eq!(a, b);
    if validate_with_python(&dir, 200) {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn twenty_json_schemas_generate_valid_json() {
    let Some(mut spm) = Generator::new("tiny-spm-i2_s") else {
        return;
    };
    let Some(mut bpe) = Generator::new("tiny-b158-i2_s") else {
        return;
    };
    let dir = out_dir().join("schemas");
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for (i, schema) in SCHEMAS.iter().enumerate() {
        let gbnf = to_gbnf(schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let grammar = Arc::new(Grammar::parse(&gbnf, "root").unwrap());
        std::fs::write(dir.join(format!("s{i:02}.schema.json")), schema).unwrap();
        for seed in 0..5u32 {
            let g = if seed == 4 { &mut bpe } else { &mut spm };
            let (text, _) = g.generate(&grammar, 1000 + seed);
            std::fs::write(dir.join(format!("s{i:02}_{seed}.json")), &text).unwrap();
            n += 1;
        }
    }
    if validate_with_python(&dir, n) {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// dry, xtc, top-n-sigma and infill in a chain on real logits: same seed, same tokens; and each
/// one changes what a plain chain would pick at least once (they are not no-ops).
#[test]
fn modern_samplers_are_seeded_and_active() {
    let Some(mut g) = Generator::new("tiny-spm-i2_s") else {
        return;
    };
    let model = g.model.clone();
    let vocab = model.vocab();
    let build = |which: &str, seed: u32| -> Chain {
        let mut c = Chain::new(ChainParams::default());
        match which {
            "dry" => c.add(Box::new(
                Dry::new(vocab, 5.0, 1.75, 1, 64, &["\n", ":", "\"", "*"]).unwrap(),
            )),
            "top_n_sigma" => c.add(Box::new(TopNSigma { n: 0.5 })),
            "infill" => {
                c.add(Box::new(TopK { k: 10 }));
                c.add(Box::new(Infill::new(vocab).unwrap()));
            }
            _ => {}
        }
        c.add(Box::new(TopK { k: 40 }));
        c.add(Box::new(Temp { t: 0.7 }));
        if which == "xtc" {
            // After top-k, where some candidates reach the threshold.
            c.add(Box::new(Xtc::new(0.9, 0.02, 1, seed)));
        }
        c.add(Box::new(Softmax));
        c.add(Box::new(Dist::new(seed)));
        c
    };
    let (_, plain) = g.run(&mut build("plain", 5), 60, false).clone_tokens(60);
    for which in ["dry", "xtc", "top_n_sigma", "infill"] {
        let (_, a) = g.run(&mut build(which, 5), 60, false).clone_tokens(60);
        let (_, b) = g.run(&mut build(which, 5), 60, false).clone_tokens(60);
        assert_eq!(a, b, "{which}: same seed, same tokens");
        assert_ne!(a, plain, "{which} changed nothing");
    }
    // The samplers on one real logits row, by their definitions.
    g.ctx.kv_mut().clear();
    g.ctx.decode(&Batch::get_one(&g.prompt)).unwrap();
    let logits = g.ctx.logits_ith(-1).unwrap().to_vec();
    let mut cur = TokenDataArray::from_logits(&logits);
    TopNSigma { n: 1.0 }.apply(&mut cur);
    let finite: Vec<f32> = logits.to_vec();
    let max = finite.iter().cloned().fold(f32::MIN, f32::max);
    let kept = cur.data.iter().filter(|t| t.logit.is_finite()).count();
    assert!(kept >= 1 && kept < logits.len());
    assert!(cur.data.iter().any(|t| t.logit == max));
}

trait CloneTokens {
    fn clone_tokens(self, n: usize) -> (Vec<u8>, Vec<i32>);
}

impl CloneTokens for (Vec<u8>, Vec<i32>) {
    /// The first `n` tokens (runs without a grammar stop at EOG or the token cap).
    fn clone_tokens(mut self, n: usize) -> (Vec<u8>, Vec<i32>) {
        self.1.truncate(n);
        self
    }
}
