//! Models from a `FILE *` and back to a file: llama.h's `llama_model_load_from_file_ptr` and
//! `llama_model_save_to_file`.

use super::model::{bitnet_model, bitnet_model_params, check_params, ModelSource};
use super::{borrow, c_str, call, call_void, into_handle};
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::GgufFile;
use crate::model::Model;
use crate::vocab::VocabOnlyModel;
use std::ffi::c_char;
use std::sync::Arc;

/// Reads a C stream with `fread` (so bytes the stream has buffered are seen).
struct CFileReader(*mut libc::FILE);

impl std::io::Read for CFileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `self.0` is the caller's open, non-null FILE (checked before this reader is
        // made); `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::fread(buf.as_mut_ptr().cast(), 1, buf.len(), self.0) };
        // SAFETY: as above.
        if n == 0 && !buf.is_empty() && unsafe { libc::ferror(self.0) } != 0 {
            return Err(std::io::Error::other(
                "fread failed (ferror set on the stream)",
            ));
        }
        Ok(n)
    }
}

fn aborted() -> Error {
    Error::new(
        ErrorKind::Aborted,
        "model loading aborted by the progress callback",
    )
}

/// Loads a model from an open stream: the GGUF is read from the stream's current position to
/// its end (so it can be embedded in a larger file) into memory, then loaded as
/// bitnet_model_load_from_file would load it (params as there; vocab_only too). The stream is
/// not closed; its position is at the end afterwards. NULL on failure (NULL file, a read error,
/// malformed GGUF, ...: bitnet_last_error says which). Free with bitnet_model_free.
#[no_mangle]
pub extern "C" fn bitnet_model_load_from_file_ptr(
    file: *mut libc::FILE,
    params: bitnet_model_params,
) -> *mut bitnet_model {
    call(std::ptr::null_mut(), || {
        if file.is_null() {
            return Err(Error::invalid_argument("file is NULL"));
        }
        check_params(&params)?;
        let progress = |p: f32| match params.progress_callback {
            // SAFETY: the caller's callback, called as its contract says.
            Some(cb) => unsafe { cb(p, params.progress_callback_user_data) },
            None => true,
        };
        if !progress(0.0) {
            return Err(aborted());
        }
        let gguf = GgufFile::from_reader(CFileReader(file), "<FILE *>")?;
        let source = if params.vocab_only {
            ModelSource::VocabOnly(Arc::new(VocabOnlyModel::from_gguf(gguf)?))
        } else {
            let mp = crate::ModelParams {
                head_q8_0: params.head_q8_0,
            };
            ModelSource::Full(Arc::new(
                Model::from_gguf_with_params(gguf, mp).map_err(|e| e.context("<FILE *>"))?,
            ))
        };
        if !progress(1.0) {
            return Err(aborted());
        }
        Ok(into_handle(bitnet_model::new(source)))
    })
}

/// Writes the model as a GGUF file at `path_model`: every metadata entry and tensor, so that
/// loading it back gives the same logits bit for bit. Written to a temporary file beside it and
/// renamed into place when complete. Nothing is returned (llama.h's signature): a failure (NULL
/// arguments, a vocab_only model, an I/O error) is logged and left in bitnet_last_error.
#[no_mangle]
pub extern "C" fn bitnet_model_save_to_file(model: *const bitnet_model, path_model: *const c_char) {
    call_void(|| {
        let result = (|| -> Result<()> {
            let m = borrow(model, "model")?;
            let path = c_str(path_model, "path_model")?;
            let full = m.source.full().map_err(|e| {
                Error::invalid_argument(format!("bitnet_model_save_to_file: {}", e.message()))
            })?;
            full.save_to_file(path)?;
            Ok(())
        })();
        if let Err(e) = &result {
            crate::log::log(
                crate::log::Level::Error,
                &format!("bitnet_model_save_to_file: {e}"),
            );
        }
        result
    })
}
