//! Tokenizer speed.
//!
//! Part 1 (default): ms and MB/s to tokenize ~100 kB of mixed text (the reference's extra test
//! strings: prose, code, numbers, many scripts, emoji, control characters) with each vocab.
//!
//! Part 2 (`--scaling`): seconds for one call on 1 / 4 / 16 / 64 MB of four shapes of text per
//! vocab: `prose` (English-like words, spaces, punctuation, line breaks), `nospace` (the same
//! prose with every space and line break removed: one unbroken word), `allspace` (only ' ')
//! and `cjk` (CJK ideographs, no spaces). The time per MB should stay flat as the size grows:
//! the tokenizers are linear in the input length. Texts are made from a fixed seed.
//!
//! ```text
//! BITNET_TEST_DATA=/work/shared cargo bench --bench tokenizer [-- llama-bpe llama-spm]
//! BITNET_TEST_DATA=/work/shared cargo bench --bench tokenizer -- --scaling [--sizes 1,4,16,64]
//!     [--shapes prose,nospace,allspace,cjk] [llama-bpe ...]
//! ```

use bitnet::gguf::GgufFile;
use bitnet::Vocab;
use std::time::Instant;

const TARGET_BYTES: usize = 100_000;
const VOCABS: [&str; 4] = ["llama-bpe", "llama-spm", "gpt-2", "falcon"];
const SHAPES: [&str; 4] = ["prose", "nospace", "allspace", "cjk"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut only = Vec::new();
    let mut scaling = false;
    let mut sizes = vec![1usize, 4, 16, 64];
    let mut shapes: Vec<String> = SHAPES.iter().map(|s| s.to_string()).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scaling" => scaling = true,
            "--sizes" => {
                sizes = it
                    .next()
                    .expect("--sizes 1,4,16")
                    .split(',')
                    .map(|s| s.parse().expect("size in MB"))
                    .collect()
            }
            "--shapes" => {
                shapes = it
                    .next()
                    .expect("--shapes prose,cjk")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            // cargo bench passes --bench.
            s if s.starts_with('-') => {}
            s => only.push(s.to_string()),
        }
    }
    let vocabs: Vec<(&str, Vocab)> = VOCABS
        .iter()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == *n))
        .filter_map(|&name| {
            let p = bitnet_testdata::path(&format!("vocab/ggml-vocab-{name}.gguf"))?;
            let f = GgufFile::open(&p).expect("open vocab");
            Some((name, Vocab::from_gguf(&f).expect("load vocab")))
        })
        .collect();
    if vocabs.is_empty() {
        return;
    }
    if scaling {
        scaling_table(&vocabs, &sizes, &shapes);
    } else {
        mixed(&vocabs);
    }
}

fn mixed(vocabs: &[(&str, Vocab)]) {
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
    for (name, vocab) in vocabs {
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
            "{name:10} detokenize:       {:7.2} ms  {:6.2} MB/s",
            dt * 1e3,
            back.len() as f64 / dt / 1e6
        );
    }
}

fn scaling_table(vocabs: &[(&str, Vocab)], sizes: &[usize], shapes: &[String]) {
    println!("tokenizer scaling: seconds for one call (s/MB), one thread");
    print!("{:10} {:9}", "vocab", "shape");
    for mb in sizes {
        print!(" {:>18}", format!("{mb} MB"));
    }
    println!();
    for shape in shapes {
        let texts: Vec<Vec<u8>> = sizes.iter().map(|&mb| make_text(shape, mb << 20)).collect();
        for (name, vocab) in vocabs {
            print!("{name:10} {shape:9}");
            for text in &texts {
                let t = Instant::now();
                let n = vocab.tokenize(text, false, false).expect("tokenize").len();
                let s = t.elapsed().as_secs_f64();
                let mb = text.len() as f64 / (1 << 20) as f64;
                print!(" {:>18}", format!("{s:.2} ({:.2})", s / mb));
                std::hint::black_box(n);
            }
            println!();
        }
    }
}

/// A deterministic text of `shape` and exactly `bytes` bytes (whole characters).
fn make_text(shape: &str, bytes: usize) -> Vec<u8> {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32
    };
    const WORDS: [&str; 32] = [
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
        "an", "had", "they", "you", "were",
    ];
    let mut out = Vec::with_capacity(bytes + 16);
    match shape {
        "allspace" => out.resize(bytes, b' '),
        "cjk" => {
            while out.len() + 3 <= bytes {
                let cp = (0x4E00 + next() % (0x9FA5 - 0x4E00)) as u32;
                let mut b = [0u8; 4];
                out.extend_from_slice(char::from_u32(cp).unwrap().encode_utf8(&mut b).as_bytes());
            }
            out.resize(bytes, b'x');
        }
        "prose" | "nospace" => {
            let spaces = shape == "prose";
            let mut sentence = 0;
            while out.len() < bytes {
                let w = WORDS[(next() % 32) as usize];
                if sentence == 0 {
                    out.push(w.as_bytes()[0].to_ascii_uppercase());
                    out.extend_from_slice(&w.as_bytes()[1..]);
                } else {
                    out.extend_from_slice(w.as_bytes());
                }
                sentence += 1;
                if sentence > 6 && next() % 5 == 0 {
                    out.push(b'.');
                    sentence = 0;
                    if spaces && next() % 4 == 0 {
                        out.push(b'\n');
                        continue;
                    }
                } else if next() % 11 == 0 {
                    out.push(b',');
                }
                if spaces {
                    out.push(b' ');
                }
            }
            out.truncate(bytes);
        }
        _ => panic!("unknown shape {shape} (prose, nospace, allspace, cjk)"),
    }
    out
}
