//! Malformed GGUF input: every case gives a clear error of the right kind, never a panic or an
//! out-of-bounds read. Also the writer → reader round trip for every tensor type.

use bitnet::gguf::{Array, GgufFile, GgufWriter, Value};
use bitnet::tensor::{self, blocks::as_bytes, GgmlType};
use bitnet::ErrorKind;

/// Hand-assembles GGUF bytes so each field can be corrupted on purpose.
#[derive(Default, Clone)]
struct Raw(Vec<u8>);

impl Raw {
    fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        let mut r = self.u64(s.len() as u64);
        r.0.extend_from_slice(s.as_bytes());
        r
    }
    fn header(self, n_tensors: u64, n_kv: u64) -> Self {
        self.u32(0x4655_4747).u32(3).u64(n_tensors).u64(n_kv)
    }
    /// A tensor info: name, dims, type id, offset.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(mut self, n: usize) -> Self {
        self.0.resize(self.0.len().div_ceil(32) * 32, 0);
        self.0.extend(std::iter::repeat_n(0x11u8, n));
        self
    }
}

/// One F32 tensor of 8 elements (32 bytes) after one string KV: a valid file.
fn valid() -> Raw {
    Raw::default()
        .header(1, 1)
        .str("general.name")
        .u32(8)
        .str("ok")
        .tensor("t", &[8], 0, 0)
        .data(32)
}

#[test]
fn the_valid_base_file_parses() {
    let g = GgufFile::from_bytes(&valid().0).unwrap();
    assert_eq!(g.get_str("general.name").unwrap(), "ok");
    assert_eq!(g.tensor("t").unwrap().data.len(), 32);
}

