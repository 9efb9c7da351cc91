//! Model loading checks and Context behaviour: errors for bad models and bad batches, a full
//! cache, logits addressing, KV sequence operations, and the `bitnet-25` arch alias.

mod common;

use bitnet::gguf::{GgufFile, GgufWriter, Value};
use bitnet::sampling::argmax;
use bitnet::tensor::GgmlType;
use bitnet::Arch;
use bitnet::{Batch, Context, ContextParams, ErrorKind, Model};
use std::sync::Arc;

/// The smallest shared model.
const SMALL: &str = "tiny-spm-tq1_0-q6k";

fn small_file() -> Option<GgufFile> {
    let p = bitnet_testdata::path(&format!("models/{SMALL}.gguf"))?;
    Some(GgufFile::open(p).unwrap())
}

/// Rebuilds `src` in memory, letting `edit_kv` rename/drop metadata and `edit_tensor` change a
/// tensor's dims, type or bytes.
fn rebuild(
    src: &GgufFile,
    edit_kv: impl Fn(&str, &Value) -> Option<(String, Value)>,
    edit_tensor: impl Fn(&str, &[usize], GgmlType, &[u8]) -> (Vec<usize>, GgmlType, Vec<u8>),
) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if let Some((k, v)) = edit_kv(k, v) {
            w.set(k, v);
        }
    }
    for t in src.tensors() {
        let view = src.view(t);
        let (dims, ty, data) = edit_tensor(&t.name, &t.dims, t.ty, view.data);
        w.add_tensor(&t.name, &dims, ty, data).unwrap();
    }
    GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap()
}

fn keep(k: &str, v: &Value) -> Option<(String, Value)> {
    Some((k.to_string(), v.clone()))
}

fn same(_: &str, d: &[usize], ty: GgmlType, b: &[u8]) -> (Vec<usize>, GgmlType, Vec<u8>) {
    (d.to_vec(), ty, b.to_vec())
}

#[test]
fn wrong_tensor_shape_is_named() {
    let Some(src) = small_file() else {
        return;
    };
    // Same element count, so the bytes still fit: only the shape is wrong.
    let bad = rebuild(&src, keep, |name, d, ty, b| {
        if name == "blk.1.ffn_up.weight" {
            (vec![d[1], d[0]], ty, b.to_vec())
        } else {
            same(name, d, ty, b)
        }
    });
    let e = Model::from_gguf(bad).unwrap_err();
    assert_eq!(
        e.message(),
        "tensor blk.1.ffn_up.weight: expected [256, 512], file has [512, 256]"
    );
}

#[test]
fn wrong_tensor_type_is_named() {
    let Some(src) = small_file() else {
        return;
    };
    let bad = rebuild(&src, keep, |name, d, ty, b| {
        if name == "blk.0.ffn_norm.weight" {
            (d.to_vec(), GgmlType::F16, b[..b.len() / 2].to_vec())
        } else {
            same(name, d, ty, b)
        }
    });
    let e = Model::from_gguf(bad).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message().contains("blk.0.ffn_norm.weight") && e.message().contains("F16"),
        "{e}"
    );
}

#[test]
fn missing_tensor_and_key_are_named() {
    let Some(src) = small_file() else {
        return;
    };
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        w.set(k.clone(), v.clone());
    }
    for t in src
        .tensors()
        .iter()
        .filter(|t| t.name != "blk.1.attn_v.weight")
    {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
    }
    let f = GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap();
    let e = Model::from_gguf(f).unwrap_err();
    assert_eq!(
        e.message(),
        "tensor blk.1.attn_v.weight: missing from the file"
    );

    let f = rebuild(
        &src,
        |k, v| (k != "bitnet-b1.58.block_count").then(|| (k.to_string(), v.clone())),
        same,
    );
    let e = Model::from_gguf(f).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Metadata);
    assert!(e.message().contains("bitnet-b1.58.block_count"), "{e}");
}

#[test]
fn unsupported_architecture_is_refused() {
    let Some(src) = small_file() else {
        return;
    };
    let f = rebuild(
        &src,
        |k, v| {
            if k == "general.architecture" {
                Some((k.to_string(), Value::String("llama".into())))
            } else {
                keep(k, v)
            }
        },
        same,
    );
    let e = Model::from_gguf(f).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.message().contains("unsupported architecture \"llama\""),
        "{e}"
    );
}

