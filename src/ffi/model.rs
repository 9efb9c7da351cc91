//! Model group: params, load (with progress callback), free, hyper-parameters, metadata.

use super::vocab::bitnet_vocab;
use super::{
    bitnet_token, borrow, c_str, call, call_void, call_with, free_handle, into_handle,
    write_c_string, BITNET_TOKEN_NULL,
};
use crate::error::{Error, Result};
use crate::log::log_warn;
use crate::model::Model;
use crate::vocab::VocabOnlyModel;
use std::ffi::{c_char, c_void, CString};
use std::sync::{Arc, Mutex};

/// Called during loading with a progress in [0, 1]; return false to abort the load
/// (bitnet_model_load_from_file then returns NULL).
pub type bitnet_progress_callback =
    Option<unsafe extern "C" fn(progress: f32, user_data: *mut c_void) -> bool>;

/// Model loading options: llama.h's llama_model_params, field for field in its order and with
/// its types (the enum-typed fields are int32_t holding the enum's values), then one bitnet
/// extension. Device fields do what they do in a CPU-only llama.cpp (nothing); fields asking
/// for something bitnet cannot do (a device list, tensor buffer overrides, metadata overrides,
/// no_alloc) are refused: bitnet_model_load_from_file returns NULL and says why.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_params {
    /// NULL-terminated device list (`ggml_backend_dev_t *`): bitnet has no devices; NULL or an
    /// empty list (first entry NULL) = the CPU, anything else is refused.
    pub devices: *mut *mut c_void,
    /// Tensor buffer type overrides, terminated by a NULL pattern: NULL or empty, else refused.
    pub tensor_buft_overrides: *const bitnet_model_tensor_buft_override,
    /// Layers to offload to a GPU (default -1 = all): no GPU, ignored.
    pub n_gpu_layers: i32,
    /// `enum bitnet_split_mode` (default LAYER): no GPUs to split over, ignored.
    pub split_mode: i32,
    /// `enum bitnet_load_mode` (default AUTO): the file is always memory-mapped; MLOCK and
    /// MMAP_MLOCK log a warning that the map stays pageable (see bitnet_supports_mlock).
    pub load_mode: i32,
    /// `enum bitnet_lazy_mode` (default AUTO): BitNet architectures mark no lazy tensors and
    /// the map is read on demand anyway, ignored.
    pub lazy_mode: i32,
    /// GPU for the whole model with split mode NONE: ignored.
    pub main_gpu: i32,
    /// Per-GPU proportions (bitnet_max_devices() floats): ignored.
    pub tensor_split: *const f32,
    /// Optional load progress callback (NULL: none).
    pub progress_callback: bitnet_progress_callback,
    /// Passed to progress_callback.
    pub progress_callback_user_data: *mut c_void,
    /// Metadata overrides, terminated by an empty key: NULL or empty, else refused (not
    /// supported).
    pub kv_overrides: *const bitnet_model_kv_override,
    /// Load only the vocabulary and the metadata, from any GGUF file with `tokenizer.ggml.*`
    /// whatever its architecture (tensors are neither bound nor needed). The model queries
    /// answer; creating a context from such a model fails.
    pub vocab_only: bool,
    /// Validate tensor data. Shapes, types and sizes are always checked; values are not.
    pub check_tensors: bool,
    /// Extra (repacking) buffer types (default true): bitnet's kernels read the file's layout
    /// directly, ignored.
    pub use_extra_bufts: bool,
    /// Bypass the host buffer: ignored (no device buffers).
    pub no_host: bool,
    /// Only load metadata and simulate allocations: not supported, refused.
    pub no_alloc: bool,
    /// Load multi-token-prediction layers: BitNet models have none, ignored.
    pub load_mtp: bool,
    /// Re-quantize the tied lm_head (an F16/BF16/F32 token_embd) to Q8_0 at load time: the
    /// output matmul streams about half the bytes, for that much extra memory and logits that
    /// are no longer the reference's bit for bit. Default false. (bitnet extension, appended.)
    pub head_q8_0: bool,
}

/// `llama_model_tensor_buft_override`: a tensor-name pattern and a ggml buffer type (opaque).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_model_tensor_buft_override {
    pub pattern: *const c_char,
    pub buft: *mut c_void,
}

