//! Samples with golden chain LETTER for MODEL on logits streamed over stdin (n_vocab
//! little-endian f32 per step) and prints each sampled token on its own line.
//! Usage: pyref-golden-sampling MODEL LETTER (driven by ../drive.py).

use std::io::{Read, Write};

#[path = "../../../../../tests/common/golden.rs"]
mod golden;

use golden::{golden_chain, golden_model_info};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} MODEL LETTER", args[0]);
        std::process::exit(2);
    }
    let info = golden_model_info(&args[1]).expect("a golden model name");
    let letter = args[2].chars().next().expect("a chain letter a..h");
    let mut chain = golden_chain(letter, &info).expect("a golden chain");
    let mut buf = vec![0u8; info.n_vocab as usize * 4];
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    while input.read_exact(&mut buf).is_ok() {
        let logits: Vec<f32> = buf
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let token = chain.sample(&logits).expect("a sampled token");
        writeln!(out, "{token}").unwrap();
        out.flush().unwrap();
    }
}