/// The first 2B-4T upload calls the arch `bitnet-25`; with every key renamed the model must
/// load the same hyper-parameters and give the same logits bit for bit.
#[test]
fn bitnet_25_alias_gives_the_same_model() {
    let Some(src) = small_file() else {
        return;
    };
    let renamed = rebuild(
        &src,
        |k, v| {
            if k == "general.architecture" {
                Some((k.to_string(), Value::String("bitnet-25".into())))
            } else if let Some(rest) = k.strip_prefix("bitnet-b1.58.") {
                Some((format!("bitnet-25.{rest}"), v.clone()))
            } else {
                keep(k, v)
            }
        },
        same,
    );
    let a = Arc::new(Model::from_gguf(src).unwrap());
    let b = Arc::new(Model::from_gguf(renamed).unwrap());
    assert_eq!(b.config().arch, Arch::Bitnet25);
    let mut cb = b.config().clone();
    cb.arch = Arch::BitnetB158;
    assert_eq!(&cb, a.config());
    let ids = [1, 450, 4996, 17354, 1701];
    let mut ca = common::context(&a);
    let mut cbx = common::context(&b);
    ca.decode(&Batch::get_one(&ids)).unwrap();
    cbx.decode(&Batch::get_one(&ids)).unwrap();
    assert_eq!(ca.logits(), cbx.logits());
}

fn small_model() -> Option<Arc<Model>> {
    common::load(SMALL)
}

#[test]
fn full_cache_is_a_context_full_error() {
    let Some(model) = small_model() else {
        return;
    };
    let params = ContextParams {
        n_ctx: 32,
        ..common::tracer_params()
    };
    let mut ctx = Context::new(model, params).unwrap();
    assert_eq!(ctx.n_ctx(), 32);
    // One batch larger than the cache: refused, cache untouched.
    let long: Vec<i32> = (0..40).map(|i| 100 + i).collect();
    let e = ctx.decode(&Batch::get_one(&long)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextFull);
    assert_eq!(ctx.kv().used(), 0);
    assert_eq!(ctx.perf().n_p_eval, 0, "failed decodes are not counted");
    // Token by token: 32 fit, the 33rd does not.
    ctx.decode(&Batch::get_one(&long[..20])).unwrap();
    for &t in &long[20..32] {
        ctx.decode(&Batch::get_one(&[t])).unwrap();
    }
    assert_eq!(ctx.kv().used(), 32);
    assert_eq!(ctx.kv().seq_pos_max(0), 31);
    let perf = ctx.perf();
    assert_eq!((perf.n_p_eval, perf.n_eval), (20, 12));
    assert!(perf.t_p_eval_ms > 0.0 && perf.t_eval_ms > 0.0);
    let e = ctx.decode(&Batch::get_one(&[5])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ContextFull);
    assert!(e.message().contains("KV cache full"), "{e}");
    // Freeing room makes decoding possible again.
    ctx.kv_mut().seq_rm(0, 16, -1);
    ctx.decode(&Batch::get_one(&[5])).unwrap();
    assert_eq!(ctx.kv().seq_pos_max(0), 16);
}

