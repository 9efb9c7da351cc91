//! Dumps what the tokenizer does with a set of strings, in the format of
//! `tools/vocab_diff/harness.cpp` (the same dump made with the reference llama.cpp), so the
//! two can be compared with `diff`. See `tools/vocab_diff/README.md`.
//!
//! `cargo run --release --example vocab_dump -- <vocab.gguf> <inputs.inp> <out.txt>`
use std::io::Write;
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        eprintln!("usage: vocab_dump <vocab.gguf> <inputs.inp> <out.txt>");
        std::process::exit(2);
    }
    let f = bitnet::gguf::GgufFile::open(&a[1]).unwrap();
    let v = bitnet::Vocab::from_gguf(&f).unwrap();
    let data = std::fs::read(&a[2]).unwrap();
    let sep = b"\n__ggml_vocab_test__\n";
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a[3]).unwrap());
    let mut rest = &data[..];
    while let Some(p) = rest.windows(sep.len()).position(|w| w == sep) {
        let text = &rest[..p];
        rest = &rest[p + sep.len()..];
        for mode in [false, true] {
            let toks = match v.tokenize(text, mode, mode) {
                Ok(t) => t,
                Err(_) => {
                    writeln!(out, "ERR").unwrap();
                    continue;
                }
            };
            for t in &toks {
                write!(out, " {t}").unwrap();
            }
            writeln!(out).unwrap();
            for rs in [false, true] {
                let b = v.detokenize(&toks, rs, mode).unwrap();
                for x in b {
                    write!(out, "{x:02x}").unwrap();
                }
                writeln!(out).unwrap();
            }
        }
    }
    for t in 0..v.n_tokens() as i32 {
        for sp in [false, true] {
            let b = v.token_to_piece(t, sp as usize, sp).unwrap();
            write!(out, "P{t}.{}:", sp as i32).unwrap();
            for x in b {
                write!(out, "{x:02x}").unwrap();
            }
            writeln!(out).unwrap();
        }
    }
    let o = |x: Option<i32>| x.unwrap_or(-1);
    writeln!(
        out,
        "bos {} eos {} eot {} eom {} nl {} pad {} unk {} addbos {} addeos {}",
        o(v.bos()),
        o(v.eos()),
        o(v.eot()),
        -2,
        o(v.nl()),
        o(v.pad()),
        -2,
        v.add_bos() as i32,
        v.add_eos() as i32
    )
    .unwrap();
    for t in v.eog_tokens() {
        writeln!(out, "eog {t}").unwrap();
    }
}
