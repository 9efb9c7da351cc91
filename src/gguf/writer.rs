//! GGUF v3 writer: metadata, tensor directory, aligned tensor data. Tensor bytes may be given
//! up front or produced on demand (so a 1.2 GB model is written without holding it in memory).

use super::value::{Array, Value};
use super::{GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::error::{Error, Result};
use crate::tensor::GgmlType;
use std::io::Write;

type Producer<'a> = Box<dyn FnOnce() -> Result<Vec<u8>> + 'a>;

enum Data<'a> {
    Bytes(Vec<u8>),
    Borrowed(&'a [u8]),
    Lazy(Producer<'a>),
}

struct PendingTensor<'a> {
    name: String,
    dims: Vec<usize>,
    ty: GgmlType,
    size: usize,
    data: Data<'a>,
}

/// Builds a GGUF file: add metadata and tensors in file order, then [`GgufWriter::write`].
/// `'a` is the lifetime of borrowed tensor bytes ([`GgufWriter::add_tensor_borrowed`]).
pub struct GgufWriter<'a> {
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor<'a>>,
    alignment: usize,
}

impl Default for GgufWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> GgufWriter<'a> {
    pub fn new() -> Self {
        GgufWriter {
            kvs: Vec::new(),
            tensors: Vec::new(),
            alignment: GGUF_DEFAULT_ALIGNMENT,
        }
    }

    /// Adds (or replaces, keeping its place) a metadata entry. `general.alignment` also sets
    /// the alignment used for tensor data.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        if key == "general.alignment" {
            if let Value::U32(a) = value {
                self.alignment = a.max(1) as usize;
            }
        }
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key, value)),
        }
    }

    pub fn set_str(&mut self, key: &str, v: &str) {
        self.set(key, Value::String(v.to_string()));
    }
    pub fn set_u32(&mut self, key: &str, v: u32) {
        self.set(key, Value::U32(v));
    }
    pub fn set_f32(&mut self, key: &str, v: f32) {
        self.set(key, Value::F32(v));
    }

    fn check(&self, name: &str, dims: &[usize], ty: GgmlType) -> Result<usize> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(Error::invalid_argument(format!(
                "tensor {name} added twice"
            )));
        }
        if dims.is_empty() || dims.len() > 4 || dims.contains(&0) {
            return Err(Error::invalid_argument(format!(
                "tensor {name}: bad dims {dims:?}"
            )));
        }
        ty.tensor_bytes(dims)
            .filter(|_| dims[0].is_multiple_of(ty.block_size()))
            .ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: {ty} cannot hold dims {dims:?}"))
            })
    }

    /// Adds a tensor whose bytes are known now (exactly `ty.tensor_bytes(dims)` of them).
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[usize],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> Result<()> {
        let len = data.len();
        self.push(name, dims, ty, len, Data::Bytes(data))
    }

    /// Adds a tensor whose bytes are borrowed (e.g. from a loaded file) and copied out when the
    /// file is written.
    pub fn add_tensor_borrowed(
        &mut self,
        name: &str,
        dims: &[usize],
        ty: GgmlType,
        data: &'a [u8],
    ) -> Result<()> {
        self.push(name, dims, ty, data.len(), Data::Borrowed(data))
    }

    /// Queues a tensor of `len` bytes after checking its name, shape and byte count.
    fn push(
        &mut self,
        name: &str,
        dims: &[usize],
        ty: GgmlType,
        len: usize,
        data: Data<'a>,
    ) -> Result<()> {
        let size = self.check(name, dims, ty)?;
        if len != size {
            return Err(Error::invalid_argument(format!(
                "tensor {name}: {ty} {dims:?} needs {size} bytes, got {len}"
            )));
        }
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: dims.into(),
            ty,
            size,
            data,
        });
        Ok(())
    }

    /// Adds a tensor whose bytes are produced when the file is written.
    pub fn add_tensor_lazy(
        &mut self,
        name: &str,
        dims: &[usize],
        ty: GgmlType,
        produce: impl FnOnce() -> Result<Vec<u8>> + 'a,
    ) -> Result<()> {
        let size = self.check(name, dims, ty)?;
        let data = Data::Lazy(Box::new(produce));
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: dims.into(),
            ty,
            size,
            data,
        });
        Ok(())
    }

    /// Writes the whole file. Returns the number of bytes written.
    pub fn write(self, out: &mut impl Write) -> Result<u64> {
        let io = |e: std::io::Error| {
            Error::new(crate::error::ErrorKind::Io, format!("writing GGUF: {e}"))
        };
        let mut head = Vec::new();
        head.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut head, k);
            head.extend_from_slice(&(v.value_type() as u32).to_le_bytes());
            put_value(&mut head, v);
        }
        let align = self.alignment;
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut head, &t.name);
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for &d in &t.dims {
                head.extend_from_slice(&(d as u64).to_le_bytes());
            }
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&(offset as u64).to_le_bytes());
            offset += t.size.div_ceil(align) * align;
        }
        head.resize(head.len().div_ceil(align) * align, 0);
        out.write_all(&head).map_err(io)?;
        let mut written = head.len() as u64;
        for t in self.tensors {
            let owned;
            let bytes: &[u8] = match t.data {
                Data::Bytes(b) => {
                    owned = b;
                    &owned
                }
                Data::Borrowed(b) => b,
                Data::Lazy(f) => {
                    owned = f()?;
                    &owned
                }
            };
            if bytes.len() != t.size {
                return Err(Error::internal(format!(
                    "tensor {}: producer gave {} bytes, expected {}",
                    t.name,
                    bytes.len(),
                    t.size
                )));
            }
            out.write_all(bytes).map_err(io)?;
            let pad = t.size.div_ceil(align) * align - t.size;
            out.write_all(&vec![0u8; pad]).map_err(io)?;
            written += (t.size + pad) as u64;
        }
        Ok(written)
    }

    /// Writes the file into memory.
    pub fn to_bytes(self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write(&mut v)?;
        Ok(v)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => put_array(out, a),
    }
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => out.extend_from_slice(v),
        Array::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => out.extend(v.iter().map(|&x| x as u8)),
        Array::String(v) => v.iter().for_each(|s| put_str(out, s)),
        Array::Array(v) => v.iter().for_each(|a| put_array(out, a)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
    }
}
