//! `bitnet i2s-layout`: the converter writes ARM-layout files (with or without the layout key)
//! that load back to the original model, and the scorer refuses to decide on random weights.

use bitnet::gguf::GgufFile;
use bitnet::tensor::i2s_layout::{I2sLayout, BLOCK_SIZE_KEY};
use bitnet::{Batch, Context, ContextParams, Model, ModelParams};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bitnet-i2s-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn bitnet(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(args)
        .env_remove("BITNET_I2S_LAYOUT")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bitnet {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn logits(model: Model) -> Vec<u32> {
    let model = Arc::new(model);
    let prompt = model
        .vocab()
        .tokenize("Once upon a time", true, false)
        .unwrap();
    let params = ContextParams {
        n_ctx: 256,
        n_threads: 1,
        n_threads_batch: 1,
        ..Default::default()
    };
    let mut ctx = Context::new(model, params).unwrap();
    ctx.decode(&Batch::get_one(&prompt)).unwrap();
    ctx.logits_ith(-1)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn converter_round_trips_and_the_scorer_does_not_guess() {
    let Some(model) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let want = logits(Model::load(&model).unwrap());

    // x86 -> ARM with the key: loads as is.
    let arm = tmp("arm.gguf");
    let said = bitnet(&[
        "i2s-layout",
        s(&model),
        "--from",
        "x86",
        "--to",
        "arm",
        "--write",
        s(&arm),
    ]);
    assert!(said.contains("I2_S tensors rewritten"), "{said}");
    let g = GgufFile::open(&arm).unwrap();
    assert_eq!(g.get_u32(BLOCK_SIZE_KEY).unwrap(), 64);
    assert_eq!(logits(Model::load(&arm).unwrap()), want);
    let verdict = bitnet(&["i2s-layout", s(&arm), "-t", "1"]);
    assert!(verdict.contains("refused"), "{verdict}");
    assert!(
        verdict.contains("verdict: ARM (64-element blocks) (the file says so)"),
        "{verdict}"
    );

    // ARM -> x86 again: the original tensor bytes, plus the key.
    let back = tmp("back.gguf");
    bitnet(&["i2s-layout", s(&arm), "--from", "arm", "--write", s(&back)]);
    let (a, b) = (
        GgufFile::open(&model).unwrap(),
        GgufFile::open(&back).unwrap(),
    );
    assert_eq!(b.get_u32(BLOCK_SIZE_KEY).unwrap(), 128);
    for t in a.tensors() {
        assert_eq!(
            a.view(t).data,
            b.tensor(&t.name).unwrap().data,
            "{}",
            t.name
        );
    }

    // Unmarked ARM file, as bitnet.cpp's ARM llama-quantize writes it: the caller names it.
    let bare = tmp("bare.gguf");
    bitnet(&[
        "i2s-layout",
        s(&model),
        "--from",
        "x86",
        "--to",
        "arm",
        "--no-key",
        "--write",
        s(&bare),
    ]);
    assert!(GgufFile::open(&bare).unwrap().get(BLOCK_SIZE_KEY).is_none());
    let named = Model::load_with_i2s_layout(&bare, ModelParams::default(), Some(I2sLayout::Arm));
    assert_eq!(logits(named.unwrap()), want);

    // Random weights score alike under both layouts: no verdict.
    let verdict = bitnet(&["i2s-layout", s(&bare), "-t", "1"]);
    assert!(verdict.contains("verdict: cannot tell"), "{verdict}");
    assert_eq!(verdict.matches("mean NLL").count(), 2, "{verdict}");

    // A --from that contradicts the file's key is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_bitnet"))
        .args(["i2s-layout", s(&arm), "--from", "x86", "--write", s(&back)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from says"));
    std::fs::remove_dir_all(arm.parent().unwrap()).unwrap();
}

/// stderr of `bitnet generate` (one token) on `model`, with `BITNET_I2S_LAYOUT` set to `env`.
fn generate_stderr(model: &Path, env: Option<&str>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitnet"));
    cmd.args(["generate", "-m", s(model), "-p", "Hi", "-n", "1", "-t", "1"])
        .env_remove("BITNET_I2S_LAYOUT");
    if let Some(v) = env {
        cmd.env("BITNET_I2S_LAYOUT", v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "generate {}: {stderr}",
        model.display()
    );
    stderr
}

/// A file with I2_S tensors and no layout key (every published GGUF, and every file bitnet.cpp
/// writes on ARM) cannot be told apart by anything it carries: the load says so in one line,
/// naming the key, the environment variable and `bitnet i2s-layout`. A file with the key, or
/// a layout named by the caller, loads without it.
#[test]
fn keyless_i2s_file_logs_one_notice() {
    let Some(model) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let notice = |e: &str| {
        e.lines()
            .filter(|l| l.contains(BLOCK_SIZE_KEY) && l.contains("bitnet i2s-layout"))
            .count()
    };
    let e = generate_stderr(&model, None);
    assert_eq!(notice(&e), 1, "{e}");
    assert!(e.contains("BITNET_I2S_LAYOUT=arm"), "{e}");
    let e = generate_stderr(&model, Some("x86"));
    assert_eq!(notice(&e), 0, "{e}");

    let marked = tmp("marked.gguf");
    bitnet(&[
        "i2s-layout",
        s(&model),
        "--from",
        "x86",
        "--write",
        s(&marked),
    ]);
    let e = generate_stderr(&marked, None);
    std::fs::remove_file(&marked).unwrap();
    assert_eq!(notice(&e), 0, "{e}");
}