#[test]
fn malformed_files_give_clear_errors() {
    let cases: Vec<(&str, Vec<u8>, ErrorKind, &str)> = vec![
        (
            "wrong magic",
            Raw::default().u32(0x4655_4748).u32(3).u64(0).u64(0).0,
            ErrorKind::Format,
            "magic",
        ),
        ("empty", vec![], ErrorKind::Format, "truncated"),
        (
            "version 1",
            Raw::default().u32(0x4655_4747).u32(1).u64(0).u64(0).0,
            ErrorKind::Unsupported,
            "version 1",
        ),
        (
            "version 4",
            Raw::default().u32(0x4655_4747).u32(4).u64(0).u64(0).0,
            ErrorKind::Unsupported,
            "version 4",
        ),
        (
            "big-endian",
            Raw::default()
                .u32(0x4655_4747)
                .u32(3u32.swap_bytes())
                .u64(0)
                .u64(0)
                .0,
            ErrorKind::Unsupported,
            "big-endian",
        ),
        (
            "truncated header",
            Raw::default().u32(0x4655_4747).u32(3).u64(0).0,
            ErrorKind::Format,
            "truncated",
        ),
        (
            "truncated metadata string",
            Raw::default()
                .header(0, 1)
                .str("general.name")
                .u32(8)
                .u64(10)
                .0,
            ErrorKind::Format,
            "general.name",
        ),
        (
            "absurd string length",
            Raw::default().header(0, 1).str("k").u32(8).u64(1 << 60).0,
            ErrorKind::Format,
            "string length",
        ),
        (
            "absurd key length",
            Raw::default().header(0, 1).u64(1 << 60).u64(0).u64(0).0,
            ErrorKind::Format,
            "string length",
        ),
        (
            "absurd array count",
            Raw::default()
                .header(0, 1)
                .str("a")
                .u32(9)
                .u32(4)
                .u64(1 << 60)
                .0,
            ErrorKind::Format,
            "array of",
        ),
        (
            "absurd string array count",
            Raw::default()
                .header(0, 1)
                .str("a")
                .u32(9)
                .u32(8)
                .u64(1 << 60)
                .0,
            ErrorKind::Format,
            "array of",
        ),
        (
            "absurd kv count",
            Raw::default().header(0, 1 << 60).0,
            ErrorKind::Format,
            "metadata count",
        ),
        (
            "absurd tensor count",
            Raw::default().header(1 << 60, 0).0,
            ErrorKind::Format,
            "tensor count",
        ),
        (
            "unknown value type",
            Raw::default().header(0, 1).str("k").u32(13).0,
            ErrorKind::Format,
            "value type 13",
        ),
        (
            "bad bool",
            Raw::default()
                .header(0, 1)
                .str("k")
                .u32(7)
                .0
                .into_iter()
                .chain([2u8])
                .collect(),
            ErrorKind::Format,
            "bool",
        ),
        (
            "duplicate key",
            Raw::default()
                .header(0, 2)
                .str("k")
                .u32(4)
                .u32(1)
                .str("k")
                .u32(4)
                .u32(2)
                .0,
            ErrorKind::Format,
            "duplicate",
        ),
        (
            "bad alignment",
            Raw::default()
                .header(0, 1)
                .str("general.alignment")
                .u32(4)
                .u32(3)
                .0,
            ErrorKind::Format,
            "alignment",
        ),
        (
            "tensor data past end of file",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[8], 0, 0)
                .data(16)
                .0,
            ErrorKind::Format,
            "needs 32 bytes",
        ),
        (
            "misaligned offset",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[8], 0, 4)
                .data(64)
                .0,
            ErrorKind::Format,
            "alignment",
        ),
        (
            "overlapping tensors",
            Raw::default()
                .header(2, 0)
                .tensor("a", &[16], 0, 0)
                .tensor("b", &[8], 0, 32)
                .data(96)
                .0,
            ErrorKind::Format,
            "overlap",
        ),
        (
            "duplicate tensor",
            Raw::default()
                .header(2, 0)
                .tensor("a", &[8], 0, 0)
                .tensor("a", &[8], 0, 32)
                .data(64)
                .0,
            ErrorKind::Format,
            "duplicate tensor",
        ),
        (
            "unknown type id",
            Raw::default()
                .header(1, 0)
                .tensor("w", &[8], 12, 0)
                .data(32)
                .0,
            ErrorKind::Unsupported,
            "tensor w: ggml type 12",
        ),
        (
            "zero dim",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[8, 0], 0, 0)
                .data(32)
                .0,
            ErrorKind::Format,
            "dimension 1 is 0",
        ),
        (
            "negative dim",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[u64::MAX], 0, 0)
                .data(32)
                .0,
            ErrorKind::Format,
            "dimension 0 is -1",
        ),
        (
            "dims overflow",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[1 << 40, 1 << 40], 0, 0)
                .data(32)
                .0,
            ErrorKind::Format,
            "overflow",
        ),
        (
            "five dims",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[1, 1, 1, 1, 8], 0, 0)
                .data(32)
                .0,
            ErrorKind::Format,
            "5 dimensions",
        ),
        (
            "partial block",
            Raw::default()
                .header(1, 0)
                .tensor("t", &[100], 35, 0)
                .data(66)
                .0,
            ErrorKind::Format,
            "block size",
        ),
        (
            "truncated tensor info",
            Raw::default().header(1, 0).str("t").u32(2).u64(8).u64(8).0,
            ErrorKind::Format,
            "truncated",
        ),
    ];
    for (what, bytes, kind, needle) in cases {
        let e = GgufFile::from_bytes(&bytes).expect_err(what);
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert!(
            e.message().contains(needle),
            "{what}: message {:?} lacks {needle:?}",
            e.message()
        );
    }
}

#[test]
fn every_truncation_and_byte_flip_is_an_error_or_a_valid_file() {
    let mut w = GgufWriter::new();
    w.set_str("general.architecture", "bitnet-b1.58");
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(vec!["a".into(), "bc".into()])),
    );
    w.add_tensor("x", &[256, 2], GgmlType::TQ2_0, vec![7; 132])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    let g = GgufFile::from_bytes(&bytes).unwrap();
    // The writer pads the last tensor to the alignment; cutting only that padding leaves a
    // complete file.
    let end = g.data_offset() + g.tensors()[0].offset + g.tensors()[0].size;
    for n in end..bytes.len() {
        GgufFile::from_bytes(&bytes[..n]).unwrap();
    }
    for n in 0..end {
        let e = GgufFile::from_bytes(&bytes[..n]).expect_err("prefix must not parse");
        assert!(
            matches!(e.kind(), ErrorKind::Format | ErrorKind::Unsupported),
            "{n}: {e}"
        );
    }
    // Flip each header byte: any outcome but a panic is acceptable.
    let data_at = GgufFile::from_bytes(&bytes).unwrap().data_offset();
    for i in 0..data_at {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            let _ = GgufFile::from_bytes(&b);
        }
    }
}

