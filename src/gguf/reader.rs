//! GGUF v2/v3 reader: memory-maps the file, parses the header, metadata and tensor directory
//! with every length checked against the bytes that remain, and hands out zero-copy tensor
//! views. Nothing here trusts a count or an offset from the file.

use super::value::{Array, Value, ValueType};
use super::{GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::error::{Error, Result};
use crate::tensor::{type_for_tensor, GgmlType};
use std::collections::HashMap;
use std::path::Path;

/// Deepest nesting of arrays accepted (the format allows nesting; real files use none).
const MAX_ARRAY_DEPTH: usize = 4;
/// ggml's GGML_MAX_DIMS.
const MAX_DIMS: usize = 4;

/// Where the file's bytes live.
enum Storage {
    Mmap(memmap2::Mmap),
    /// In-memory bytes (tests, fuzzing, files built on the fly), kept in u64 words so tensor
    /// data is at least 8-byte aligned like a map would be.
    Owned(Vec<u64>, usize),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(words, len) => {
                // SAFETY: the Vec holds at least `len` initialised bytes (len <= 8 * words.len()
                // by construction in `from_bytes`), u8 has no alignment or validity needs, and
                // the slice borrows `self`.
                unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, *len) }
            }
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the contiguous (input) dimension.
    pub dims: Vec<usize>,
    pub ty: GgmlType,
    /// Offset relative to the start of the data section.
    pub offset: usize,
    /// Bytes the tensor occupies (`GgmlType::tensor_bytes`).
    pub size: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A tensor's bytes inside the file, without copying.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub ty: GgmlType,
    pub dims: &'a [usize],
    pub data: &'a [u8],
}

impl TensorView<'_> {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product()
    }
    /// ne0: the contiguous dimension.
    pub fn ne0(&self) -> usize {
        self.dims[0]
    }
}

