//! Models built from C without a file (llama.h's `llama_model_init_from_user`), and what a C
//! caller needs for it without ggml: a GGUF metadata builder under gguf.h's names
//! (`bitnet_gguf_*`: `gguf_init_empty`, `gguf_set_val_*`, `gguf_set_arr_*`, `gguf_add_tensor`,
//! ...) and the tensor the fill callback receives (`struct bitnet_tensor`, the fields of
//! `ggml_tensor` a caller reads or writes). docs/quantize.md.

use super::model::{bitnet_model, bitnet_model_params, check_params, ModelSource};
use super::{borrow, borrow_mut, c_str, call, call_void, free_handle, into_handle, slice};
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::{Array, GgufFile, Value};
use crate::model::{DeclaredTensor, Model};
use crate::tensor::GgmlType;
use crate::vocab::VocabOnlyModel;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;

/// ggml's GGML_MAX_NAME: bytes of `bitnet_tensor.name`, NUL included.
pub const BITNET_MAX_NAME: usize = 64;

/// A tensor (the fields of ggml's `ggml_tensor` a caller uses): what the
/// bitnet_model_init_from_user callback fills, what bitnet_gguf_add_tensor declares, and what
/// the training filter would see.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_tensor {
    /// `enum bitnet_ggml_type`.
    pub r#type: i32,
    /// Elements per dimension (`ne[0]` the contiguous one), unused dimensions 1.
    pub ne: [i64; 4],
    /// Stride in bytes per dimension, as ggml computes them (`nb[1]` = bytes of one row).
    pub nb: [usize; 4],
    /// The tensor's bytes (`size` of them): write them in the callback.
    pub data: *mut c_void,
    /// Bytes at `data` (ggml_nbytes; for I2_S the codes plus the 32-byte scale tail).
    pub size: usize,
    /// NUL-terminated name.
    pub name: [c_char; BITNET_MAX_NAME],
}

/// The type of a metadata value or array element (`gguf_type`), numbered as gguf.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_gguf_type {
    BITNET_GGUF_TYPE_UINT8 = 0,
    BITNET_GGUF_TYPE_INT8 = 1,
    BITNET_GGUF_TYPE_UINT16 = 2,
    BITNET_GGUF_TYPE_INT16 = 3,
    BITNET_GGUF_TYPE_UINT32 = 4,
    BITNET_GGUF_TYPE_INT32 = 5,
    BITNET_GGUF_TYPE_FLOAT32 = 6,
    BITNET_GGUF_TYPE_BOOL = 7,
    BITNET_GGUF_TYPE_STRING = 8,
    BITNET_GGUF_TYPE_ARRAY = 9,
    BITNET_GGUF_TYPE_UINT64 = 10,
    BITNET_GGUF_TYPE_INT64 = 11,
    BITNET_GGUF_TYPE_FLOAT64 = 12,
}

/// A tensor info of a metadata context: name (as a C string for bitnet_gguf_get_tensor_name),
/// type, dims, and offset and size in the data section.
struct TensorDecl {
    name: CString,
    ty: GgmlType,
    dims: Vec<usize>,
    offset: usize,
    size: usize,
}

/// GGUF metadata being built (`gguf_context`): key/value pairs in order, and tensor infos.
pub struct bitnet_gguf_context {
    kvs: Vec<(CString, Value)>,
    tensors: Vec<TensorDecl>,
    /// Start of the data section in the file it was read from (0 for a built context).
    data_offset: usize,
}

