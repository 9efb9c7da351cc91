//! `bitnet generate --grammar / --json-schema`: the output after the prompt is in the grammar.

use bitnet::sampling::grammar::Grammar;
use bitnet::sampling::json_schema::to_gbnf;
use bitnet_testdata as testdata;

fn tmp(name: &str, text: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("bitnet-cli-grammar-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn generate(model: &std::path::Path, flag: &str, file: &std::path::Path, seed: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["generate", "-m"])
        .arg(model)
        .args([
            "-p", "Q:", "-n", "200", "--temp", "0.8", "--seed", seed, flag,
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.strip_prefix("Q:")
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn grammar_and_json_schema_flags_constrain_the_output() {
    let Some(model) = testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let gbnf = "root ::= \"{\\\"n\\\": \" [0-9]{1,3} \"}\"\n";
    let g = tmp("n.gbnf", gbnf);
    let grammar = Grammar::parse(gbnf, "root").unwrap();
    for seed in ["1", "2", "3"] {
        let out = generate(&model, "--grammar", &g, seed);
        assert!(grammar.accepts(&out), "{out:?}");
    }
    let schema = r#"{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer","minimum":1,"maximum":5}},"required":["ok","n"]}"#;
    let s = tmp("s.json", schema);
    let grammar = Grammar::parse(&to_gbnf(schema).unwrap(), "root").unwrap();
    for seed in ["1", "2"] {
        let out = generate(&model, "--json-schema", &s, seed);
        assert!(grammar.accepts(&out), "{out:?}");
    }
    // Errors are clear: a schema given as a grammar, both flags at once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["generate", "-m"])
        .arg(&model)
        .arg("--grammar")
        .arg(&s)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("grammar parse error at line 1"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["generate", "-m"])
        .arg(&model)
        .arg("--grammar")
        .arg(&g)
        .arg("--json-schema")
        .arg(&s)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not both"));
}