/// A parsed GGUF file.
pub struct GgufFile {
    storage: Storage,
    source: String,
    version: u32,
    kvs: Vec<(String, Value)>,
    kv_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("source", &self.source)
            .field("version", &self.version)
            .field("n_kv", &self.kvs.len())
            .field("n_tensors", &self.tensors.len())
            .finish()
    }
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn take(&mut self, n: usize, what: &dyn Fn() -> String) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::format(format!(
                "truncated file: {} needs {n} bytes at offset {}, only {} left",
                what(),
                self.pos,
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(Error::format(format!(
                "{}: string length {len} at offset {at} exceeds the {} bytes left in the file",
                what(),
                self.remaining()
            )));
        }
        let bytes = self.take(len as usize, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            Error::format(format!(
                "{}: string at offset {at} is not valid UTF-8",
                what()
            ))
        })
    }
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|e| Error::io(&shown, e))?;
        let len = file.metadata().map_err(|e| Error::io(&shown, e))?.len();
        if len == 0 {
            return Err(Error::format(format!("{shown}: empty file, not GGUF")));
        }
        // SAFETY: the map is read-only and private. Another process truncating or rewriting the
        // file while it is mapped is outside what Rust can guard against (as for every mmap
        // reader, llama.cpp included); we never write through the map.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(&shown, e))?;
        Self::parse(Storage::Mmap(map), shown.clone()).map_err(|e| e.context(&shown))
    }

    /// Parses a GGUF file held in memory (the bytes are copied into aligned storage).
    pub fn from_bytes(bytes: &[u8]) -> Result<GgufFile> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, c) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            *w = u64::from_le_bytes(b);
        }
        if cfg!(target_endian = "big") {
            return Err(Error::unsupported("big-endian hosts are not supported"));
        }
        Self::parse(Storage::Owned(words, bytes.len()), "<memory>".to_string())
    }

    /// Reads a whole GGUF file from `r` (to its end) into owned, 8-byte aligned memory and
    /// parses it (`llama_model_load_from_file_ptr`: a stream, or a GGUF embedded in a larger
    /// file read from its current position). `source` names it in errors.
    pub fn from_reader(mut r: impl std::io::Read, source: &str) -> Result<GgufFile> {
        if cfg!(target_endian = "big") {
            return Err(Error::unsupported("big-endian hosts are not supported"));
        }
        let mut words: Vec<u64> = Vec::new();
        let mut len = 0usize;
        loop {
            if len == words.len() * 8 {
                let more = words.len().max(1 << 16);
                words.try_reserve_exact(more).map_err(|_| {
                    Error::new(
                        crate::error::ErrorKind::OutOfMemory,
                        format!("{source}: cannot hold {} bytes in memory", (len + more * 8)),
                    )
                })?;
                words.resize(words.len() + more, 0);
            }
            // SAFETY: `words` owns `8 * words.len()` initialised bytes; u8 has no alignment
            // or validity needs; the slice ends before `words` is touched again.
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8)
            };
            match r.read(&mut bytes[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(source, e)),
            }
        }
        if len == 0 {
            return Err(Error::format(format!("{source}: empty input, not GGUF")));
        }
        words.truncate(len.div_ceil(8));
        words.shrink_to_fit();
        Self::parse(Storage::Owned(words, len), source.to_string()).map_err(|e| e.context(source))
    }

    /// An in-memory copy of this file with `edit` applied to its bytes (tensor data rewritten
    /// in place, e.g. an I2_S layout conversion: offsets and sizes must not change), parsed
    /// again under the same source name. The memory map is dropped.
    pub(crate) fn into_owned_with(
        self,
        edit: impl FnOnce(&GgufFile, &mut [u8]) -> Result<()>,
    ) -> Result<GgufFile> {
        let src = self.storage.bytes();
        let len = src.len();
        let mut words = vec![0u64; len.div_ceil(8)];
        // SAFETY: `words` owns `8 * words.len() >= len` initialised bytes; u8 has no alignment
        // or validity needs; the slice is dropped before `words` moves into the storage.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, len) };
        bytes.copy_from_slice(src);
        edit(&self, bytes)?;
        let source = self.source.clone();
        drop(self);
        Self::parse(Storage::Owned(words, len), source)
    }

    fn parse(storage: Storage, source: String) -> Result<GgufFile> {
        let buf = storage.bytes();
        let mut c = Cursor { buf, pos: 0 };
        let magic = c.u32(&|| "magic".into())?;
        if magic != GGUF_MAGIC {
            return Err(Error::format(format!(
                "bad magic {:02x?}: not a GGUF file (expected \"GGUF\")",
                magic.to_le_bytes()
            )));
        }
        let version = c.u32(&|| "version".into())?;
        match version {
            2 | 3 => {}
            1 => {
                return Err(Error::unsupported(
                    "GGUF version 1 (32-bit counts) is not supported",
                ))
            }
            v if v.swap_bytes() <= 3 => {
                return Err(Error::unsupported(format!(
                    "GGUF version {v}: looks like a big-endian file, which is not supported"
                )))
            }
            v => {
                return Err(Error::unsupported(format!(
                    "GGUF version {v} is not supported (2 or 3 are)"
                )))
            }
        }
        let n_tensors = c.u64(&|| "tensor count".into())?;
        let n_kv = c.u64(&|| "metadata count".into())?;
        // Each KV needs at least 8 (key len) + 4 (type) + 1 bytes; each tensor info at least
        // 8 + 4 + 4 + 8. Reject counts that cannot fit before allocating anything.
        if n_kv > (c.remaining() / 13) as u64 {
            return Err(Error::format(format!(
                "metadata count {n_kv} cannot fit in the file"
            )));
        }
        if n_tensors > (c.remaining() / 24) as u64 {
            return Err(Error::format(format!(
                "tensor count {n_tensors} cannot fit in the file"
            )));
        }

        let mut kvs = Vec::with_capacity(n_kv as usize);
        let mut kv_index = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv as usize {
            let key = c.string(&|| format!("metadata key #{i}"))?;
            let what = |k: &str| {
                let k = k.to_string();
                move || format!("metadata key {k:?}")
            };
            let w = what(&key);
            let ty_id = c.u32(&w)?;
            let ty = ValueType::from_id(ty_id).ok_or_else(|| {
                Error::format(format!("metadata key {key:?}: unknown value type {ty_id}"))
            })?;
            let value = read_value(&mut c, ty, &w, 0)?;
            if kv_index.insert(key.clone(), i).is_some() {
                return Err(Error::format(format!("duplicate metadata key {key:?}")));
            }
            kvs.push((key, value));
        }

        let alignment = match kvs.iter().find(|(k, _)| k == "general.alignment") {
            None => GGUF_DEFAULT_ALIGNMENT,
            Some((_, Value::U32(a))) if *a != 0 && a.is_power_of_two() => *a as usize,
            Some((_, v)) => {
                return Err(Error::format(format!(
                    "general.alignment must be a non-zero power of two u32, found {}",
                    v.display_short()
                )))
            }
        };

        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut tensor_index = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors as usize {
            let name = c.string(&|| format!("tensor #{i} name"))?;
            let w = || format!("tensor {name:?}");
            let n_dims = c.u32(&w)? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::format(format!(
                    "tensor {name}: {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims);
            for d in 0..n_dims {
                let ne = c.u64(&w)?;
                if ne == 0 || ne > i64::MAX as u64 {
                    return Err(Error::format(format!(
                        "tensor {name}: dimension {d} is {} (must be positive)",
                        ne as i64
                    )));
                }
                dims.push(usize::try_from(ne).map_err(|_| {
                    Error::format(format!("tensor {name}: dimension {ne} too large"))
                })?);
            }
            let ty = type_for_tensor(c.u32(&w)?, &name)?;
            let offset = c.u64(&w)?;
            let n = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .filter(|&n| n <= i64::MAX as usize);
            if n.is_none() {
                return Err(Error::format(format!(
                    "tensor {name}: dimensions {dims:?} overflow the element count"
                )));
            }
            if dims[0] % ty.block_size() != 0 {
                return Err(Error::format(format!(
                    "tensor {name}: row length {} is not a multiple of the {ty} block size {}",
                    dims[0],
                    ty.block_size()
                )));
            }
            let size = ty.tensor_bytes(&dims).ok_or_else(|| {
                Error::format(format!("tensor {name}: {ty} size of {dims:?} overflows"))
            })?;
            if offset % alignment as u64 != 0 {
                return Err(Error::format(format!(
                    "tensor {name}: data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            let offset = usize::try_from(offset).map_err(|_| {
                Error::format(format!("tensor {name}: data offset {offset} too large"))
            })?;
            if tensor_index.insert(name.clone(), i).is_some() {
                return Err(Error::format(format!("duplicate tensor name {name:?}")));
            }
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                offset,
                size,
            });
        }

        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let data_len = buf.len().saturating_sub(data_offset);
        if n_tensors > 0 && data_offset > buf.len() {
            return Err(Error::format(format!(
                "truncated file: data section should start at {data_offset}, file has {} bytes",
                buf.len()
            )));
        }
        for t in &tensors {
            let end = t.offset.checked_add(t.size);
            if end.is_none_or(|e| e > data_len) {
                return Err(Error::format(format!(
                    "tensor {}: type {} ({}) needs {} bytes at data offset {}, file has {} left",
                    t.name,
                    t.ty.id(),
                    t.ty,
                    t.size,
                    t.offset,
                    data_len.saturating_sub(t.offset)
                )));
            }
        }
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].size > pair[1].offset {
                return Err(Error::format(format!(
                    "tensors {} and {} overlap (bytes {}..{} and {}..)",
                    pair[0].name,
                    pair[1].name,
                    pair[0].offset,
                    pair[0].offset + pair[0].size,
                    pair[1].offset
                )));
            }
        }

        Ok(GgufFile {
            storage,
            source,
            version,
            kvs,
            kv_index,
            tensors,
            tensor_index,
            alignment,
            data_offset,
        })
    }

    /// The path the file was opened from, or `<memory>`.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn alignment(&self) -> usize {
        self.alignment
    }
    /// Absolute offset of the data section.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }
    /// The whole file's bytes (tensor ranges bound at load slice it directly).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
    /// Total bytes of the file.
    pub fn file_size(&self) -> usize {
        self.storage.bytes().len()
    }

    /// All metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.kvs
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kv_index.get(key).map(|&i| &self.kvs[i].1)
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }
    /// A zero-copy view of a tensor's bytes.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        self.tensor_info(name).map(|t| self.view(t))
    }
    pub fn view<'a>(&'a self, t: &'a TensorInfo) -> TensorView<'a> {
        let start = self.data_offset + t.offset;
        TensorView {
            name: &t.name,
            ty: t.ty,
            dims: &t.dims,
            data: &self.storage.bytes()[start..start + t.size],
        }
    }

    /// Drops the pages of `data` (a slice of this file's bytes, e.g. a tensor's data) from the
    /// process's resident set: whole pages inside it only; they are read back from the page
    /// cache if touched again. For a tensor that is no longer read in bulk (an lm_head replaced
    /// by a re-quantized copy). No-op for in-memory files or a slice from elsewhere.
    pub fn release_pages(&self, data: &[u8]) {
        let Storage::Mmap(m) = &self.storage else {
            return;
        };
        let base = m.as_ptr() as usize;
        let start = data.as_ptr() as usize;
        if start < base || start + data.len() > base + m.len() {
            return;
        }
        const PAGE: usize = 4096;
        let lo = (start - base).next_multiple_of(PAGE);
        let hi = (start - base + data.len()) / PAGE * PAGE;
        // Page advice is a Unix (madvise) feature: elsewhere the pages simply stay mapped.
        #[cfg(unix)]
        if hi > lo {
            // SAFETY: the map is a read-only file mapping, so MADV_DONTNEED only unmaps pages that
            // the kernel re-reads from the file on the next access: contents never change and
            // every outstanding borrow of the map stays valid.
            let _ = unsafe {
                m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo)
            };
        }
        #[cfg(not(unix))]
        let _ = (lo, hi);
    }

    fn wrong_type(key: &str, v: &Value, want: &str) -> Error {
        Error::metadata(format!(
            "metadata key {key}: has type {}{}, expected {want}",
            v.value_type().name(),
            match v {
                Value::Array(a) => format!(" of {}", a.elem_type().name()),
                _ => String::new(),
            }
        ))
    }

    fn required<'a>(&'a self, key: &str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| Error::metadata(format!("metadata key {key}: missing")))
    }

    /// Any integer type that fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32> {
        let v = self.required(key)?;
        let i = v
            .as_i128()
            .ok_or_else(|| Self::wrong_type(key, v, "an integer"))?;
        u32::try_from(i).map_err(|_| {
            Error::metadata(format!(
                "metadata key {key}: value {i} out of range for u32"
            ))
        })
    }
    pub fn get_i64(&self, key: &str) -> Result<i64> {
        let v = self.required(key)?;
        let i = v
            .as_i128()
            .ok_or_else(|| Self::wrong_type(key, v, "an integer"))?;
        i64::try_from(i).map_err(|_| {
            Error::metadata(format!(
                "metadata key {key}: value {i} out of range for i64"
            ))
        })
    }
    /// f32 (f64 values are narrowed, as llama.cpp does not; only f32 is written in practice).
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        match self.required(key)? {
            Value::F32(f) => Ok(*f),
            Value::F64(f) => Ok(*f as f32),
            v => Err(Self::wrong_type(key, v, "f32")),
        }
    }
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        match self.required(key)? {
            Value::Bool(b) => Ok(*b),
            v => Err(Self::wrong_type(key, v, "bool")),
        }
    }
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.required(key)? {
            Value::String(s) => Ok(s),
            v => Err(Self::wrong_type(key, v, "string")),
        }
    }
    pub fn get_str_array(&self, key: &str) -> Result<&[String]> {
        match self.required(key)? {
            Value::Array(Array::String(a)) => Ok(a),
            v => Err(Self::wrong_type(key, v, "array of string")),
        }
    }
    pub fn get_f32_array(&self, key: &str) -> Result<&[f32]> {
        match self.required(key)? {
            Value::Array(Array::F32(a)) => Ok(a),
            v => Err(Self::wrong_type(key, v, "array of f32")),
        }
    }
    pub fn get_i32_array(&self, key: &str) -> Result<&[i32]> {
        match self.required(key)? {
            Value::Array(Array::I32(a)) => Ok(a),
            v => Err(Self::wrong_type(key, v, "array of i32")),
        }
    }

    /// `Ok(None)` when the key is absent; an error when present with the wrong type.
    pub fn opt<T>(&self, key: &str, get: impl Fn(&Self, &str) -> Result<T>) -> Result<Option<T>> {
        if self.get(key).is_none() {
            Ok(None)
        } else {
            get(self, key).map(Some)
        }
    }
}

