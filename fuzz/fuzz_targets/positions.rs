//! Decode sequences that reach extreme positions and shifts: batches with explicit positions
//! near 0 and near INT32_MAX (and past it: negative), `get_one` batches that continue from the
//! last position, `seq_add` with deltas up to ±INT32_MAX, `seq_div`, `seq_rm` / `seq_cp` /
//! `seq_keep` on any sequence id. After every step the cache keeps its invariants (no used cell
//! with a negative position, sequence ids below n_seq_max, the used count right); a decode
//! or shift that fails leaves the whole context byte for byte as it was.
#![no_main]

use bitnet::{Batch, Context};
use libfuzzer_sys::fuzz_target;

mod common;
use common::{model, params};

const MAX: i32 = i32::MAX;

/// A position or delta from one byte: small values, values near INT32_MAX, extremes.
fn value(b: u8) -> i32 {
    match b >> 5 {
        0 => (b & 31) as i32,                 // 0..31
        1 => MAX - (b & 31) as i32,           // INT32_MAX-31..INT32_MAX
        2 => -((b & 31) as i32) - 1,          // -1..-32
        3 => i32::MIN + (b & 31) as i32,      // INT32_MIN..
        4 => (MAX / 2) - 16 + (b & 31) as i32, // the middle: doubling overflows
        5 => 1 << (b & 31),                   // powers of two (1 << 31 is INT32_MIN)
        6 => -(MAX - (b & 31) as i32),        // -INT32_MAX..
        _ => (b as i32 - 224) * 1000,
    }
}

fn check_invariants(ctx: &Context) {
    let n_seq = ctx.params().n_seq_max as i32;
    let kv = ctx.kv();
    let mut used = 0;
    for c in kv.cells() {
        if c.is_empty() {
            assert!((0..64).all(|s| !c.has_seq(s)), "an empty cell holds sequences");
            continue;
        }
        used += 1;
        assert!(c.pos >= 0);
        assert!((0..n_seq).any(|s| c.has_seq(s)), "a used cell holds no sequence");
        assert!((n_seq..64).all(|s| !c.has_seq(s)), "sequence id >= n_seq_max");
    }
    assert_eq!(used, kv.used(), "used count");
    for s in 0..n_seq {
        let (lo, hi) = (kv.seq_pos_min(s), kv.seq_pos_max(s));
        assert!(lo <= hi && (lo >= 0) == (hi >= 0));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut ctx) = Context::new(model().clone(), params(32, 8, 8, 3)) else {
        return;
    };
    let n_vocab = model().config().n_vocab as i32;
    // Ops of 6 bytes: kind, sequence, three values, one extra.
    for op in data.chunks_exact(6).take(24) {
        let seq = (op[1] % 5) as i32 - 1; // -1 (all) .. 3 (one past n_seq_max)
        let before = ctx.state_save();
        let failed = match op[0] % 8 {
            // Explicit positions: a run of up to 4 tokens from a start position.
            0 | 1 => {
                let start = value(op[2]);
                let n = (op[3] % 4) as i32 + 1;
                let mut b = Batch::new(4);
                for i in 0..n {
                    let tok = (op[4] as i32 * 97 + i) % n_vocab;
                    b.push(tok, start.wrapping_add(i * (op[5] as i32 % 3)), &[seq.max(0)], i == n - 1);
                }
                ctx.decode(&b).is_err()
            }
            // get_one: positions follow the sequence's last one.
            2 | 3 => {
                let toks: Vec<i32> = op[2..2 + (op[3] % 4) as usize + 1]
                    .iter()
                    .map(|&t| t as i32 * 113 % n_vocab)
                    .collect();
                ctx.decode(&Batch::get_one(&toks)).is_err()
            }
            4 => {
                let (p0, p1) = (value(op[2]), value(op[3]));
                ctx.kv_mut().seq_add(seq, p0, p1, value(op[4])).is_err()
            }
            5 => {
                let (p0, p1) = (value(op[2]), value(op[3]));
                ctx.kv_mut().seq_div(seq, p0, p1, value(op[4])).is_err()
            }
            6 => {
                let (p0, p1) = (value(op[2]), value(op[3]));
                match op[5] % 3 {
                    0 => {
                        ctx.kv_mut().seq_rm(seq, p0, p1);
                    }
                    1 => ctx.kv_mut().seq_cp(seq, (op[4] % 4) as i32, p0, p1),
                    _ => ctx.kv_mut().seq_keep(seq),
                }
                false
            }
            _ => {
                // Save and restore the whole state (positions survive the round trip).
                let s = ctx.state_save();
                ctx.state_load(&s).is_err()
            }
        };
        if failed {
            assert!(ctx.state_save() == before, "a failed step changed the context");
        }
        check_invariants(&ctx);
    }
});
