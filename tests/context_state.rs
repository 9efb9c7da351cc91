//! Saving and restoring context state (llama.h `llama_state_*`): a restored context continues
//! bit for bit, bad data is refused without damage.

mod common;

use bitnet::{Batch, Context, ContextParams, ErrorKind};

const PROMPT: [i32; 6] = [1, 450, 4996, 17354, 1701, 29916];
const NEXT: [i32; 3] = [432, 17204, 975];

fn continue_with(ctx: &mut Context, tokens: &[i32]) -> Vec<Vec<f32>> {
    tokens
        .iter()
        .map(|&t| {
            ctx.decode(&Batch::get_one(&[t])).unwrap();
            ctx.logits_ith(-1).unwrap().to_vec()
        })
        .collect()
}

#[test]
fn restored_state_continues_bit_for_bit() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let mut a = common::context(&model);
    a.decode(&Batch::get_one(&PROMPT)).unwrap();
    let state = a.state_save();
    assert_eq!(state.len(), a.state_size());
    let saved_logits = a.logits().to_vec();
    let want = continue_with(&mut a, &NEXT);

    let mut b = common::context(&model);
    b.decode(&Batch::get_one(&[5, 6, 7])).unwrap(); // overwritten by the load
    assert_eq!(b.state_load(&state).unwrap(), state.len());
    assert_eq!(b.logits(), &saved_logits[..]);
    assert_eq!(b.logits_ith(-1).unwrap(), &saved_logits[..]);
    assert_eq!(b.kv().used(), PROMPT.len());
    assert_eq!(continue_with(&mut b, &NEXT), want);
}

#[test]
fn bad_state_is_refused_and_leaves_the_context_alone() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let mut a = common::context(&model);
    a.decode(&Batch::get_one(&PROMPT)).unwrap();
    let state = a.state_save();
    let mut b = common::context(&model);
    b.decode(&Batch::get_one(&[5, 6, 7])).unwrap();
    for cut in [0, 3, 10, 40, state.len() / 2] {
        let e = b.state_load(&state[..cut]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Format, "cut at {cut}: {e}");
        assert_eq!(b.kv().used(), 3, "cut at {cut}");
    }
    let mut bad = state.clone();
    bad[0] = b'X';
    assert!(b.state_load(&bad).unwrap_err().message().contains("magic"));
    // A context too small for the saved cells.
    let params = ContextParams {
        n_ctx: 32,
        ..common::tracer_params()
    };
    let mut big = common::context(&model);
    let long: Vec<i32> = (0..40).map(|i| 100 + i).collect();
    big.decode(&Batch::get_one(&long)).unwrap();
    let mut small = Context::new(model.clone(), params).unwrap();
    let e = small.state_load(&big.state_save()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // Another model.
    if let Some(other) = common::load("tiny-b158-i2_s-q6k") {
        let mut c = common::context(&other);
        assert!(c.state_load(&state).is_err());
    }
}

#[test]
fn state_file_round_trip() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let mut a = common::context(&model);
    a.decode(&Batch::get_one(&PROMPT)).unwrap();
    let path = std::env::temp_dir().join(format!("bitnet-state-{}.bin", std::process::id()));
    a.state_save_file(&path, &PROMPT).unwrap();
    let want = continue_with(&mut a, &NEXT);
    let mut b = common::context(&model);
    let e = b.state_load_file(&path, 3).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BufferTooSmall);
    assert_eq!(b.state_load_file(&path, 100).unwrap(), PROMPT.to_vec());
    assert_eq!(continue_with(&mut b, &NEXT), want);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn sequence_state_round_trip() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let mut a = common::context(&model);
    a.decode(&Batch::get_one(&PROMPT)).unwrap();
    let seq = a.state_seq_save(0);
    let want = continue_with(&mut a, &NEXT);

    // Into an empty context: the cells land where they were, so the bits are the same.
    let mut b = common::context(&model);
    assert_eq!(b.state_seq_load(&seq, 0).unwrap(), seq.len());
    assert_eq!(b.kv().seq_pos_max(0), PROMPT.len() as i32 - 1);
    assert_eq!(continue_with(&mut b, &NEXT), want);

    // As another sequence beside an existing one.
    let params = ContextParams {
        n_seq_max: 2,
        ..common::tracer_params()
    };
    let mut c = Context::new(model.clone(), params).unwrap();
    c.decode(&Batch::get_one(&[5, 6, 7])).unwrap();
    c.state_seq_load(&seq, 1).unwrap();
    assert_eq!(c.kv().seq_pos_max(1), PROMPT.len() as i32 - 1);
    assert_eq!(c.kv().used(), 3 + PROMPT.len());
    assert!(c.state_seq_load(&seq, 2).is_err());
    assert!(c.state_seq_load(&seq[..seq.len() - 1], 1).is_err());
}
