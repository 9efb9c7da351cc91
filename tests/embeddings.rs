//! Embeddings output (issue 17): the final RMSNorm's output per token, bit for bit the numpy
//! oracle's `output_norm` (`shared/tools/pyref`), pooling NONE / MEAN / CLS / LAST with
//! llama.cpp's semantics, and the refusals (RANK, non-causal attention).

mod common;

use bitnet::{AttentionType, Batch, Context, ContextParams, ErrorKind, Model, PoolingType};
use std::sync::Arc;

fn params(embeddings: bool, pooling: PoolingType) -> ContextParams {
    ContextParams {
        embeddings,
        pooling_type: pooling,
        n_seq_max: 4,
        ..common::tracer_params()
    }
}

fn ctx(model: &Arc<Model>, embeddings: bool, pooling: PoolingType) -> Context {
    Context::new(model.clone(), params(embeddings, pooling)).unwrap()
}

const SPM_IDS: [i32; 5] = [1, 450, 4996, 17354, 29892];
const B158_IDS: [i32; 5] = [128000, 791, 4062, 14198, 9581];

/// `output_norm` fnv of the last id, from
/// `python3 oracle.py dump ../../models/MODEL.gguf --ids IDS --prompt-len 4` (the last id as a
/// one-token decode step after a 4-token prompt) and `--prompt-len 5` (all five in one batch).
const ORACLE: &[(&str, &[i32; 5], u64, u64)] = &[
    (
        "tiny-spm-f32",
        &SPM_IDS,
        0x9a492396dea8396b,
        0xee11e447d8796d85,
    ),
    (
        "tiny-spm-i2_s",
        &SPM_IDS,
        0xfa6de0f840032ecd,
        0xf06230ae57cee58a,
    ),
    (
        "tiny-spm-tq1_0-q6k",
        &SPM_IDS,
        0xac68f166e300ff7b,
        0x8c18529d744ce13f,
    ),
    (
        "tiny-spm-tq2_0-q6k",
        &SPM_IDS,
        0xac68f166e300ff7b,
        0x8c18529d744ce13f,
    ),
    (
        "tiny-b158-i2_s",
        &B158_IDS,
        0x99e0903464b62485,
        0xeea604dbeb4d1e8b,
    ),
    (
        "tiny-b158-i2_s-q6k",
        &B158_IDS,
        0xc11baf88fd683ad5,
        0x19e0c11bd863e459,
    ),
];

#[test]
fn token_embedding_is_the_oracles_final_norm_bit_for_bit() {
    for &(stem, ids, step_fnv, _) in ORACLE {
        let Some(model) = common::load(stem) else {
            return;
        };
        let mut c = ctx(&model, true, PoolingType::None);
        c.decode(&Batch::get_one(&ids[..4])).unwrap();
        // Every prompt token is an output with embeddings on.
        assert_eq!(c.n_outputs(), 4, "{stem}");
        assert_eq!(c.embeddings().unwrap().len(), 4 * 256, "{stem}");
        c.decode(&Batch::get_one(&ids[4..])).unwrap();
        let e = c.embeddings_ith(0).unwrap();
        assert_eq!(e.len(), model.config().n_embd);
        assert_eq!(
            common::fnv1a64(e),
            step_fnv,
            "{stem}: embedding of a decode step differs from the oracle's output_norm"
        );
        assert_eq!(c.embeddings_ith(-1).unwrap(), e);
        assert_eq!(c.embeddings().unwrap(), e);

        // Logits are still computed (llama.cpp computes both), the same bits as without
        // embeddings.
        let mut plain = common::context(&model);
        plain.decode(&Batch::get_one(&ids[..4])).unwrap();
        plain.decode(&Batch::get_one(&ids[4..])).unwrap();
        assert_eq!(
            c.logits_ith(0).unwrap(),
            plain.logits_ith(-1).unwrap(),
            "{stem}"
        );
    }
}

