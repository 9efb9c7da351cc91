//! Arbitrary batches against the tiny model: tokens (some invalid), positions, sequence ids and
//! logits flags from the input, plus KV-cache operations between decodes. Every call returns a
//! value or an error; none panics, and logits that are returned are finite.
#![no_main]

use bitnet::{Batch, Context};
use libfuzzer_sys::fuzz_target;

mod common;
use common::{model, params};

fuzz_target!(|data: &[u8]| {
    let m = model();
    let Ok(mut ctx) = Context::new(m.clone(), params(64, 32, 16, 4)) else {
        return;
    };
    let n_vocab = m.config().n_vocab as i32;
    for chunk in data.chunks(24).take(8) {
        let op = chunk[0];
        match op % 4 {
            0 | 1 => {
                let mut batch = Batch::new(chunk.len());
                for w in chunk[1..].chunks_exact(3) {
                    let tok = if w[0] == 255 {
                        n_vocab + w[1] as i32
                    } else {
                        (w[0] as i32 * 131 + w[1] as i32) % n_vocab
                    };
                    let pos = (w[2] % 80) as i32 - 4;
                    let seq = (w[1] % 6) as i32 - 1;
                    batch.push(tok, pos, &[seq], w[2] & 1 == 1);
                }
                if ctx.decode(&batch).is_ok() {
                    for i in 0..batch.tokens.len() as i32 {
                        if let Ok(l) = ctx.logits_ith(i) {
                            assert!(l.iter().all(|x| x.is_finite()));
                        }
                    }
                }
            }
            2 => {
                let ids: Vec<i32> = chunk[1..].iter().map(|&b| b as i32 * 100).collect();
                let _ = ctx.decode(&Batch::get_one(&ids));
                let _ = ctx.logits_ith(-1);
            }
            _ => {
                let kv = ctx.kv_mut();
                let (s, p0, p1) = (
                    (chunk.get(1).copied().unwrap_or(0) % 6) as i32 - 1,
                    chunk.get(2).copied().unwrap_or(0) as i32 - 8,
                    chunk.get(3).copied().unwrap_or(0) as i32 - 8,
                );
                match chunk.get(4).copied().unwrap_or(0) % 5 {
                    0 => {
                        kv.seq_rm(s, p0, p1);
                    }
                    1 => kv.seq_cp(s, (s + 1) % 4, p0, p1),
                    2 => kv.seq_keep(s),
                    3 => {
                        let _ = kv.seq_add(s, p0, p1, (chunk.get(5).copied().unwrap_or(0) as i32) - 128);
                    }
                    _ => kv.clear(),
                }
            }
        }
    }
});
