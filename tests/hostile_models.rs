//! Model files whose metadata and tensor directory disagree are refused with the key or tensor
//! named (issue 19, item 8): more layers of tensors than `block_count`, tensors no part of the
//! graph uses, an embedding relabelled as I2_S, unknown token types, a `context_length` that
//! does not fit the C API's int32_t.

use bitnet::gguf::{Array, GgufFile, GgufWriter, Value};
use bitnet::tensor::GgmlType;
use bitnet::{ErrorKind, Model};

const SMALL: &str = "tiny-spm-tq1_0-q6k";

fn small_file() -> Option<GgufFile> {
    let p = bitnet_testdata::path(&format!("models/{SMALL}.gguf"))?;
    Some(GgufFile::open(p).unwrap())
}

type Tensor = (String, Vec<usize>, GgmlType, Vec<u8>);

/// `src` rebuilt in memory with its metadata and tensor list passed through the edits.
fn rebuild(
    src: &GgufFile,
    edit_kv: impl Fn(&str, &Value) -> Option<Value>,
    edit_tensors: impl Fn(&mut Vec<Tensor>),
) -> GgufFile {
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata() {
        if let Some(v) = edit_kv(k, v) {
            w.set(k.clone(), v);
        }
    }
    let mut tensors: Vec<Tensor> = src
        .tensors()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dims.clone(),
                t.ty,
                src.view(t).data.to_vec(),
            )
        })
        .collect();
    edit_tensors(&mut tensors);
    for (name, dims, ty, data) in tensors {
        w.add_tensor(&name, &dims, ty, data).unwrap();
    }
    GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap()
}

/// The load error (kind, message) of the small file rebuilt through the edits, or `None`
/// when the shared data is missing (the test is skipped).
fn refused(
    edit_kv: impl Fn(&str, &Value) -> Option<Value>,
    edit_tensors: impl Fn(&mut Vec<Tensor>),
) -> Option<(ErrorKind, String)> {
    let f = rebuild(&small_file()?, edit_kv, edit_tensors);
    let Err(e) = Model::from_gguf(f) else {
        panic!("the file must be refused");
    };
    Some((e.kind(), e.message().to_string()))
}

/// Metadata edit: every key kept, `key` set to `value`.
fn set(key: &'static str, value: Value) -> impl Fn(&str, &Value) -> Option<Value> {
    move |k, v| Some(if k == key { value.clone() } else { v.clone() })
}

/// Metadata edit: every key kept as it is.
fn keep(_: &str, v: &Value) -> Option<Value> {
    Some(v.clone())
}

#[test]
fn the_unedited_rebuild_loads() {
    let Some(src) = small_file() else {
        return;
    };
    let f = rebuild(&src, keep, |_| {});
    assert!(Model::from_gguf(f).is_ok());
}

#[test]
fn block_count_below_the_layers_present_is_refused() {
    let Some((kind, msg)) = refused(set("bitnet-b1.58.block_count", Value::U32(1)), |_| {}) else {
        return;
    };
    assert_eq!(kind, ErrorKind::Format, "{msg}");
    assert!(
        msg.contains("blk.1.") && msg.contains("bitnet-b1.58.block_count = 1"),
        "{msg}"
    );
}

#[test]
fn a_tensor_the_graph_does_not_use_is_refused() {
    let extra = |t: &mut Vec<Tensor>| {
        t.push((
            "blk.0.attn_qkv.weight".into(),
            vec![256],
            GgmlType::F32,
            vec![0; 1024],
        ))
    };
    let Some((kind, msg)) = refused(keep, extra) else {
        return;
    };
    assert_eq!(kind, ErrorKind::Format, "{msg}");
    assert!(
        msg.starts_with("tensor blk.0.attn_qkv.weight: not used"),
        "{msg}"
    );
}

#[test]
fn an_embedding_relabelled_as_i2_s_is_refused() {
    let relabel = |t: &mut Vec<Tensor>| {
        let e = t.iter_mut().find(|t| t.0 == "token_embd.weight").unwrap();
        let n: usize = e.1.iter().product();
        e.2 = GgmlType::I2_S;
        e.3.truncate(n / 4 + 32); // the I2_S size, so only the type is wrong
    };
    let Some((kind, msg)) = refused(keep, relabel) else {
        return;
    };
    assert_eq!(kind, ErrorKind::Unsupported, "{msg}");
    assert!(
        msg.starts_with("tensor token_embd.weight: type 36 (I2_S)"),
        "{msg}"
    );
}

#[test]
fn an_unknown_token_type_is_refused() {
    let types = |k: &str, v: &Value| {
        Some(match (k, v) {
            ("tokenizer.ggml.token_type", Value::Array(Array::I32(t))) => {
                let mut t = t.clone();
                t[300] = 99;
                Value::Array(Array::I32(t))
            }
            _ => v.clone(),
        })
    };
    let Some((kind, msg)) = refused(types, |_| {}) else {
        return;
    };
    assert_eq!(kind, ErrorKind::Metadata, "{msg}");
    assert!(
        msg.starts_with("tokenizer.ggml.token_type: token 300 has type 99"),
        "{msg}"
    );
}

#[test]
fn a_context_length_past_int32_is_refused() {
    for bad in [1u32 << 31, u32::MAX] {
        let Some((kind, msg)) =
            refused(set("bitnet-b1.58.context_length", Value::U32(bad)), |_| {})
        else {
            return;
        };
        assert_eq!(kind, ErrorKind::Metadata, "{msg}");
        assert!(msg.contains("bitnet-b1.58.context_length"), "{msg}");
    }
}