#[test]
fn writer_reader_round_trip_for_every_type() {
    let x: Vec<f32> = (0..512)
        .map(|i| ((i * 7919 % 23) as f32 - 11.0) * 0.01)
        .collect();
    let ternary: Vec<f32> = (0..512)
        .map(|i| ((i * 31 % 3) as f32 - 1.0) * 0.02)
        .collect();
    let f16: Vec<u8> = x
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = x
        .iter()
        .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
        .collect();
    let f32b: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors: Vec<(GgmlType, Vec<u8>)> = vec![
        (GgmlType::F32, f32b),
        (GgmlType::F16, f16),
        (GgmlType::BF16, bf16),
        (
            GgmlType::Q8_0,
            as_bytes(&tensor::quantize_q8_0(&x)).to_vec(),
        ),
        (
            GgmlType::Q6_K,
            as_bytes(&tensor::quantize_q6_k(&x)).to_vec(),
        ),
        (
            GgmlType::TQ1_0,
            as_bytes(&tensor::quantize_tq1_0(&ternary)).to_vec(),
        ),
        (
            GgmlType::TQ2_0,
            as_bytes(&tensor::quantize_tq2_0(&ternary)).to_vec(),
        ),
        (GgmlType::I2_S, tensor::quantize_i2_s(&ternary)),
    ];
    let mut w = GgufWriter::new();
    let kvs = vec![
        ("u8", Value::U8(1)),
        ("i8", Value::I8(-2)),
        ("u16", Value::U16(3)),
        ("i16", Value::I16(-4)),
        ("u32", Value::U32(5)),
        ("i32", Value::I32(-6)),
        ("f32", Value::F32(7.5)),
        ("bool", Value::Bool(true)),
        ("str", Value::String("ünï".into())),
        ("u64", Value::U64(1 << 40)),
        ("i64", Value::I64(-(1 << 40))),
        ("f64", Value::F64(0.25)),
        ("arr", Value::Array(Array::F32(vec![1.0, 2.0]))),
        (
            "nested",
            Value::Array(Array::Array(vec![
                Array::I32(vec![1]),
                Array::String(vec!["x".into()]),
            ])),
        ),
    ];
    for (k, v) in &kvs {
        w.set(*k, v.clone());
    }
    for (ty, data) in &tensors {
        w.add_tensor(&format!("t.{ty}"), &[256, 2], *ty, data.clone())
            .unwrap();
    }
    let g = GgufFile::from_bytes(&w.to_bytes().unwrap()).unwrap();
    for (k, v) in &kvs {
        assert_eq!(g.get(k), Some(v), "{k}");
    }
    for (ty, data) in &tensors {
        let t = g.tensor(&format!("t.{ty}")).unwrap();
        assert_eq!(
            (t.ty, t.dims, t.data),
            (*ty, &[256usize, 2][..], &data[..]),
            "{ty}"
        );
        tensor::dequantize_tensor(t.ty, t.data, 256, 512).unwrap();
    }
    // Typed getters report wrong types and missing keys by name.
    assert_eq!(g.get_u32("u64").unwrap_err().kind(), ErrorKind::Metadata);
    assert!(g.get_str("f32").unwrap_err().message().contains("f32"));
    assert!(g
        .get_u32("nope")
        .unwrap_err()
        .message()
        .contains("nope: missing"));
    assert_eq!(g.get_i64("i8").unwrap(), -2);
    assert_eq!(g.opt("nope", GgufFile::get_u32).unwrap(), None);
}
