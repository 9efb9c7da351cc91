//! The tokenizer vectors of `../shared/vocab` through the C API, loading the vocabulary files
//! the way llama.cpp's tokenizer tests do: `bitnet_model_load_from_file` with `vocab_only`
//! (architectures llama, gpt2, falcon: files with no tensors), then `bitnet_tokenize` and
//! `bitnet_detokenize` on the model's `bitnet_vocab`. Also: the model queries answer from the
//! file, and creating a context fails with a clear error.

use bitnet::ffi::context::{bitnet_context_default_params, bitnet_init_from_model};
use bitnet::ffi::model::*;
use bitnet::ffi::vocab::*;
use bitnet::ffi::{bitnet_last_error, bitnet_token};
use std::ffi::{CStr, CString};
use std::path::Path;

#[path = "common/vectors.rs"]
mod vectors;
use vectors::{read_inputs, read_outputs, sets, VOCABS};

fn last_error() -> String {
    // SAFETY: bitnet_last_error returns NULL or a NUL-terminated string valid until the next call.
    let p = bitnet_last_error();
    if p.is_null() {
        return String::new();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn load_vocab_only(path: &Path) -> *mut bitnet_model {
    let mut params = bitnet_model_default_params();
    params.vocab_only = true;
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let m = bitnet_model_load_from_file(c.as_ptr(), params);
    assert!(!m.is_null(), "{}: {}", path.display(), last_error());
    m
}

/// `bitnet_tokenize` with llama.cpp's two-call protocol: a short buffer first (the negative
/// result is the count needed), then one of exactly that size.
fn tokenize(vocab: *const bitnet_vocab, text: &[u8], special: bool) -> Vec<bitnet_token> {
    let mut buf = vec![0; 4];
    let n = bitnet_tokenize(
        vocab,
        text.as_ptr().cast(),
        text.len() as i32,
        buf.as_mut_ptr(),
        buf.len() as i32,
        special,
        special,
    );
    if n < 0 {
        assert_ne!(n, i32::MIN, "{}", last_error());
        buf.resize((-n) as usize, 0);
        let m = bitnet_tokenize(
            vocab,
            text.as_ptr().cast(),
            text.len() as i32,
            buf.as_mut_ptr(),
            buf.len() as i32,
            special,
            special,
        );
        assert_eq!(m, -n);
    } else {
        buf.truncate(n as usize);
    }
    buf
}

fn detokenize(vocab: *const bitnet_vocab, ids: &[bitnet_token], special: bool) -> Vec<u8> {
    let n = bitnet_detokenize(
        vocab,
        ids.as_ptr(),
        ids.len() as i32,
        std::ptr::null_mut(),
        0,
        special,
        special,
    );
    let need = if n < 0 { (-n) as usize } else { n as usize };
    let mut buf = vec![0u8; need];
    let m = bitnet_detokenize(
        vocab,
        ids.as_ptr(),
        ids.len() as i32,
        buf.as_mut_ptr().cast(),
        buf.len() as i32,
        special,
        special,
    );
    assert_eq!(m as usize, need, "{}", last_error());
    buf
}

#[test]
fn tokenizer_vectors_through_the_c_api_with_vocab_only() {
    let mut total = 0;
    for name in VOCABS {
        let Some(gguf) = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf")) else {
            return;
        };
        let model = load_vocab_only(&gguf);
        let vocab = bitnet_model_get_vocab(model);
        assert!(!vocab.is_null());
        let rust_vocab =
            bitnet::Vocab::from_gguf(&bitnet::gguf::GgufFile::open(&gguf).unwrap()).unwrap();
        for (inp, out, special) in sets(name) {
            let (Some(inp), Some(out)) = (bitnet_testdata::path(&inp), bitnet_testdata::path(&out))
            else {
                continue;
            };
            let inputs = read_inputs(&inp);
            let expected = read_outputs(&out);
            assert_eq!(inputs.len(), expected.len(), "{}", inp.display());
            assert!(!inputs.is_empty(), "{}", inp.display());
            for (input, want) in inputs.iter().zip(&expected) {
                let got = tokenize(vocab, input, special);
                assert_eq!(
                    &got,
                    want,
                    "{name}: {:?} (special {special})",
                    String::from_utf8_lossy(input)
                );
                // The C detokenizer agrees with the Rust one on the expected ids.
                if total % 50 == 0 {
                    assert_eq!(
                        detokenize(vocab, want, special),
                        rust_vocab.detokenize(want, special, special).unwrap()
                    );
                }
                total += 1;
            }
        }
        bitnet_model_free(model);
    }
    eprintln!("{total} tokenizer vectors passed through the C API");
}

#[test]
fn vocab_only_model_answers_queries_and_refuses_a_context() {
    let Some(gguf) = bitnet_testdata::path("vocab/ggml-vocab-llama-spm.gguf") else {
        return;
    };
    let model = load_vocab_only(&gguf);
    let vocab = bitnet_model_get_vocab(model);
    assert_eq!(bitnet_vocab_n_tokens(vocab), 32000);
    assert_eq!(bitnet_vocab_bos(vocab), 1);
    assert_eq!(bitnet_vocab_eos(vocab), 2);
    assert_eq!(
        bitnet_vocab_type(vocab),
        bitnet_vocab_type::BITNET_VOCAB_TYPE_SPM
    );
    assert_eq!(bitnet_model_n_ctx_train(model), 4096);
    assert_eq!(bitnet_model_n_embd(model), 4096);
    assert_eq!(bitnet_model_n_layer(model), 32);
    assert_eq!(bitnet_model_n_head(model), 32);
    assert_eq!(bitnet_model_n_head_kv(model), 32);
    assert_eq!(bitnet_model_size(model), 0);
    assert_eq!(bitnet_model_n_params(model), 0);
    let mut buf = [0 as std::ffi::c_char; 64];
    let n = bitnet_model_desc(model, buf.as_mut_ptr(), buf.len());
    // SAFETY: bitnet_model_desc NUL-terminates within the buffer.
    let desc = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert_eq!(desc, "llama ?B F16");
    assert_eq!(n as usize, desc.len());
    let key = CString::new("general.name").unwrap();
    let n = bitnet_model_meta_val_str(model, key.as_ptr(), buf.as_mut_ptr(), buf.len());
    // SAFETY: as above.
    let v = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap();
    assert_eq!((n, v), (9, "llama-spm"));

    let ctx = bitnet_init_from_model(model, bitnet_context_default_params());
    assert!(ctx.is_null());
    let err = last_error();
    assert!(err.contains("vocab_only"), "{err}");
    bitnet_model_free(model);

    // Without vocab_only, the same file is not a model bitnet can run: a clear error too.
    let c = CString::new(gguf.to_str().unwrap()).unwrap();
    let m = bitnet_model_load_from_file(c.as_ptr(), bitnet_model_default_params());
    assert!(m.is_null());
    assert!(!last_error().is_empty());
}

#[test]
fn vocab_only_loads_a_runnable_model_file_too() {
    let Some(gguf) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
        return;
    };
    let full = bitnet::Model::load(&gguf).unwrap();
    let model = load_vocab_only(&gguf);
    assert_eq!(
        bitnet_vocab_n_tokens(bitnet_model_get_vocab(model)) as usize,
        full.vocab().n_tokens()
    );
    assert_eq!(bitnet_model_n_embd(model) as usize, full.config().n_embd);
    assert_eq!(bitnet_model_n_layer(model) as usize, full.config().n_layer);
    assert_eq!(bitnet_model_size(model), full.size_bytes());
    bitnet_model_free(model);
}

#[test]
fn vocab_only_on_a_file_without_a_tokenizer_fails_clearly() {
    let dir = std::env::temp_dir().join(format!("bitnet-vocab-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("no-tokenizer.gguf");
    let mut w = bitnet::gguf::GgufWriter::new();
    w.set_str("general.architecture", "llama");
    std::fs::write(&p, w.to_bytes().unwrap()).unwrap();
    let mut params = bitnet_model_default_params();
    params.vocab_only = true;
    let c = CString::new(p.to_str().unwrap()).unwrap();
    let m = bitnet_model_load_from_file(c.as_ptr(), params);
    assert!(m.is_null());
    let err = last_error();
    assert!(err.contains("tokenizer.ggml.model"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