impl bitnet_gguf_context {
    fn set(&mut self, key: *const c_char, value: Value) -> Result<()> {
        let key = CString::new(c_str(key, "key")?)
            .map_err(|_| Error::invalid_argument("key has a NUL"))?;
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key, value)),
        }
        Ok(())
    }

    fn kvs(&self) -> Vec<(String, Value)> {
        self.kvs
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.clone()))
            .collect()
    }

    fn declared(&self) -> Vec<DeclaredTensor> {
        self.tensors
            .iter()
            .map(|t| DeclaredTensor {
                name: t.name.to_string_lossy().into_owned(),
                ty: t.ty,
                dims: t.dims.clone(),
            })
            .collect()
    }

    fn add(&mut self, name: &str, ty: GgmlType, dims: Vec<usize>) -> Result<()> {
        if name.is_empty() || name.len() >= BITNET_MAX_NAME {
            return Err(Error::invalid_argument(format!(
                "tensor name {name:?}: must be 1 to {} bytes",
                BITNET_MAX_NAME - 1
            )));
        }
        if self
            .tensors
            .iter()
            .any(|t| t.name.as_bytes() == name.as_bytes())
        {
            return Err(Error::invalid_argument(format!(
                "tensor {name}: added twice"
            )));
        }
        let size = ty
            .tensor_bytes(&dims)
            .filter(|_| !dims.contains(&0))
            .ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: {ty} cannot hold dims {dims:?}"))
            })?;
        let align = crate::gguf::GGUF_DEFAULT_ALIGNMENT;
        let offset = self
            .tensors
            .last()
            .map_or(0, |t| t.offset + t.size.div_ceil(align) * align);
        let name =
            CString::new(name).map_err(|_| Error::invalid_argument("tensor name has a NUL"))?;
        self.tensors.push(TensorDecl {
            name,
            ty,
            dims,
            offset,
            size,
        });
        Ok(())
    }
}

/// An empty metadata context (`gguf_init_empty`). Free with bitnet_gguf_free.
#[no_mangle]
pub extern "C" fn bitnet_gguf_init_empty() -> *mut bitnet_gguf_context {
    into_handle(bitnet_gguf_context {
        kvs: Vec::new(),
        tensors: Vec::new(),
        data_offset: 0,
    })
}

/// The metadata and tensor infos of a GGUF file (`gguf_init_from_file` with no_alloc: tensor
/// data is not read; bitnet_gguf_get_data_offset and bitnet_gguf_get_tensor_offset say where
/// it is). NULL on failure (missing or malformed file). Free with bitnet_gguf_free.
#[no_mangle]
pub extern "C" fn bitnet_gguf_init_from_file(fname: *const c_char) -> *mut bitnet_gguf_context {
    call(std::ptr::null_mut(), || {
        let g = GgufFile::open(c_str(fname, "fname")?)?;
        let mut ctx = bitnet_gguf_context {
            kvs: Vec::with_capacity(g.metadata().len()),
            tensors: Vec::with_capacity(g.tensors().len()),
            data_offset: g.data_offset(),
        };
        for (k, v) in g.metadata() {
            let key = CString::new(k.as_str())
                .map_err(|_| Error::format(format!("key {k:?} has a NUL")))?;
            ctx.kvs.push((key, v.clone()));
        }
        for t in g.tensors() {
            ctx.tensors.push(TensorDecl {
                name: CString::new(t.name.as_str())
                    .map_err(|_| Error::format(format!("tensor {:?} has a NUL", t.name)))?,
                ty: t.ty,
                dims: t.dims.clone(),
                offset: t.offset,
                size: t.size,
            });
        }
        Ok(into_handle(ctx))
    })
}

/// Frees a metadata context; NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_gguf_free(ctx: *mut bitnet_gguf_context) {
    free_handle(ctx);
}

/// Number of key/value pairs (-1 for NULL).
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_n_kv(ctx: *const bitnet_gguf_context) -> i64 {
    call(-1, || Ok(borrow(ctx, "ctx")?.kvs.len() as i64))
}

/// Index of `key`, or -1 when absent (or on bad arguments).
#[no_mangle]
pub extern "C" fn bitnet_gguf_find_key(ctx: *const bitnet_gguf_context, key: *const c_char) -> i64 {
    call(-1, || {
        let (c, key) = (borrow(ctx, "ctx")?, c_str(key, "key")?);
        Ok(c.kvs
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())
            .map_or(-1, |i| i as i64))
    })
}

/// The key at `key_id` (valid until the context changes), or NULL when out of range.
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_key(
    ctx: *const bitnet_gguf_context,
    key_id: i64,
) -> *const c_char {
    call(std::ptr::null(), || {
        Ok(item(&borrow(ctx, "ctx")?.kvs, key_id, "key_id")?.0.as_ptr())
    })
}

