//! Models from memory and back to GGUF: [`Model::from_gguf_with_params`] (a file read from a
//! stream, `llama_model_load_from_file_ptr`) and [`Model::save_to_file`]
//! (`llama_model_save_to_file`).

use super::{Model, ModelParams};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufWriter, Value};
use crate::tensor::i2s_layout::{I2sLayout, BLOCK_SIZE_KEY};
use std::path::Path;

impl Model {
    /// [`Model::from_gguf`] with options: binds the model in an opened (or in-memory) file and
    /// applies `params` as [`Model::load_with`] does.
    pub fn from_gguf_with_params(gguf: GgufFile, params: ModelParams) -> Result<Model> {
        let start = std::time::Instant::now();
        let mut model = Model::from_gguf(gguf)?;
        if params.head_q8_0 {
            model.requantize_head_q8_0()?;
        }
        model.load_us = start.elapsed().as_micros() as i64;
        Ok(model)
    }

    /// A GGUF writer holding this model: every metadata entry and tensor of its file, in file
    /// order, the tensor bytes borrowed from the model (as the kernels read them: an ARM-layout
    /// file's I2_S tensors were rewritten into the x86 layout at load, so the copy says so in
    /// `bitnet.i2_s.block_size`). The lm_head copy of `head_q8_0` is not part of the file.
    pub fn to_gguf_writer(&self) -> Result<GgufWriter<'_>> {
        let g = self.gguf();
        let mut w = GgufWriter::new();
        for (k, v) in g.metadata() {
            w.set(k.clone(), v.clone());
        }
        if g.get(BLOCK_SIZE_KEY).is_some() {
            w.set(BLOCK_SIZE_KEY, Value::U32(I2sLayout::X86.block_size()));
        }
        for t in g.tensors() {
            let view = g.view(t);
            w.add_tensor_borrowed(&t.name, &t.dims, t.ty, view.data)?;
        }
        Ok(w)
    }

    /// Writes the model as a GGUF file at `path` ([`Model::to_gguf_writer`]): loading it back
    /// gives a model with the same metadata, tensors and logits bit for bit. The file is
    /// written under a temporary name beside `path` and renamed into place when complete.
    pub fn save_to_file(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let w = self
            .to_gguf_writer()
            .map_err(|e| e.context(path.display()))?;
        write_gguf_file(w, path)
    }
}

/// Writes `w` as the file `path`: under a temporary name beside it, synced and renamed into
/// place when complete, so `path` is either the whole new file or untouched (the temporary file
/// is removed on failure). Returns the bytes written.
pub(crate) fn write_gguf_file(w: GgufWriter<'_>, path: &Path) -> Result<u64> {
    let shown = path.display().to_string();
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::invalid_argument(format!("{shown}: not a file path")))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&shown, e))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, f);
        let n = w.write(&mut out).map_err(|e| e.context(&shown))?;
        let f = out
            .into_inner()
            .map_err(|e| Error::io(&shown, e.into_error()))?;
        f.sync_all().map_err(|e| Error::io(&shown, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(&shown, e))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::GgmlType;

    #[test]
    fn gguf_reader_round_trip_of_a_written_file() {
        let data = vec![7u8; 4 * 8];
        let mut w = GgufWriter::new();
        w.set_str("general.architecture", "x");
        w.add_tensor_borrowed("t", &[8], GgmlType::F32, &data)
            .unwrap();
        assert!(w
            .add_tensor_borrowed("u", &[8], GgmlType::F32, &data[..4])
            .is_err());
        let bytes = w.to_bytes().unwrap();
        let g = GgufFile::from_reader(&bytes[..], "<test>").unwrap();
        assert_eq!(g.tensor("t").unwrap().data, &data[..]);
        assert_eq!(g.get_str("general.architecture").unwrap(), "x");
        let e = GgufFile::from_reader(&b""[..], "<empty>").unwrap_err();
        assert!(e.message().contains("empty"), "{e}");
        let e = GgufFile::from_reader(&bytes[..bytes.len() / 2], "<cut>").unwrap_err();
        assert!(e.message().contains("<cut>"), "{e}");
    }
}