#[test]
fn bad_batches_are_refused() {
    let Some(model) = small_model() else {
        return;
    };
    let n_vocab = model.config().n_vocab as i32;
    let mut ctx = common::context(&model);
    let e = ctx.decode(&Batch::get_one(&[1, n_vocab])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidToken);
    assert!(e.message().contains(&n_vocab.to_string()), "{e}");
    assert_eq!(
        ctx.decode(&Batch::get_one(&[-1])).unwrap_err().kind(),
        ErrorKind::InvalidToken
    );
    assert_eq!(
        ctx.decode(&Batch::get_one(&[])).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let too_many: Vec<i32> = vec![1; 513];
    assert_eq!(
        ctx.decode(&Batch::get_one(&too_many)).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let mut b = Batch::new(1);
    b.push(1, 0, &[1], true); // n_seq_max is 1
    assert_eq!(
        ctx.decode(&b).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(ctx.kv().used(), 0);
}

#[test]
fn logits_ith_addresses_outputs_like_llama_cpp() {
    let Some(model) = small_model() else {
        return;
    };
    let mut ctx = common::context(&model);
    let mut b = Batch::new(4);
    for (i, t) in [1, 450, 4996, 17354].into_iter().enumerate() {
        b.push(t, i as i32, &[0], i == 1 || i == 3);
    }
    ctx.decode(&b).unwrap();
    assert_eq!(ctx.n_outputs(), 2);
    let n = model.config().n_vocab;
    assert_eq!(ctx.logits().len(), 2 * n);
    assert_eq!(ctx.logits_ith(1).unwrap(), &ctx.logits()[..n]);
    assert_eq!(ctx.logits_ith(3).unwrap(), &ctx.logits()[n..]);
    assert_eq!(ctx.logits_ith(-1).unwrap(), ctx.logits_ith(3).unwrap());
    assert_eq!(ctx.logits_ith(-2).unwrap(), ctx.logits_ith(1).unwrap());
    assert!(ctx.logits_ith(0).is_err());
    assert!(ctx.logits_ith(4).is_err());
    assert!(ctx.logits_ith(-3).is_err());

    // The last position's logits do not depend on which other rows were requested (with TQ
    // weights every matmul is row-independent; only the lm_head row count changes, and the
    // Q6_K head quantizes each row on its own).
    let mut one = common::context(&model);
    one.decode(&Batch::get_one(&[1, 450, 4996, 17354])).unwrap();
    assert_eq!(one.logits_ith(-1).unwrap(), ctx.logits_ith(3).unwrap());
}

/// Removing the tail of a sequence and evaluating it again reproduces a fresh evaluation
/// exactly (same cells, same kernels).
#[test]
fn seq_rm_then_redecode_matches_a_fresh_context() {
    let Some(model) = small_model() else {
        return;
    };
    let ids = [1, 450, 4996, 17354, 1701, 29916, 432];
    let mut fresh = common::context(&model);
    fresh.decode(&Batch::get_one(&ids[..4])).unwrap();
    fresh.decode(&Batch::get_one(&ids[4..])).unwrap();
    let want = fresh.logits_ith(-1).unwrap().to_vec();

    let mut ctx = common::context(&model);
    ctx.decode(&Batch::get_one(&[1, 450, 4996, 17354, 99, 98, 97, 96]))
        .unwrap();
    ctx.kv_mut().seq_rm(0, 4, -1);
    assert_eq!(ctx.kv().seq_pos_max(0), 3);
    ctx.decode(&Batch::get_one(&ids[4..])).unwrap();
    assert_eq!(ctx.logits_ith(-1).unwrap(), &want[..]);
}

/// Two sequences side by side in one cache: each token only sees its own sequence. Evaluated
/// in one batch, sequence 1 must give the same greedy token as in a context of its own (not the
/// same bits: its cells sit elsewhere, which changes the summation lanes).
#[test]
fn sequences_are_isolated() {
    let Some(model) = small_model() else {
        return;
    };
    let a = [1, 450, 4996, 17354];
    let bq = [1, 1724, 338, 263];
    let params = ContextParams {
        n_seq_max: 2,
        ..common::tracer_params()
    };
    let mut ctx = Context::new(model.clone(), params).unwrap();
    let mut batch = Batch::new(8);
    for (i, &t) in a.iter().enumerate() {
        batch.push(t, i as i32, &[0], i == 3);
    }
    for (i, &t) in bq.iter().enumerate() {
        batch.push(t, i as i32, &[1], i == 3);
    }
    ctx.decode(&batch).unwrap();
    let mut alone = common::context(&model);
    alone.decode(&Batch::get_one(&bq)).unwrap();
    let (x, y) = (ctx.logits_ith(7).unwrap(), alone.logits_ith(-1).unwrap());
    assert_eq!(argmax(x), argmax(y));
    let max = x
        .iter()
        .zip(y)
        .map(|(p, q)| (p - q).abs())
        .fold(0f32, f32::max);
    assert!(
        max < 1e-2,
        "sequence 1 differs from its own evaluation by {max}"
    );
    assert_eq!(ctx.kv().seq_pos_max(1), 3);
    ctx.kv_mut().seq_keep(1);
    assert_eq!(ctx.kv().seq_pos_max(0), -1);
    assert_eq!(ctx.kv().used(), 4);
}

/// seq_add moves positions and the next decode re-rotates the cached K (llama.cpp's K-shift).
/// Attention depends only on relative positions, so shifting a whole sequence by +5 and then
/// evaluating the next token must match the unshifted evaluation up to rounding (the extra F16
/// rounding of the re-rotated K, different angles). Without the K-shift the query at position 15
/// would meet keys still rotated for positions 0..9 and the logits would differ by ~1.
#[test]
fn k_shift_keeps_relative_positions() {
    let Some(model) = common::load("tiny-spm-f32") else {
        return;
    };
    let ids = [1, 450, 4996, 17354, 1701, 29916, 432, 17204, 975, 278];
    let next = 17366;
    let mut ctx = common::context(&model);
    ctx.decode(&Batch::get_one(&ids)).unwrap();
    ctx.kv_mut().seq_add(0, 0, -1, 5).unwrap();
    assert!(ctx.kv().has_shift());
    assert_eq!((ctx.kv().seq_pos_min(0), ctx.kv().seq_pos_max(0)), (5, 14));
    ctx.decode(&Batch::get_one(&[next])).unwrap();
    assert!(!ctx.kv().has_shift());
    assert_eq!(ctx.kv().seq_pos_max(0), 15);
    let shifted = ctx.logits_ith(-1).unwrap().to_vec();

    let mut plain = common::context(&model);
    plain.decode(&Batch::get_one(&ids)).unwrap();
    plain.decode(&Batch::get_one(&[next])).unwrap();
    let want = plain.logits_ith(-1).unwrap();
    let max = shifted
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("K-shift: max |diff| vs the unshifted evaluation {max:.3e}");
    assert_eq!(argmax(&shifted), argmax(want));
    assert!(max < 5e-3, "K-shift result differs by {max}");
}

/// The C API hands contexts and models across threads.
#[test]
fn model_and_context_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Model>();
    send_sync::<Context>();
    send_sync::<Batch>();
}

/// Renames every `bitnet-b1.58.*` key of `src` to `<arch>.*`, optionally adding `.scale` tensors.
fn as_arch(src: &GgufFile, arch: &str, scale: Option<f32>) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if k == "general.architecture" {
            w.set(k.clone(), Value::String(arch.into()));
        } else if let Some(rest) = k.strip_prefix("bitnet-b1.58.") {
            w.set(format!("{arch}.{rest}"), v.clone());
        } else {
            w.set(k.clone(), v.clone());
        }
    }
    for t in src.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())
            .unwrap();
        if let (Some(s), Some(base)) = (scale, t.name.strip_suffix(".weight")) {
            let linear = [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ];
            if linear.iter().any(|l| base.ends_with(l)) {
                w.add_tensor(
                    &format!("{base}.scale"),
                    &[1],
                    GgmlType::F32,
                    s.to_le_bytes().to_vec(),
                )
                .unwrap();
            }
        }
    }
    GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap()
}