/// Removes `key`; returns its former index, or -1 when it was absent.
#[no_mangle]
pub extern "C" fn bitnet_gguf_remove_key(ctx: *mut bitnet_gguf_context, key: *const c_char) -> i64 {
    call(-1, || {
        let (c, key) = (borrow_mut(ctx, "ctx")?, c_str(key, "key")?);
        let i = c
            .kvs
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes());
        if let Some(i) = i {
            c.kvs.remove(i);
        }
        Ok(i.map_or(-1, |i| i as i64))
    })
}

/// Sets `key` to `value` on the context (the body of every `bitnet_gguf_set_val_*`).
fn set_val(ctx: *mut bitnet_gguf_context, key: *const c_char, value: Value) {
    call_void(|| borrow_mut(ctx, "ctx")?.set(key, value));
}

/// Sets `key` to a u8 (added, or replaced in place: `gguf_set_val_u8`).
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_u8(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: u8,
) {
    set_val(ctx, key, Value::U8(val));
}

/// Sets `key` to an i8.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_i8(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: i8,
) {
    set_val(ctx, key, Value::I8(val));
}

/// Sets `key` to a u16.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_u16(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: u16,
) {
    set_val(ctx, key, Value::U16(val));
}

/// Sets `key` to an i16.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_i16(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: i16,
) {
    set_val(ctx, key, Value::I16(val));
}

/// Sets `key` to a u32.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_u32(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: u32,
) {
    set_val(ctx, key, Value::U32(val));
}

/// Sets `key` to an i32.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_i32(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: i32,
) {
    set_val(ctx, key, Value::I32(val));
}

/// Sets `key` to an f32.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_f32(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: f32,
) {
    set_val(ctx, key, Value::F32(val));
}

/// Sets `key` to a u64.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_u64(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: u64,
) {
    set_val(ctx, key, Value::U64(val));
}

/// Sets `key` to an i64.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_i64(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: i64,
) {
    set_val(ctx, key, Value::I64(val));
}

/// Sets `key` to an f64.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_f64(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: f64,
) {
    set_val(ctx, key, Value::F64(val));
}

/// Sets `key` to a bool.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_bool(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: bool,
) {
    set_val(ctx, key, Value::Bool(val));
}

/// Sets `key` to a copy of the NUL-terminated UTF-8 string `val`.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_val_str(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    val: *const c_char,
) {
    call_void(|| {
        let v = c_str(val, "val")?.to_string();
        borrow_mut(ctx, "ctx")?.set(key, Value::String(v))
    });
}

/// Sets `key` to an array of `n` elements of type `type` (`enum bitnet_gguf_type`, a numeric
/// or BOOL type) copied from `data` (`gguf_set_arr_data`). Strings: bitnet_gguf_set_arr_str.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_arr_data(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    r#type: i32,
    data: *const c_void,
    n: usize,
) {
    use bitnet_gguf_type::*;
    call_void(|| {
        let n = i64::try_from(n).map_err(|_| Error::invalid_argument("n is too large"))?;
        macro_rules! arr {
            ($t:ty, $v:ident) => {
                Array::$v(slice(data.cast::<$t>(), n, "data")?.to_vec())
            };
        }
        let a = match r#type {
            t if t == BITNET_GGUF_TYPE_UINT8 as i32 => arr!(u8, U8),
            t if t == BITNET_GGUF_TYPE_INT8 as i32 => arr!(i8, I8),
            t if t == BITNET_GGUF_TYPE_UINT16 as i32 => arr!(u16, U16),
            t if t == BITNET_GGUF_TYPE_INT16 as i32 => arr!(i16, I16),
            t if t == BITNET_GGUF_TYPE_UINT32 as i32 => arr!(u32, U32),
            t if t == BITNET_GGUF_TYPE_INT32 as i32 => arr!(i32, I32),
            t if t == BITNET_GGUF_TYPE_FLOAT32 as i32 => arr!(f32, F32),
            t if t == BITNET_GGUF_TYPE_UINT64 as i32 => arr!(u64, U64),
            t if t == BITNET_GGUF_TYPE_INT64 as i32 => arr!(i64, I64),
            t if t == BITNET_GGUF_TYPE_FLOAT64 as i32 => arr!(f64, F64),
            t if t == BITNET_GGUF_TYPE_BOOL as i32 => Array::Bool(
                slice(data.cast::<u8>(), n, "data")?
                    .iter()
                    .map(|&b| b != 0)
                    .collect(),
            ),
            t => {
                return Err(Error::invalid_argument(format!(
                    "type {t}: not a numeric or BOOL gguf type (strings: bitnet_gguf_set_arr_str)"
                )))
            }
        };
        borrow_mut(ctx, "ctx")?.set(key, Value::Array(a))
    });
}

