//! The state reader (`llama_state_set_data`, `llama_state_seq_set_data`, the state files):
//! arbitrary bytes, and valid blobs of the tiny model with input-driven damage (bytes changed,
//! fields overwritten with extreme values, cut short, bytes appended), loaded into contexts
//! with 4 and 1 sequences and smaller caches. A load either succeeds, reading every byte, and
//! leaves a cache that keeps its invariants and a context that decodes; or it fails and leaves
//! the context byte for byte as it was.
#![no_main]

use bitnet::{Batch, Context};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

mod common;
use common::{model, params};

/// A context with two sequences (one sharing a prefix, one shifted) and its state blobs.
struct Valid {
    whole: Vec<u8>,
    seq: Vec<u8>,
}

fn valid() -> &'static Valid {
    static V: OnceLock<Valid> = OnceLock::new();
    V.get_or_init(|| {
        let mut ctx = Context::new(model().clone(), params(64, 32, 32, 4)).unwrap();
        let mut b = Batch::new(16);
        for (i, t) in [1, 450, 4996, 17354, 1701, 29916].iter().enumerate() {
            b.push(*t, i as i32, &[0], i == 5);
        }
        ctx.decode(&b).unwrap();
        ctx.kv_mut().seq_cp(0, 2, 0, 3);
        b.clear();
        b.push(8266, 3, &[2], true);
        ctx.decode(&b).unwrap();
        let _ = ctx.kv_mut().seq_add(2, 0, -1, 5);
        Valid {
            whole: ctx.state_save(),
            seq: ctx.state_seq_save(2),
        }
    })
}

/// Extreme values written over 4-byte fields.
const EXTREMES: [u32; 10] = [
    0,
    1,
    3,
    4,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    0xFFFF_FFFE,
    64,
    65,
];

/// `base` damaged by `ops` (3 bytes each: kind, offset, value).
fn damage(base: &[u8], ops: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for op in ops.chunks_exact(3) {
        let at = (op[1] as usize * 4 + (op[0] as usize >> 4)) % v.len().max(1);
        match op[0] % 5 {
            0 if at < v.len() => v[at] ^= op[2] | 1,
            1 if at + 4 <= v.len() => {
                let x = EXTREMES[op[2] as usize % EXTREMES.len()];
                v[at & !3..(at & !3) + 4].copy_from_slice(&x.to_le_bytes());
            }
            2 => v.truncate(at),
            3 => v.extend(std::iter::repeat_n(op[2], op[1] as usize % 9 + 1)),
            _ => {}
        }
    }
    v
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
        assert!((0..n_seq).any(|s| c.has_seq(s)), "a used cell holds no sequence");
        assert!(
            (n_seq..64).all(|s| !c.has_seq(s)),
            "a cell holds a sequence id >= n_seq_max"
        );
    }
    assert_eq!(used, kv.used(), "used count");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let v = valid();
    // The target context: 4 or 1 sequences, a cache of 64 or 8 cells.
    let n_seq = if mode & 0x10 != 0 { 1 } else { 4 };
    let n_ctx = if mode & 0x20 != 0 { 8 } else { 64 };
    let Ok(mut ctx) = Context::new(model().clone(), params(n_ctx, 32, 32, n_seq)) else {
        return;
    };
    // Start from a non-empty state, so "unchanged" means something.
    let mut b = Batch::new(4);
    b.push(1, 0, &[0], true);
    b.push(315, 1, &[0], true);
    ctx.decode(&b).unwrap();
    let before = ctx.state_save();
    let whole = mode & 1 == 0;
    let blob = match mode >> 1 & 3 {
        0 => rest.to_vec(),
        _ if whole => damage(&v.whole, rest),
        _ => damage(&v.seq, rest),
    };
    let result = if whole {
        ctx.state_load(&blob)
    } else {
        let dst = (rest.first().copied().unwrap_or(0) % 6) as i32 - 1;
        ctx.state_seq_load(&blob, dst)
    };
    match result {
        Err(_) => assert!(ctx.state_save() == before, "a failed load changed the context"),
        Ok(n) => {
            assert_eq!(n, blob.len(), "a load accepted trailing bytes");
            check_invariants(&ctx);
            // Saving again and loading that gives the same state.
            let again = ctx.state_save();
            assert!(ctx.state_load(&again).is_ok());
            assert!(ctx.state_save() == again);
            // The context goes on: one more token (it may be full, or out of positions).
            let _ = ctx.decode(&Batch::get_one(&[29889]));
            check_invariants(&ctx);
        }
    }
});
