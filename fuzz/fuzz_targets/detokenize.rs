//! Arbitrary token id lists through token_to_piece and detokenize: valid ids give bytes, invalid
//! ids (negative, >= n_vocab) give an error, never a panic.
#![no_main]

use bitnet::gguf::GgufFile;
use bitnet::Vocab;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn vocabs() -> &'static [Vocab] {
    static V: OnceLock<Vec<Vocab>> = OnceLock::new();
    V.get_or_init(|| {
        let root = std::env::var("BITNET_TEST_DATA").unwrap_or_else(|_| "../../shared".into());
        ["llama-bpe", "llama-spm"]
            .iter()
            .map(|n| {
                Vocab::from_gguf(
                    &GgufFile::open(format!("{root}/vocab/ggml-vocab-{n}.gguf")).unwrap(),
                )
                .unwrap()
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let v = &vocabs()[(mode & 1) as usize];
    // Mostly valid ids, some out of range either way.
    let ids: Vec<i32> = rest
        .chunks_exact(4)
        .map(|c| {
            let x = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            if mode & 2 != 0 {
                x
            } else {
                x.rem_euclid(v.n_tokens() as i32)
            }
        })
        .collect();
    let all_valid = ids.iter().all(|&t| t >= 0 && (t as usize) < v.n_tokens());
    let r = v.detokenize(&ids, mode & 4 != 0, mode & 8 != 0);
    assert_eq!(r.is_ok(), all_valid);
    for &t in ids.iter().take(16) {
        let p = v.token_to_piece(t, (mode >> 4) as usize & 3, mode & 64 != 0);
        assert_eq!(p.is_ok(), t >= 0 && (t as usize) < v.n_tokens());
    }
});