/// Sets `key` to an array of `n` strings copied from `data` (`gguf_set_arr_str`).
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_arr_str(
    ctx: *mut bitnet_gguf_context,
    key: *const c_char,
    data: *const *const c_char,
    n: usize,
) {
    call_void(|| {
        let n = i64::try_from(n).map_err(|_| Error::invalid_argument("n is too large"))?;
        let strs = slice(data, n, "data")?
            .iter()
            .enumerate()
            .map(|(i, &s)| c_str(s, &format!("data[{i}]")).map(str::to_string))
            .collect::<Result<Vec<_>>>()?;
        borrow_mut(ctx, "ctx")?.set(key, Value::Array(Array::String(strs)))
    });
}

/// Number of tensor infos (-1 for NULL).
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_n_tensors(ctx: *const bitnet_gguf_context) -> i64 {
    call(-1, || Ok(borrow(ctx, "ctx")?.tensors.len() as i64))
}

/// Index of the tensor info named `name`, or -1.
#[no_mangle]
pub extern "C" fn bitnet_gguf_find_tensor(
    ctx: *const bitnet_gguf_context,
    name: *const c_char,
) -> i64 {
    call(-1, || {
        let (c, name) = (borrow(ctx, "ctx")?, c_str(name, "name")?);
        Ok(c.tensors
            .iter()
            .position(|t| t.name.as_bytes() == name.as_bytes())
            .map_or(-1, |i| i as i64))
    })
}

/// `items[id]`, or an INVALID_ARG error naming `what` when `id` is out of range.
fn item<'a, T>(items: &'a [T], id: i64, what: &str) -> Result<&'a T> {
    usize::try_from(id)
        .ok()
        .and_then(|i| items.get(i))
        .ok_or_else(|| Error::invalid_argument(format!("{what} {id} out of range")))
}

fn tensor_at<'a>(ctx: *const bitnet_gguf_context, id: i64) -> Result<&'a TensorDecl> {
    item(
        &borrow::<bitnet_gguf_context>(ctx, "ctx")?.tensors,
        id,
        "tensor_id",
    )
}

/// Name of tensor info `tensor_id` (valid until the context changes), NULL when out of range.
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_tensor_name(
    ctx: *const bitnet_gguf_context,
    tensor_id: i64,
) -> *const c_char {
    call(std::ptr::null(), || {
        Ok(tensor_at(ctx, tensor_id)?.name.as_ptr())
    })
}

/// Type (`enum bitnet_ggml_type`) of tensor info `tensor_id`, -1 when out of range.
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_tensor_type(
    ctx: *const bitnet_gguf_context,
    tensor_id: i64,
) -> i32 {
    call(-1, || Ok(tensor_at(ctx, tensor_id)?.ty.id() as i32))
}

/// Offset of tensor `tensor_id`'s data from the start of the data section, -1 when out of range.
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_tensor_offset(
    ctx: *const bitnet_gguf_context,
    tensor_id: i64,
) -> i64 {
    call(-1, || Ok(tensor_at(ctx, tensor_id)?.offset as i64))
}

/// Bytes of tensor `tensor_id`'s data (0 when out of range).
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_tensor_size(
    ctx: *const bitnet_gguf_context,
    tensor_id: i64,
) -> usize {
    call(0, || Ok(tensor_at(ctx, tensor_id)?.size))
}

/// Where the data section starts in the file the context was read from (0 for a built one).
#[no_mangle]
pub extern "C" fn bitnet_gguf_get_data_offset(ctx: *const bitnet_gguf_context) -> usize {
    call(0, || Ok(borrow(ctx, "ctx")?.data_offset))
}

/// The tensor type for a C value, with an error naming it.
fn ggml_type(v: i32, what: &str) -> Result<GgmlType> {
    u32::try_from(v)
        .ok()
        .and_then(GgmlType::from_id)
        .ok_or_else(|| Error::unsupported(format!("{what}: ggml type {v} is not one bitnet knows")))
}

