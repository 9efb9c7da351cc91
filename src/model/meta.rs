//! What a model says about itself, as llama.h reports it: metadata as strings
//! (`llama_model_meta_*`), the one-line description, byte and parameter counts, the chat
//! template; and loading with a progress callback.

use super::{Arch, Model};
use crate::error::{Error, ErrorKind, Result};
use crate::gguf::Value;
use std::path::Path;

/// A metadata value as llama.cpp's `gguf_kv_to_str` renders it: strings as-is, integers in
/// decimal, floats like C++ `std::to_string` (`%f`), bools as true/false. `None` for arrays,
/// which llama.cpp leaves out of the model's string metadata.
pub(crate) fn value_to_string(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Array(_) => return None,
        Value::F32(x) => format!("{:.6}", x),
        Value::F64(x) => format!("{:.6}", x),
        Value::Bool(b) => b.to_string(),
        other => other.as_i128()?.to_string(),
    })
}

/// `llama_model_ftype_name` for the `general.file_type` values BitNet models use.
pub(crate) fn ftype_name(ftype: Option<u32>) -> String {
    match ftype {
        Some(0) => "all F32".into(),
        Some(1) => "F16".into(),
        Some(7) => "Q8_0".into(),
        Some(18) => "Q6_K".into(),
        Some(32) => "BF16".into(),
        Some(36) => "TQ1_0 - 1.69 bpw ternary".into(),
        Some(37) => "TQ2_0 - 2.06 bpw ternary".into(),
        Some(40) => "I2_S - 2 bpw ternary".into(),
        Some(n) => format!("unknown ftype {n}"),
        None => "unknown ftype".into(),
    }
}

impl Model {
    /// Opens a model like [`Model::load`], telling `progress` how far it got (0.0 at the start,
    /// 1.0 when done). When `progress` returns false, loading stops with an `Aborted` error.
    pub fn load_with_progress(
        path: impl AsRef<Path>,
        progress: impl FnMut(f32) -> bool,
    ) -> Result<Model> {
        Model::load_with_params_progress(path, super::ModelParams::default(), progress)
    }

    /// [`Model::load_with_progress`] with [`super::ModelParams`].
    pub fn load_with_params_progress(
        path: impl AsRef<Path>,
        params: super::ModelParams,
        mut progress: impl FnMut(f32) -> bool,
    ) -> Result<Model> {
        let aborted = || {
            Error::new(
                ErrorKind::Aborted,
                "model loading aborted by the progress callback",
            )
        };
        if !progress(0.0) {
            return Err(aborted());
        }
        let model = Model::load_with(path, params)?;
        if !progress(1.0) {
            return Err(aborted());
        }
        Ok(model)
    }

    /// The metadata that has a string form (`value_to_string`), in file order.
    pub fn meta_strings(&self) -> Vec<(&str, String)> {
        self.gguf()
            .metadata()
            .iter()
            .filter_map(|(k, v)| value_to_string(v).map(|s| (k.as_str(), s)))
            .collect()
    }

    /// `llama_model_desc`: `"<arch> <size class> <file type>"`, e.g. "bitnet-b1.58 ?B I2_S - 2
    /// bpw ternary". The size class is known for the published layer counts only, as in
    /// llama.cpp ("?B" otherwise).
    pub fn desc(&self) -> String {
        let cfg = self.config();
        let size = match (cfg.arch, cfg.n_layer) {
            (Arch::Bitnet | Arch::BitnetB158, 26) => "3B",
            (Arch::Bitnet25 | Arch::BitnetB158, 30) => "2B",
            _ => "?B",
        };
        format!("{} {} {}", cfg.arch.name(), size, ftype_name(cfg.file_type))
    }

    /// `llama_model_size`: bytes of all tensors in the file.
    pub fn size_bytes(&self) -> u64 {
        self.gguf().tensors().iter().map(|t| t.size as u64).sum()
    }

    /// Bytes of weights one decoded token reads: every tensor of the file once, with the
    /// lm_head counted as the matrix actually multiplied (the `--head-q8` copy when there is
    /// one), the embedding table as the one row looked up, and an unused `output.weight` not at
    /// all. Divided into the machine's read bandwidth it bounds decode speed (`bitnet bench`).
    pub fn bytes_per_token(&self) -> u64 {
        let w = self.weights();
        let embd = &w.token_embd;
        let unused = self
            .gguf()
            .tensor_info("output.weight")
            .map_or(0, |o| o.size as u64);
        let embd_row = embd.rows_len / embd.rows.max(1);
        self.size_bytes() - embd.len as u64 - unused
            + self.head_matrix().data.len() as u64
            + embd_row as u64
    }

    /// `llama_model_n_params`: elements of all tensors in the file.
    pub fn n_params(&self) -> u64 {
        self.gguf()
            .tensors()
            .iter()
            .map(|t| t.n_elements() as u64)
            .sum()
    }

    /// `llama_model_chat_template`: `tokenizer.chat_template` (or `.<name>`), if present.
    pub fn chat_template(&self, name: Option<&str>) -> Option<&str> {
        let key = match name {
            Some(n) => format!("tokenizer.chat_template.{n}"),
            None => "tokenizer.chat_template".to_string(),
        };
        match self.gguf().get(&key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_llama_cpp_does() {
        assert_eq!(value_to_string(&Value::F32(1e-5)).unwrap(), "0.000010");
        assert_eq!(value_to_string(&Value::U32(40)).unwrap(), "40");
        assert_eq!(value_to_string(&Value::I8(-3)).unwrap(), "-3");
        assert_eq!(value_to_string(&Value::Bool(true)).unwrap(), "true");
        assert_eq!(
            value_to_string(&Value::String("a b".into())).unwrap(),
            "a b"
        );
        assert_eq!(
            value_to_string(&Value::Array(crate::gguf::Array::U8(vec![1]))),
            None
        );
    }

    #[test]
    fn shared_model_describes_itself() {
        let Some(p) = bitnet_testdata::path("models/tiny-spm-i2_s.gguf") else {
            return;
        };
        let m = Model::load_with_progress(&p, |_| true).unwrap();
        assert_eq!(m.desc(), "bitnet-b1.58 ?B I2_S - 2 bpw ternary");
        let meta = m.meta_strings();
        assert_eq!(
            meta[0],
            ("general.architecture", "bitnet-b1.58".to_string())
        );
        assert!(meta
            .iter()
            .all(|(k, _)| !k.starts_with("tokenizer.ggml.tokens")));
        assert_eq!(
            m.size_bytes(),
            m.gguf()
                .tensors()
                .iter()
                .map(|t| t.size as u64)
                .sum::<u64>()
        );
        assert!(m.n_params() > 256 * 32000);
        assert_eq!(m.chat_template(None), None);
        let mut calls = Vec::new();
        let e = Model::load_with_progress(&p, |x| {
            calls.push(x);
            false
        })
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Aborted);
        assert_eq!(calls, vec![0.0]);
    }
}
