//! I2_S files in bitnet.cpp's ARM layout (64-element blocks, docs/i2s-layouts.md): a shared
//! x86-layout model is rewritten the way bitnet.cpp's ARM `quantize_i2_s` packs the same
//! ternary weights, and loads to the original's logits bit for bit when the file or the caller
//! names the layout; contradicting or unknown layout names are refused with a message.

use bitnet::gguf::{GgufFile, GgufWriter, Value};
use bitnet::tensor::i2s_layout::{convert_codes, I2sLayout, BLOCK_SIZE_KEY};
use bitnet::tensor::GgmlType;
use bitnet::{Batch, Context, ContextParams, Model, ModelParams};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A copy of the GGUF at `src` with its I2_S codes in `layout` and, if given, `key` stored
/// under `bitnet.i2_s.block_size`. Everything else is copied unchanged.
fn rewrite(src: &Path, layout: I2sLayout, key: Option<Value>) -> Vec<u8> {
    let f = GgufFile::open(src).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.set(k.clone(), v.clone());
    }
    if let Some(v) = key {
        w.set(BLOCK_SIZE_KEY, v);
    }
    let mut converted = 0;
    for t in f.tensors() {
        let mut data = f.view(t).data.to_vec();
        if t.ty == GgmlType::I2_S {
            let n = t.n_elements();
            convert_codes(&mut data[..n / 4], n, I2sLayout::X86, layout).unwrap();
            converted += 1;
        }
        w.add_tensor(&t.name, &t.dims, t.ty, data).unwrap();
    }
    assert!(converted > 0, "{}: no I2_S tensor", src.display());
    w.to_bytes().unwrap()
}

fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("bitnet-i2s-layout-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The last token's logits after the golden `short_en` prompt.
fn logits(model: Model) -> Vec<f32> {
    let model = Arc::new(model);
    let text =
        std::fs::read(bitnet_testdata::path("golden/tiny-spm-i2_s/short_en.txt").unwrap()).unwrap();
    let prompt = model.vocab().tokenize(text, true, false).unwrap();
    let params = ContextParams {
        n_ctx: 256,
        n_threads: 1,
        n_threads_batch: 1,
        ..Default::default()
    };
    let mut ctx = Context::new(model, params).unwrap();
    ctx.decode(&Batch::get_one(&prompt)).unwrap();
    ctx.logits_ith(-1).unwrap().to_vec()
}

const MODELS: [&str; 2] = ["tiny-spm-i2_s", "tiny-b158-i2_s"];

#[test]
fn arm_layout_named_by_the_file_loads_to_identical_logits() {
    for m in MODELS {
        let Some(path) = bitnet_testdata::path(&format!("models/{m}.gguf")) else {
            return;
        };
        let want = logits(Model::load(&path).unwrap());
        let arm = rewrite(&path, I2sLayout::Arm, Some(Value::U32(64)));
        let got = logits(Model::from_gguf(GgufFile::from_bytes(&arm).unwrap()).unwrap());
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{m}: ARM layout with {BLOCK_SIZE_KEY} = 64"
        );
        // The key in another integer type, and the x86 layout named explicitly.
        let arm_u64 = rewrite(&path, I2sLayout::Arm, Some(Value::U64(64)));
        let x86 = rewrite(&path, I2sLayout::X86, Some(Value::U32(128)));
        for bytes in [arm_u64, x86] {
            let model = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap();
            assert!(logits(model) == want, "{m}");
        }
    }
}

#[test]
fn unmarked_arm_file_needs_the_caller_to_name_the_layout() {
    for m in MODELS {
        let Some(path) = bitnet_testdata::path(&format!("models/{m}.gguf")) else {
            return;
        };
        let want = logits(Model::load(&path).unwrap());
        let arm = write_temp(
            &format!("{m}-arm.gguf"),
            &rewrite(&path, I2sLayout::Arm, None),
        );
        let named = Model::load_with_i2s_layout(&arm, ModelParams::default(), Some(I2sLayout::Arm));
        let got = logits(named.unwrap());
        // Read as the x86 layout it is silently wrong: every matrix's input dimensions are
        // permuted within 128-element spans. The logits show it (this is what the caller's
        // choice or the key is for).
        let misread =
            Model::load_with_i2s_layout(&arm, ModelParams::default(), Some(I2sLayout::X86));
        let wrong = logits(misread.unwrap());
        std::fs::remove_file(&arm).unwrap();
        assert!(got == want, "{m}: ARM layout named by the caller");
        assert!(wrong != want, "{m}: the misread model gave the same logits");
    }
}

#[test]
fn contradicting_or_unknown_layouts_are_refused() {
    let Some(path) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let arm = write_temp(
        "marked-arm.gguf",
        &rewrite(&path, I2sLayout::Arm, Some(Value::U32(64))),
    );
    let e = Model::load_with_i2s_layout(&arm, ModelParams::default(), Some(I2sLayout::X86))
        .unwrap_err();
    std::fs::remove_file(&arm).unwrap();
    assert_eq!(e.kind(), bitnet::ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("refusing to guess"), "{e}");
    assert!(e.message().contains(BLOCK_SIZE_KEY), "{e}");

    for (v, what) in [
        (Value::U32(32), "32-element blocks"),
        (Value::String("64".into()), "expected an integer"),
        (Value::I32(-64), "-64"),
    ] {
        let bytes = rewrite(&path, I2sLayout::X86, Some(v));
        let e = Model::from_gguf(GgufFile::from_bytes(&bytes).unwrap()).unwrap_err();
        assert!(e.message().contains(BLOCK_SIZE_KEY), "{e}");
        assert!(e.message().contains(what), "{e}");
    }
}