/// The dims of a C tensor (`ne`, trailing 1s dropped, at least one).
fn dims_of(t: &bitnet_tensor, name: &str) -> Result<Vec<usize>> {
    let mut dims =
        t.ne.iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: ne {:?} has a dimension < 1", t.ne))
            })?;
    while dims.len() > 1 && dims.last() == Some(&1) {
        dims.pop();
    }
    Ok(dims)
}

fn tensor_name(t: &bitnet_tensor) -> Result<String> {
    // SAFETY: c_char and u8 have the same layout; the slice borrows `t.name`.
    let bytes =
        unsafe { std::slice::from_raw_parts(t.name.as_ptr().cast::<u8>(), BITNET_MAX_NAME) };
    Ok(CStr::from_bytes_until_nul(bytes)
        .map_err(|_| Error::invalid_argument("tensor name is not NUL-terminated"))?
        .to_str()
        .map_err(|_| Error::invalid_argument("tensor name is not valid UTF-8"))?
        .to_string())
}

/// Adds a tensor info from `tensor`'s name, type and ne (`gguf_add_tensor`; its data is not
/// used). For bitnet_model_init_from_user it declares the tensor's type (and, for a tensor
/// the architecture does not require, e.g. output.weight or a bias, that it exists).
#[no_mangle]
pub extern "C" fn bitnet_gguf_add_tensor(
    ctx: *mut bitnet_gguf_context,
    tensor: *const bitnet_tensor,
) {
    call_void(|| {
        let t = borrow(tensor, "tensor")?;
        let name = tensor_name(t)?;
        let ty = ggml_type(t.r#type, &format!("tensor {name}"))?;
        let dims = dims_of(t, &name)?;
        borrow_mut(ctx, "ctx")?.add(&name, ty, dims)
    });
}

/// Changes the type of the tensor info `name` (`gguf_set_tensor_type`); later offsets move.
#[no_mangle]
pub extern "C" fn bitnet_gguf_set_tensor_type(
    ctx: *mut bitnet_gguf_context,
    name: *const c_char,
    r#type: i32,
) {
    call_void(|| {
        let (c, name) = (borrow_mut(ctx, "ctx")?, c_str(name, "name")?);
        let ty = ggml_type(r#type, &format!("tensor {name}"))?;
        let i = c
            .tensors
            .iter()
            .position(|t| t.name.as_bytes() == name.as_bytes())
            .ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: no such tensor info"))
            })?;
        let rest: Vec<TensorDecl> = c.tensors.drain(i..).collect();
        let mut first = true;
        for t in rest {
            let ty = if first { ty } else { t.ty };
            first = false;
            c.add(&t.name.to_string_lossy(), ty, t.dims)?;
        }
        Ok(())
    });
}

/// Bytes of a tensor's data (`ggml_nbytes`), 0 for NULL or a type bitnet does not know.
#[no_mangle]
pub extern "C" fn bitnet_tensor_nbytes(tensor: *const bitnet_tensor) -> usize {
    call(0, || {
        let t = borrow(tensor, "tensor")?;
        let name = tensor_name(t)?;
        let dims = dims_of(t, &name)?;
        ggml_type(t.r#type, &name)?
            .tensor_bytes(&dims)
            .ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: dims {dims:?} overflow"))
            })
    })
}

/// Number of elements of a tensor (`ggml_nelements`), 0 for NULL.
#[no_mangle]
pub extern "C" fn bitnet_tensor_nelements(tensor: *const bitnet_tensor) -> i64 {
    call(0, || Ok(borrow(tensor, "tensor")?.ne.iter().product()))
}

/// Copies `size` bytes from `data` into the tensor's data at byte `offset`
/// (`ggml_backend_tensor_set`). An out-of-range copy is refused (nothing written, message in
/// bitnet_last_error).
#[no_mangle]
pub extern "C" fn bitnet_tensor_set(
    tensor: *mut bitnet_tensor,
    data: *const c_void,
    offset: usize,
    size: usize,
) {
    call_void(|| {
        let t = borrow(tensor, "tensor")?;
        if offset.checked_add(size).is_none_or(|end| end > t.size) {
            return Err(Error::invalid_argument(format!(
                "bitnet_tensor_set: {size} bytes at offset {offset} exceed the tensor's {} bytes",
                t.size
            )));
        }
        let src = slice(data.cast::<u8>(), size as i64, "data")?;
        let dst = super::slice_mut(t.data.cast::<u8>(), t.size as i64, "tensor->data")?;
        dst[offset..offset + size].copy_from_slice(src);
        Ok(())
    });
}