/// Value kinds of a metadata override (`llama_model_kv_override_type`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_model_kv_override_type {
    BITNET_KV_OVERRIDE_TYPE_INT = 0,
    BITNET_KV_OVERRIDE_TYPE_FLOAT = 1,
    BITNET_KV_OVERRIDE_TYPE_BOOL = 2,
    BITNET_KV_OVERRIDE_TYPE_STR = 3,
}

/// The value of a metadata override (llama.h's anonymous union, named here).
#[repr(C)]
#[derive(Clone, Copy)]
pub union bitnet_model_kv_override_value {
    pub val_i64: i64,
    pub val_f64: f64,
    pub val_bool: bool,
    pub val_str: [c_char; 128],
}

/// A metadata override (`llama_model_kv_override`): same layout as llama.h's (264 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct bitnet_model_kv_override {
    /// `enum bitnet_model_kv_override_type`.
    pub tag: i32,
    pub key: [c_char; 128],
    pub value: bitnet_model_kv_override_value,
}

impl std::fmt::Debug for bitnet_model_kv_override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("bitnet_model_kv_override")
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

/// GPU split modes (`llama_split_mode`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_split_mode {
    BITNET_SPLIT_MODE_NONE = 0,
    BITNET_SPLIT_MODE_LAYER = 1,
    BITNET_SPLIT_MODE_ROW = 2,
    BITNET_SPLIT_MODE_TENSOR = 3,
}

/// Model loading modes (`llama_load_mode`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_load_mode {
    BITNET_LOAD_MODE_AUTO = -1,
    BITNET_LOAD_MODE_NONE = 0,
    BITNET_LOAD_MODE_MMAP = 1,
    BITNET_LOAD_MODE_MLOCK = 2,
    BITNET_LOAD_MODE_MMAP_MLOCK = 3,
    BITNET_LOAD_MODE_DIRECT_IO = 4,
}

/// Lazy tensor reading (`llama_lazy_mode`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_lazy_mode {
    BITNET_LAZY_MODE_OFF = 0,
    BITNET_LAZY_MODE_AUTO = 1,
    BITNET_LAZY_MODE_ON = 2,
}

/// What a model handle holds: a runnable model, or (vocab_only) the vocabulary and metadata.
#[derive(Clone)]
pub(crate) enum ModelSource {
    Full(Arc<Model>),
    VocabOnly(Arc<VocabOnlyModel>),
}

impl ModelSource {
    pub(crate) fn vocab(&self) -> &crate::vocab::Vocab {
        match self {
            ModelSource::Full(m) => m.vocab(),
            ModelSource::VocabOnly(m) => m.vocab(),
        }
    }

    /// The runnable model, or an error saying the handle holds only a vocabulary.
    pub(crate) fn full(&self) -> Result<&Arc<Model>> {
        match self {
            ModelSource::Full(m) => Ok(m),
            ModelSource::VocabOnly(m) => Err(Error::invalid_argument(format!(
                "model {} was loaded with vocab_only: it has a vocabulary but no weights, \
                 so it cannot make a context (load it without vocab_only)",
                m.gguf().source()
            ))),
        }
    }

    pub(crate) fn gguf(&self) -> &crate::gguf::GgufFile {
        match self {
            ModelSource::Full(m) => m.gguf(),
            ModelSource::VocabOnly(m) => m.gguf(),
        }
    }

    pub(crate) fn meta_strings(&self) -> Vec<(&str, String)> {
        match self {
            ModelSource::Full(m) => m.meta_strings(),
            ModelSource::VocabOnly(m) => m.meta_strings(),
        }
    }

    fn desc(&self) -> String {
        match self {
            ModelSource::Full(m) => m.desc(),
            ModelSource::VocabOnly(m) => m.desc(),
        }
    }

    fn size_bytes(&self) -> u64 {
        match self {
            ModelSource::Full(m) => m.size_bytes(),
            ModelSource::VocabOnly(m) => m.size_bytes(),
        }
    }

    fn n_params(&self) -> u64 {
        match self {
            ModelSource::Full(m) => m.n_params(),
            ModelSource::VocabOnly(m) => m.n_params(),
        }
    }

    fn chat_template(&self, name: Option<&str>) -> Option<&str> {
        match self {
            ModelSource::Full(m) => m.chat_template(name),
            ModelSource::VocabOnly(m) => m.chat_template(name),
        }
    }