/// With embeddings on, the last layer keeps every row (all tokens are outputs), so its FFN
/// runs as a multi-row matmul; the oracle keeps only the last row there. Where the weight type's
/// kernels give a row the same bits whatever the row count (integer dots: I2_S, TQ1_0, TQ2_0),
/// the last row is still the oracle's; the F32 model's multi-row order (tinyBLAS) differs from
/// the one-row order the oracle takes, as the reference's does.
#[test]
fn last_row_of_a_prompt_batch_is_the_oracles_where_row_count_does_not_matter() {
    for &(stem, ids, _, batch_fnv) in ORACLE {
        let Some(model) = common::load(stem) else {
            return;
        };
        let mut c = ctx(&model, true, PoolingType::None);
        c.decode(&Batch::get_one(ids)).unwrap();
        let got = common::fnv1a64(c.embeddings_ith(-1).unwrap());
        if stem == "tiny-spm-f32" {
            assert_ne!(
                got, batch_fnv,
                "{stem}: expected the multi-row order to differ"
            );
        } else {
            assert_eq!(got, batch_fnv, "{stem}");
        }
        // Without embeddings only the last row reaches the final norm: the oracle's case.
        let mut plain = common::context(&model);
        let mut tapped = None;
        let mut tap = |name: &str, v: &[f32], w: usize| {
            if name == "output_norm" {
                tapped = Some(common::fnv1a64(&v[v.len() - w..]));
            }
        };
        plain.decode_traced(&Batch::get_one(ids), &mut tap).unwrap();
        assert_eq!(tapped, Some(batch_fnv), "{stem}");
    }
}

fn two_sequence_batch() -> Batch {
    // Sequence 0: 4 tokens, sequence 1: 3 tokens, interleaved; positions out of order within
    // sequence 1 to check CLS/LAST go by position, not by batch order.
    let mut b = Batch::new(8);
    // (token, position, sequence)
    let toks: [(i32, i32, i32); 7] = [
        (1, 0, 0),
        (1, 0, 1),
        (450, 1, 0),
        (4996, 2, 0),
        (29892, 2, 1),
        (17354, 3, 0),
        (450, 1, 1),
    ];
    for (t, p, s) in toks {
        b.push(t, p, &[s], false);
    }
    b
}

#[test]
fn pooling_mean_cls_last_follow_llama_cpp() {
    let Some(model) = common::load("tiny-spm-tq2_0-q6k") else {
        return;
    };
    let e = model.config().n_embd;
    let batch = two_sequence_batch();
    let mut none = ctx(&model, true, PoolingType::None);
    none.decode(&batch).unwrap();
    // The logits flags (all false) are overridden: every token is an output.
    assert_eq!(none.n_outputs(), 7);
    assert!(none.embeddings_seq(0).is_none());
    let rows: Vec<Vec<f32>> = (0..7)
        .map(|i| none.embeddings_ith(i).unwrap().to_vec())
        .collect();
    let seq0 = [0usize, 2, 3, 5];
    let seq1 = [1usize, 4, 6];

    for pooling in [PoolingType::Mean, PoolingType::Cls, PoolingType::Last] {
        let mut c = ctx(&model, true, pooling);
        assert_eq!(c.pooling_type(), pooling);
        c.decode(&batch).unwrap();
        assert!(c.embeddings().is_none(), "{pooling:?}: no per-token rows");
        assert!(c.embeddings_ith(0).is_err(), "{pooling:?}");
        assert!(
            c.embeddings_seq(2).is_none(),
            "{pooling:?}: not in the batch"
        );
        assert!(c.embeddings_seq(-1).is_none());
        assert!(c.embeddings_seq(1000).is_none());
        // Logits are still there for every token.
        assert_eq!(c.n_outputs(), 7);
        assert!(c.logits_ith(6).is_ok());
        for (seq, members) in [(0, &seq0[..]), (1, &seq1[..])] {
            let got = c.embeddings_seq(seq).unwrap();
            assert_eq!(got.len(), e);
            match pooling {
                // Lowest position: seq 0 at pos 0 is batch 0; seq 1 at pos 0 is batch 1.
                PoolingType::Cls => assert_eq!(got, &rows[members[0]][..], "CLS seq {seq}"),
                // Highest position: seq 0 at pos 3 is batch 5; seq 1 at pos 2 is batch 4.
                PoolingType::Last => {
                    let last = *members
                        .iter()
                        .max_by_key(|&&i| batch.pos.as_ref().unwrap()[i])
                        .unwrap();
                    assert_eq!(got, &rows[last][..], "LAST seq {seq}");
                }
                _ => {
                    for d in 0..e {
                        let mean: f64 = members.iter().map(|&i| rows[i][d] as f64).sum::<f64>()
                            / members.len() as f64;
                        let diff = (got[d] as f64 - mean).abs();
                        assert!(diff <= 1e-5 * mean.abs().max(1.0), "MEAN seq {seq} dim {d}");
                    }
                }
            }
        }
    }
    // Un-normalized (llama.cpp normalizes in its example, not in the library).
    let norm: f32 = rows[0].iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() > 0.1, "norm {norm}");
}