/// Fills a tensor.
pub type bitnet_model_set_tensor_data_t =
    Option<unsafe extern "C" fn(tensor: *mut bitnet_tensor, userdata: *mut c_void)>;

/// Builds a model from metadata and a callback that fills its tensors
/// (`llama_model_init_from_user`). `metadata` holds the hyper-parameters under the
/// architecture's prefix and the tokenizer.* keys (bitnet_gguf_* builder, or
/// bitnet_gguf_init_from_file); the tensors are the architecture's, F32 unless a tensor info
/// of `metadata` gives another type (a tensor info for a tensor the architecture does not
/// require, e.g. output.weight or a bias, adds it). `set_tensor_data` is called once per
/// tensor, in order, with `set_tensor_data_ud`, and writes `tensor->size` bytes at
/// `tensor->data` (bitnet_tensor_set, or directly). The model is then checked and ready as a
/// loaded one; `metadata` is not kept. params as for bitnet_model_load_from_file (vocab_only:
/// no tensors, no callback). NULL on failure (NULL metadata or callback, missing or bad keys,
/// types: bitnet_last_error says which). Free with bitnet_model_free.
#[no_mangle]
pub extern "C" fn bitnet_model_init_from_user(
    metadata: *mut bitnet_gguf_context,
    set_tensor_data: bitnet_model_set_tensor_data_t,
    set_tensor_data_ud: *mut c_void,
    params: bitnet_model_params,
) -> *mut bitnet_model {
    call(std::ptr::null_mut(), || {
        let meta = borrow(metadata, "metadata")?;
        check_params(&params)?;
        let progress = |p: f32| match params.progress_callback {
            // SAFETY: the caller's callback, called as its contract says.
            Some(cb) => unsafe { cb(p, params.progress_callback_user_data) },
            None => true,
        };
        let aborted = || {
            Error::new(
                ErrorKind::Aborted,
                "model loading aborted by the progress callback",
            )
        };
        let kvs = meta.kvs();
        if params.vocab_only {
            let g = crate::model::metadata_file(&kvs)?;
            let m = VocabOnlyModel::from_gguf(g)?;
            return Ok(into_handle(bitnet_model::new(ModelSource::VocabOnly(
                Arc::new(m),
            ))));
        }
        let cb =
            set_tensor_data.ok_or_else(|| Error::invalid_argument("set_tensor_data is NULL"))?;
        if !progress(0.0) {
            return Err(aborted());
        }
        let mp = crate::ModelParams {
            head_q8_0: params.head_q8_0,
        };
        let model = Model::from_user(
            &kvs,
            &meta.declared(),
            |t, bytes| {
                let mut ct = bitnet_tensor {
                    r#type: t.ty.id() as i32,
                    ne: [1; 4],
                    nb: [0; 4],
                    data: bytes.as_mut_ptr().cast(),
                    size: bytes.len(),
                    name: [0; BITNET_MAX_NAME],
                };
                for (i, &d) in t.dims.iter().enumerate().take(4) {
                    ct.ne[i] = d as i64;
                }
                ct.nb[0] = t.ty.block_bytes();
                ct.nb[1] = t.ty.row_bytes(t.dims[0]).unwrap_or(0);
                for i in 2..4 {
                    ct.nb[i] = ct.nb[i - 1] * ct.ne[i - 1] as usize;
                }
                for (d, &s) in ct
                    .name
                    .iter_mut()
                    .zip(t.name.as_bytes().iter().take(BITNET_MAX_NAME - 1))
                {
                    *d = s as c_char;
                }
                // SAFETY: the caller's callback, given a tensor whose data points to
                // `bytes.len()` writable bytes that live for the call.
                unsafe { cb(&mut ct, set_tensor_data_ud) };
                Ok(())
            },
            mp,
        )?;
        if !progress(1.0) {
            return Err(aborted());
        }
        Ok(into_handle(bitnet_model::new(ModelSource::Full(Arc::new(
            model,
        )))))
    })
}