    /// The hyper-parameters llama.h's model queries report.
    pub(crate) fn hparams(&self) -> crate::vocab::BasicHparams {
        match self {
            ModelSource::Full(m) => {
                let c = m.config();
                crate::vocab::BasicHparams {
                    n_ctx_train: c.n_ctx_train,
                    n_embd: c.n_embd,
                    n_layer: c.n_layer,
                    n_head: c.n_head,
                    n_head_kv: c.n_head_kv,
                }
            }
            ModelSource::VocabOnly(m) => *m.hparams(),
        }
    }
}

/// A loaded model (opaque). Owns the memory map, the hyper-parameters and the vocabulary.
pub struct bitnet_model {
    pub(crate) source: ModelSource,
    pub(crate) vocab: bitnet_vocab,
    /// NUL-terminated chat templates handed out by bitnet_model_chat_template, by name.
    chat_templates: Mutex<Vec<(Option<String>, CString)>>,
}

/// The defaults: CPU, mmap on, no callback.
#[no_mangle]
pub extern "C" fn bitnet_model_default_params() -> bitnet_model_params {
    call_with(|_| default_params(), || Ok(default_params()))
}

fn default_params() -> bitnet_model_params {
    bitnet_model_params {
        devices: std::ptr::null_mut(),
        tensor_buft_overrides: std::ptr::null(),
        n_gpu_layers: -1,
        split_mode: bitnet_split_mode::BITNET_SPLIT_MODE_LAYER as i32,
        load_mode: bitnet_load_mode::BITNET_LOAD_MODE_AUTO as i32,
        lazy_mode: bitnet_lazy_mode::BITNET_LAZY_MODE_AUTO as i32,
        main_gpu: 0,
        tensor_split: std::ptr::null(),
        progress_callback: None,
        progress_callback_user_data: std::ptr::null_mut(),
        kv_overrides: std::ptr::null(),
        vocab_only: false,
        check_tensors: false,
        use_extra_bufts: true,
        no_host: false,
        no_alloc: false,
        load_mtp: false,
        head_q8_0: false,
    }
}

/// Refuses the fields that ask for something bitnet cannot do; warns about mlock.
pub(crate) fn check_params(p: &bitnet_model_params) -> Result<()> {
    let unsupported = |what: &str| Err(Error::unsupported(format!("model parameter {what}")));
    // SAFETY (the three reads below): non-NULL pointers the caller passes point to at least
    // their list's first entry (llama.h contract: NULL-terminated lists).
    if !p.devices.is_null() && !unsafe { *p.devices }.is_null() {
        return unsupported("devices: bitnet has no devices (NULL or an empty list = the CPU)");
    }
    if !p.tensor_buft_overrides.is_null()
        && !unsafe { (*p.tensor_buft_overrides).pattern }.is_null()
    {
        return unsupported("tensor_buft_overrides: there are no buffer types to choose");
    }
    if !p.kv_overrides.is_null() && unsafe { (*p.kv_overrides).key[0] } != 0 {
        return unsupported("kv_overrides: metadata overrides are not supported");
    }
    if p.no_alloc {
        return unsupported("no_alloc: simulated loading is not supported");
    }
    match p.load_mode {
        -1 | 0 | 1 | 4 => {}
        2 | 3 => log_warn!("bitnet: mlock is not supported; the model stays pageable"),
        v => {
            return Err(Error::invalid_argument(format!("load_mode {v} is unknown")));
        }
    }
    Ok(())
}

/// Loads a GGUF model (memory-mapped). NULL on failure (bitnet_last_error says why: missing
/// file, malformed file, unsupported architecture or tensor type, bad metadata, or aborted by
/// the progress callback). Free with bitnet_model_free.
#[no_mangle]
pub extern "C" fn bitnet_model_load_from_file(
    path_model: *const c_char,
    params: bitnet_model_params,
) -> *mut bitnet_model {
    call(std::ptr::null_mut(), || {
        let path = c_str(path_model, "path_model")?;
        check_params(&params)?;
        let progress = |p: f32| match params.progress_callback {
            // SAFETY: the caller's callback, called as its contract says.
            Some(cb) => unsafe { cb(p, params.progress_callback_user_data) },
            None => true,
        };
        let source = if params.vocab_only {
            load_vocab_only(path, progress)?
        } else {
            let mp = crate::ModelParams {
                head_q8_0: params.head_q8_0,
            };
            ModelSource::Full(Arc::new(Model::load_with_params_progress(
                path, mp, progress,
            )?))
        };
        Ok(into_handle(bitnet_model::new(source)))
    })
}

