//! Arbitrary bytes as text through both tokenizers (BPE and SPM), with and without
//! parse_special; every id must be in the vocabulary and detokenizing must not fail.
#![no_main]

use bitnet::gguf::GgufFile;
use bitnet::Vocab;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn vocabs() -> &'static [Vocab] {
    static V: OnceLock<Vec<Vocab>> = OnceLock::new();
    V.get_or_init(|| {
        let root = std::env::var("BITNET_TEST_DATA").unwrap_or_else(|_| "../../shared".into());
        ["llama-bpe", "llama-spm", "gpt-2", "falcon"]
            .iter()
            .map(|n| {
                let g = GgufFile::open(format!("{root}/vocab/ggml-vocab-{n}.gguf"))
                    .expect("vocab file (set BITNET_TEST_DATA)");
                Vocab::from_gguf(&g).unwrap()
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let v = &vocabs()[(mode & 3) as usize];
    let ids = v
        .tokenize(text, mode & 4 != 0, mode & 8 != 0)
        .expect("tokenize never fails on text");
    assert!(ids.iter().all(|&t| t >= 0 && (t as usize) < v.n_tokens()));
    v.detokenize(&ids, mode & 16 != 0, mode & 32 != 0)
        .expect("detokenize of valid ids");
});