fn last_logits(model: Model, ids: &[i32]) -> Vec<f32> {
    let model = Arc::new(model);
    let mut ctx = common::context(&model);
    ctx.decode(&Batch::get_one(ids)).unwrap();
    ctx.logits_ith(-1).unwrap().to_vec()
}

/// llama.cpp's older `bitnet` arch: same skeleton, SiLU FFN, optional per-tensor `.scale`
/// multipliers. (No reference output exists for it here; this checks the wiring.)
#[test]
fn bitnet_arch_uses_silu_and_scales() {
    let Some(p) = bitnet_testdata::path("models/tiny-spm-f32.gguf") else {
        return;
    };
    let src = GgufFile::open(p).unwrap();
    let ids = [1, 450, 4996, 17354, 1701];
    let plain = Model::from_gguf(as_arch(&src, "bitnet", None)).unwrap();
    assert_eq!(plain.config().arch, Arch::Bitnet);
    assert_eq!(plain.config().ffn_activation, bitnet::FfnActivation::Silu);
    let silu = last_logits(plain, &ids);
    // Scales of exactly 1 change nothing (the loaded scales are internal: their effect is
    // what is checked).
    let one = Model::from_gguf(as_arch(&src, "bitnet", Some(1.0))).unwrap();
    assert_eq!(last_logits(one, &ids), silu);
    // Other scales are applied.
    let half = last_logits(
        Model::from_gguf(as_arch(&src, "bitnet", Some(0.5))).unwrap(),
        &ids,
    );
    assert_ne!(half, silu);
    // And the FFN activation differs from bitnet-b1.58's squared ReLU.
    let relu2 = last_logits(Model::from_gguf(src).unwrap(), &ids);
    assert_ne!(relu2, silu);
    assert!(silu.iter().all(|v| v.is_finite()));
}