impl bitnet_model {
    /// A handle over a loaded model (or vocabulary).
    pub(crate) fn new(source: ModelSource) -> bitnet_model {
        bitnet_model {
            vocab: bitnet_vocab::new(source.clone()),
            source,
            chat_templates: Mutex::new(Vec::new()),
        }
    }
}

/// vocab_only loading, with the progress callback called at 0 and 1 as for a full load.
fn load_vocab_only(path: &str, mut progress: impl FnMut(f32) -> bool) -> Result<ModelSource> {
    let aborted = || {
        Error::new(
            crate::error::ErrorKind::Aborted,
            "model loading aborted by the progress callback",
        )
    };
    if !progress(0.0) {
        return Err(aborted());
    }
    let m = VocabOnlyModel::load(path)?;
    if !progress(1.0) {
        return Err(aborted());
    }
    Ok(ModelSource::VocabOnly(Arc::new(m)))
}

/// Frees a model. Contexts made from it must be freed first. NULL is a no-op. Using the model
/// afterwards is undefined behaviour (a freed pointer cannot be detected).
#[no_mangle]
pub extern "C" fn bitnet_model_free(model: *mut bitnet_model) {
    call_void(|| {
        free_handle(model);
        Ok(())
    })
}

/// The model's vocabulary, owned by the model (do not free). NULL if model is NULL.
#[no_mangle]
pub extern "C" fn bitnet_model_get_vocab(model: *const bitnet_model) -> *const bitnet_vocab {
    call(std::ptr::null(), || {
        Ok(&borrow(model, "model")?.vocab as *const bitnet_vocab)
    })
}

fn config_value(
    model: *const bitnet_model,
    f: impl FnOnce(&crate::vocab::BasicHparams) -> usize,
) -> i32 {
    call(-1, || {
        let v = f(&borrow(model, "model")?.source.hparams());
        i32::try_from(v).map_err(|_| Error::internal(format!("value {v} does not fit int32_t")))
    })
}

/// Training context length. -1 if model is NULL (as every getter below).
#[no_mangle]
pub extern "C" fn bitnet_model_n_ctx_train(model: *const bitnet_model) -> i32 {
    config_value(model, |c| c.n_ctx_train)
}

/// Embedding width.
#[no_mangle]
pub extern "C" fn bitnet_model_n_embd(model: *const bitnet_model) -> i32 {
    config_value(model, |c| c.n_embd)
}

/// Number of transformer blocks.
#[no_mangle]
pub extern "C" fn bitnet_model_n_layer(model: *const bitnet_model) -> i32 {
    config_value(model, |c| c.n_layer)
}

/// Number of attention (query) heads.
#[no_mangle]
pub extern "C" fn bitnet_model_n_head(model: *const bitnet_model) -> i32 {
    config_value(model, |c| c.n_head)
}

/// Number of key/value heads.
#[no_mangle]
pub extern "C" fn bitnet_model_n_head_kv(model: *const bitnet_model) -> i32 {
    config_value(model, |c| c.n_head_kv)
}

/// Writes `"<arch> <size class> <file type>"` (e.g. "bitnet-b1.58 2B I2_S - 2 bpw ternary") with
/// snprintf semantics: returns the full length; -1 on a NULL model.
#[no_mangle]
pub extern "C" fn bitnet_model_desc(
    model: *const bitnet_model,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    call(-1, || {
        let desc = borrow(model, "model")?.source.desc();
        write_c_string(buf, buf_size, desc.as_bytes(), "buf")
    })
}

/// Total bytes of all tensors. 0 on a NULL model.
#[no_mangle]
pub extern "C" fn bitnet_model_size(model: *const bitnet_model) -> u64 {
    call(0, || Ok(borrow(model, "model")?.source.size_bytes()))
}

/// Total number of weights (elements of all tensors). 0 on a NULL model.
#[no_mangle]
pub extern "C" fn bitnet_model_n_params(model: *const bitnet_model) -> u64 {
    call(0, || Ok(borrow(model, "model")?.source.n_params()))
}

/// Number of metadata entries with a string form (arrays are left out, as in llama.cpp);
/// -1 on a NULL model.
#[no_mangle]
pub extern "C" fn bitnet_model_meta_count(model: *const bitnet_model) -> i32 {
    call(-1, || {
        Ok(borrow(model, "model")?.source.meta_strings().len() as i32)
    })
}