#[test]
fn mean_of_one_token_is_that_token() {
    let Some(model) = common::load("tiny-spm-i2_s") else {
        return;
    };
    let mut none = ctx(&model, true, PoolingType::None);
    let mut mean = ctx(&model, true, PoolingType::Mean);
    none.decode(&Batch::get_one(&[1])).unwrap();
    mean.decode(&Batch::get_one(&[1])).unwrap();
    assert_eq!(none.embeddings().unwrap(), mean.embeddings_seq(0).unwrap());
}

#[test]
fn pooling_spans_ubatches_of_one_decode() {
    let Some(model) = common::load("tiny-spm-tq1_0-q6k") else {
        return;
    };
    let ids: Vec<i32> = (0..40).map(|i| 100 + i * 7).collect();
    let small = ContextParams {
        n_ubatch: 16,
        ..params(true, PoolingType::Last)
    };
    let mut split = Context::new(model.clone(), small).unwrap();
    split.decode(&Batch::get_one(&ids)).unwrap();
    let mut none = ctx(&model, true, PoolingType::None);
    let mut pieces = ContextParams {
        n_ubatch: 16,
        ..params(true, PoolingType::None)
    };
    pieces.n_seq_max = 1;
    let mut none_split = Context::new(model.clone(), pieces).unwrap();
    none_split.decode(&Batch::get_one(&ids)).unwrap();
    none.decode(&Batch::get_one(&ids)).unwrap();
    // LAST over the whole decode, not the last ubatch's own last row only by accident: same
    // row as the per-token context split the same way.
    assert_eq!(
        split.embeddings_seq(0).unwrap(),
        none_split.embeddings_ith(-1).unwrap()
    );
    assert_eq!(none.embeddings().unwrap().len(), 40 * model.config().n_embd);
}

#[test]
fn embeddings_off_gives_none_and_can_be_switched() {
    let Some(model) = common::load("tiny-spm-tq2_0-q6k") else {
        return;
    };
    let mut c = ctx(&model, false, PoolingType::Unspecified);
    assert_eq!(
        c.pooling_type(),
        PoolingType::None,
        "UNSPECIFIED = the model's = NONE"
    );
    c.decode(&Batch::get_one(&SPM_IDS)).unwrap();
    assert!(c.embeddings().is_none());
    assert_eq!(
        c.embeddings_ith(-1).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(c.n_outputs(), 1);
    c.kv_mut().clear();
    c.set_embeddings(true);
    c.decode(&Batch::get_one(&SPM_IDS)).unwrap();
    assert_eq!(c.n_outputs(), 5);
    assert!(c.embeddings_ith(4).is_ok());
    assert!(c.embeddings_ith(-5).is_ok());
    assert!(c.embeddings_ith(5).is_err());
    assert!(c.embeddings_ith(-6).is_err());
    c.set_embeddings(false);
    c.decode(&Batch::get_one(&[450])).unwrap();
    assert!(c.embeddings().is_none());
}

#[test]
fn embeddings_only_skips_the_logits_and_keeps_the_bits() {
    let Some(model) = common::load("tiny-spm-tq2_0-q6k") else {
        return;
    };
    let mut full = ctx(&model, true, PoolingType::Mean);
    let mut only = Context::new(
        model.clone(),
        ContextParams {
            embeddings_only: true,
            ..params(true, PoolingType::Mean)
        },
    )
    .unwrap();
    full.decode(&Batch::get_one(&SPM_IDS)).unwrap();
    only.decode(&Batch::get_one(&SPM_IDS)).unwrap();
    assert_eq!(full.embeddings_seq(0), only.embeddings_seq(0));
    assert!(only.logits().is_empty());
    assert!(only.logits_ith(-1).is_err());
}

#[test]
fn rank_and_non_causal_are_refused_at_creation() {
    let Some(model) = common::load("tiny-spm-tq2_0-q6k") else {
        return;
    };
    let err = Context::new(model.clone(), params(true, PoolingType::Rank)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("RANK"), "{err}");
    let err = Context::new(
        model.clone(),
        ContextParams {
            attention_type: AttentionType::NonCausal,
            ..params(true, PoolingType::Mean)
        },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("non-causal"), "{err}");
    let ok = Context::new(
        model.clone(),
        ContextParams {
            attention_type: AttentionType::Causal,
            ..params(true, PoolingType::Cls)
        },
    )
    .unwrap();
    assert_eq!(ok.params().attention_type, AttentionType::Causal);
}