/// Random sequences of decodes and KV operations (seeded, reproducible): no panic, only the
/// documented error kinds, and the cache's bookkeeping stays consistent.
#[test]
fn random_kv_operations_keep_the_cache_consistent() {
    let Some(model) = small_model() else {
        return;
    };
    let params = ContextParams {
        n_ctx: 64,
        n_batch: 16,
        n_ubatch: 8,
        n_seq_max: 3,
        ..common::tracer_params()
    };
    let mut ctx = Context::new(model.clone(), params).unwrap();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut saved: Option<Vec<u8>> = None;
    for step in 0..400 {
        let op = rnd(10);
        let seq = rnd(3) as i32;
        let result = match op {
            0..=3 => {
                let n = 1 + rnd(12) as usize;
                let mut b = Batch::new(n);
                let start = ctx.kv().seq_pos_max(seq) + 1;
                for i in 0..n {
                    b.push(1 + rnd(1000) as i32, start + i as i32, &[seq], rnd(2) == 0);
                }
                ctx.decode(&b)
            }
            4 => ctx.decode(&Batch::get_one(&[1 + rnd(1000) as i32])),
            5 => {
                let p0 = rnd(40) as i32 - 5;
                ctx.kv_mut().seq_rm(seq, p0, p0 + rnd(20) as i32 - 3);
                Ok(())
            }
            6 => {
                ctx.kv_mut().seq_cp(seq, rnd(3) as i32, -1, -1);
                Ok(())
            }
            7 => ctx
                .kv_mut()
                .seq_add(seq, rnd(10) as i32, -1, rnd(9) as i32 - 4),
            8 => {
                if rnd(4) == 0 {
                    ctx.kv_mut().seq_keep(seq);
                    Ok(())
                } else {
                    ctx.kv_mut().seq_div(seq, 0, -1, 2)
                }
            }
            _ => match saved.take() {
                Some(s) => ctx.state_load(&s).map(|_| ()),
                None => {
                    saved = Some(ctx.state_save());
                    Ok(())
                }
            },
        };
        if let Err(e) = result {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::ContextFull | ErrorKind::InvalidArgument
                ),
                "step {step}: unexpected error {e}"
            );
        }
        let cells = ctx.kv().cells();
        let used = cells.iter().filter(|c| !c.is_empty()).count();
        assert_eq!(ctx.kv().used(), used, "step {step}: used count");
        for s in 0..3 {
            let max = ctx.kv().seq_pos_max(s);
            assert!(max >= -1);
            assert_eq!(
                max == -1,
                !cells.iter().any(|c| c.has_seq(s)),
                "step {step}"
            );
        }
        if ctx.n_outputs() > 0 {
            assert!(ctx.logits().iter().all(|v| v.is_finite()), "step {step}");
        }
    }
}

#[test]
fn released_pages_read_back_the_same_bytes() {
    // head_q8_0 releases the F16 table's pages after copying it: a later read (the embedding
    // lookup) must see the file's bytes again.
    let Some(f) = small_file() else { return };
    let names: Vec<String> = f.tensors().iter().map(|t| t.name.clone()).collect();
    for name in &names {
        let t = f.tensor(name).unwrap();
        let before = t.data.to_vec();
        f.release_pages(t.data);
        assert_eq!(t.data, &before[..], "{name}");
    }
    f.release_pages(&[1, 2, 3]); // not from the map: ignored
}