/// The value of metadata key `key` as a string (numbers in decimal, floats as "%f"), with
/// snprintf semantics. Returns the full length, or -1 (and `buf[0] = 0`) when the key is missing
/// or is an array.
#[no_mangle]
pub extern "C" fn bitnet_model_meta_val_str(
    model: *const bitnet_model,
    key: *const c_char,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    call(-1, || {
        clear_buf(buf, buf_size);
        let m = &borrow(model, "model")?.source;
        let key = c_str(key, "key")?;
        let meta = m.meta_strings();
        let (_, v) = meta.iter().find(|(k, _)| *k == key).ok_or_else(|| {
            Error::invalid_argument(format!("metadata key {key:?} is missing or an array"))
        })?;
        write_c_string(buf, buf_size, v.as_bytes(), "buf")
    })
}

/// The key of metadata entry `i` (0..bitnet_model_meta_count, file order), snprintf
/// semantics; -1 (`buf[0] = 0`) when `i` is out of range.
#[no_mangle]
pub extern "C" fn bitnet_model_meta_key_by_index(
    model: *const bitnet_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    meta_by_index(model, i, buf, buf_size, |k, _| k)
}

/// The value of metadata entry `i` as a string, snprintf semantics; -1 (`buf[0] = 0`) when `i`
/// is out of range.
#[no_mangle]
pub extern "C" fn bitnet_model_meta_val_str_by_index(
    model: *const bitnet_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
) -> i32 {
    meta_by_index(model, i, buf, buf_size, |_, v| v)
}

fn meta_by_index(
    model: *const bitnet_model,
    i: i32,
    buf: *mut c_char,
    buf_size: usize,
    pick: impl for<'a> FnOnce(&'a str, &'a str) -> &'a str,
) -> i32 {
    call(-1, || {
        clear_buf(buf, buf_size);
        let meta = borrow(model, "model")?.source.meta_strings();
        let (k, v) = usize::try_from(i)
            .ok()
            .and_then(|i| meta.get(i))
            .ok_or_else(|| {
                Error::invalid_argument(format!("metadata index {i} is outside 0..{}", meta.len()))
            })?;
        write_c_string(buf, buf_size, pick(k, v).as_bytes(), "buf")
    })
}

/// Sets buf[0] = 0 when there is room, so a failed lookup leaves an empty string.
fn clear_buf(buf: *mut c_char, buf_size: usize) {
    if !buf.is_null() && buf_size > 0 {
        // SAFETY: non-null with at least one byte, per the caller's contract.
        unsafe { *buf = 0 };
    }
}

/// The chat template stored in the model (`tokenizer.chat_template`, or
/// `tokenizer.chat_template.<name>` when name is not NULL), or NULL if there is none. The
/// string lives as long as the model.
#[no_mangle]
pub extern "C" fn bitnet_model_chat_template(
    model: *const bitnet_model,
    name: *const c_char,
) -> *const c_char {
    call(std::ptr::null(), || {
        let m = borrow(model, "model")?;
        let name = if name.is_null() {
            None
        } else {
            Some(c_str(name, "name")?.to_string())
        };
        let Some(tmpl) = m.source.chat_template(name.as_deref()) else {
            return Ok(std::ptr::null());
        };
        let mut cache = m.chat_templates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = cache.iter().find(|(n, _)| *n == name) {
            return Ok(s.as_ptr());
        }
        let s =
            CString::new(tmpl).map_err(|_| Error::metadata("chat template contains a NUL byte"))?;
        let ptr = s.as_ptr(); // the CString's heap buffer does not move when the Vec grows
        cache.push((name, s));
        Ok(ptr)
    })
}

/// False: BitNet models are decoder-only.
#[no_mangle]
pub extern "C" fn bitnet_model_has_encoder(model: *const bitnet_model) -> bool {
    call(false, || borrow(model, "model").map(|_| false))
}

/// BITNET_TOKEN_NULL (-1): decoder-only models have no decoder start token.
#[no_mangle]
pub extern "C" fn bitnet_model_decoder_start_token(model: *const bitnet_model) -> bitnet_token {
    call(BITNET_TOKEN_NULL, || {
        borrow(model, "model").map(|_| BITNET_TOKEN_NULL)
    })
}

/// Shared checks for code that needs the Rust model.
pub(crate) fn model_ref<'a>(model: *const bitnet_model) -> Result<&'a bitnet_model> {
    borrow(model, "model")
}