fn read_value(
    c: &mut Cursor<'_>,
    ty: ValueType,
    what: &dyn Fn() -> String,
    depth: usize,
) -> Result<Value> {
    Ok(match ty {
        ValueType::U8 => Value::U8(c.array::<1>(what)?[0]),
        ValueType::I8 => Value::I8(c.array::<1>(what)?[0] as i8),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(what)?)),
        ValueType::Bool => {
            let b = c.array::<1>(what)?[0];
            if b > 1 {
                return Err(Error::format(format!(
                    "{}: bool value {b} is neither 0 nor 1",
                    what()
                )));
            }
            Value::Bool(b == 1)
        }
        ValueType::String => Value::String(c.string(what)?),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(what)?)),
        ValueType::Array => Value::Array(read_array(c, what, depth)?),
    })
}

fn read_array(c: &mut Cursor<'_>, what: &dyn Fn() -> String, depth: usize) -> Result<Array> {
    if depth >= MAX_ARRAY_DEPTH {
        return Err(Error::format(format!(
            "{}: arrays nested deeper than {MAX_ARRAY_DEPTH}",
            what()
        )));
    }
    let ty_id = c.u32(what)?;
    let ty = ValueType::from_id(ty_id)
        .ok_or_else(|| Error::format(format!("{}: unknown array element type {ty_id}", what())))?;
    let at = c.pos;
    let n = c.u64(what)?;
    // The smallest encoding of one element: its scalar size, 8 for a string's length, 12 for a
    // nested array's header. A count that cannot fit is rejected before any allocation.
    let min = ty
        .scalar_size()
        .unwrap_or(if ty == ValueType::String { 8 } else { 12 }) as u64;
    if n > c.remaining() as u64 / min {
        return Err(Error::format(format!(
            "{}: array of {n} {} at offset {at} cannot fit in the {} bytes left",
            what(),
            ty.name(),
            c.remaining()
        )));
    }
    let n = n as usize;
    macro_rules! scalars {
        ($variant:ident, $t:ty) => {{
            let bytes = c.take(n * std::mem::size_of::<$t>(), what)?;
            Array::$variant(
                bytes
                    .chunks_exact(std::mem::size_of::<$t>())
                    .map(|b| <$t>::from_le_bytes(b.try_into().expect("exact chunk")))
                    .collect(),
            )
        }};
    }
    Ok(match ty {
        ValueType::U8 => Array::U8(c.take(n, what)?.to_vec()),
        ValueType::I8 => Array::I8(c.take(n, what)?.iter().map(|&b| b as i8).collect()),
        ValueType::U16 => scalars!(U16, u16),
        ValueType::I16 => scalars!(I16, i16),
        ValueType::U32 => scalars!(U32, u32),
        ValueType::I32 => scalars!(I32, i32),
        ValueType::F32 => scalars!(F32, f32),
        ValueType::U64 => scalars!(U64, u64),
        ValueType::I64 => scalars!(I64, i64),
        ValueType::F64 => scalars!(F64, f64),
        ValueType::Bool => {
            let bytes = c.take(n, what)?;
            if let Some(b) = bytes.iter().find(|&&b| b > 1) {
                return Err(Error::format(format!(
                    "{}: bool array element {b} is neither 0 nor 1",
                    what()
                )));
            }
            Array::Bool(bytes.iter().map(|&b| b == 1).collect())
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.string(what)?);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, what, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}
