//! Tokenizer speed: ms and MB/s to tokenize ~100 kB of mixed text (the reference's extra test
//! strings: prose, code, numbers, many scripts, emoji, control characters) with each vocab.
//!
//! `BITNET_TEST_DATA=/work/shared cargo bench --bench tokenizer [-- llama-bpe llama-spm]`

use bitnet::gguf::GgufFile;
use bitnet::Vocab;
use std::time::Instant;

const TARGET_BYTES: usize = 100_000;

fn main() {
    let Some(inp) = bitnet_testdata::path("vocab/extra/ggml-vocab-llama-bpe.inp") else {
        return;
    };
    let raw = std::fs::read(inp).expect("read test strings");
    let sep: &[u8] = b"\n__ggml_vocab_test__\n";
    let mut one = Vec::new();
    let mut rest = &raw[..];
    while let Some(p) = rest.windows(sep.len()).position(|w| w == sep) {
        one.extend_from_slice(&rest[..p]);
        one.push(b'\n');
        rest = &rest[p + sep.len()..];
    }
    let mut text = Vec::with_capacity(TARGET_BYTES + one.len());
    while text.len() < TARGET_BYTES {
        text.extend_from_slice(&one);
    }
    text.truncate(TARGET_BYTES);
    // Keep whole characters at the end.
    let text = String::from_utf8_lossy(&text).into_owned();

    println!(
        "tokenizer bench: {} bytes of mixed text, one thread",
        text.len()
    );
    // Optional arguments name the vocabs to run (`-- llama-spm`).
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for name in ["llama-bpe", "llama-spm", "gpt-2", "falcon"] {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let Some(p) = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf")) else {
            return;
        };
        let t0 = Instant::now();
        let f = GgufFile::open(&p).expect("open vocab");
        let vocab = Vocab::from_gguf(&f).expect("load vocab");
        let load_ms = t0.elapsed().as_secs_f64() * 1e3;

        for (label, special) in [("plain", false), ("special", true)] {
            let mut best = f64::INFINITY;
            let mut n_tokens = 0;
            for _ in 0..5 {
                let t = Instant::now();
                let ids = vocab.tokenize(&text, special, special).expect("tokenize");
                best = best.min(t.elapsed().as_secs_f64());
                n_tokens = ids.len();
            }
            println!(
                "{name:10} {label:7} tokenize: {:7.2} ms  {:6.2} MB/s  ({n_tokens} tokens; best of 5)",
                best * 1e3,
                text.len() as f64 / best / 1e6
            );
        }
        let ids = vocab.tokenize(&text, false, false).expect("tokenize");
        let mut dt = f64::INFINITY;
        let mut back = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            back = vocab.detokenize(&ids, false, false).expect("detokenize");
            dt = dt.min(t.elapsed().as_secs_f64());
        }
        println!(
            "{name:10} detokenize:       {:7.2} ms  {:6.2} MB/s   (vocab load {load_ms:.0} ms)",
            dt * 1e3,
            back.len() as f64 / dt / 1e6
        );
    }
}
