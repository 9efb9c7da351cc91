//! Vocabulary-only loading (`llama_model_params.vocab_only`): the tokenizer and the metadata of
//! any GGUF file with `tokenizer.ggml.*`, whatever its architecture, without binding (or even
//! having) tensors. llama.cpp's tokenizer tests load their `ggml-vocab-*.gguf` files this way
//! (architectures llama, gpt2, falcon: files with metadata and no tensors).
//!
//! The model queries answer from the file: the hyper-parameters under `<arch>.` (0 when a key
//! is absent), the metadata strings, the chat template. There are no weights, so nothing can
//! run: creating a context from such a model is an error.

use super::Vocab;
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, Value};
use crate::model::meta::value_to_string;
use std::path::Path;

/// The hyper-parameters llama.h's model queries report, read generically under the file's
/// architecture prefix (`<arch>.context_length`, ...).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasicHparams {
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// `<arch>.attention.head_count_kv`, or n_head when absent (llama.cpp's default).
    pub n_head_kv: usize,
}

/// A GGUF file opened for its vocabulary only.
pub struct VocabOnlyModel {
    gguf: GgufFile,
    arch: String,
    hparams: BasicHparams,
    vocab: Vocab,
}

impl std::fmt::Debug for VocabOnlyModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VocabOnlyModel")
            .field("source", &self.gguf.source())
            .field("arch", &self.arch)
            .field("hparams", &self.hparams)
            .finish()
    }
}

impl VocabOnlyModel {
    /// Opens (memory-maps) `path` and reads its vocabulary and hyper-parameters.
    pub fn load(path: impl AsRef<Path>) -> Result<VocabOnlyModel> {
        let path = path.as_ref();
        let gguf = GgufFile::open(path)?;
        VocabOnlyModel::from_gguf(gguf).map_err(|e| e.context(path.display()))
    }

    /// [`VocabOnlyModel::load`] on an opened file.
    pub fn from_gguf(gguf: GgufFile) -> Result<VocabOnlyModel> {
        if gguf.get("tokenizer.ggml.model").is_none() {
            return Err(Error::metadata(
                "tokenizer.ggml.model is missing: the file has no vocabulary",
            ));
        }
        let arch = gguf
            .opt("general.architecture", |f, k| {
                f.get_str(k).map(str::to_string)
            })?
            .unwrap_or_default();
        let count = |key: &str| -> Result<usize> {
            let full = format!("{arch}.{key}");
            match gguf.get(&full) {
                None => Ok(0),
                Some(v) => v
                    .as_i128()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        Error::metadata(format!("{full}: expected a non-negative integer"))
                    }),
            }
        };
        let n_head = count("attention.head_count")?;
        let hparams = BasicHparams {
            n_ctx_train: count("context_length")?,
            n_embd: count("embedding_length")?,
            n_layer: count("block_count")?,
            n_head,
            n_head_kv: match gguf.get(&format!("{arch}.attention.head_count_kv")) {
                None => n_head,
                Some(_) => count("attention.head_count_kv")?,
            },
        };
        let vocab = Vocab::from_gguf(&gguf)?;
        Ok(VocabOnlyModel {
            gguf,
            arch,
            hparams,
            vocab,
        })
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn gguf(&self) -> &GgufFile {
        &self.gguf
    }

    /// `general.architecture` ("" when absent).
    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn hparams(&self) -> &BasicHparams {
        &self.hparams
    }

    /// The metadata that has a string form, in file order (as `Model::meta_strings`).
    pub fn meta_strings(&self) -> Vec<(&str, String)> {
        self.gguf
            .metadata()
            .iter()
            .filter_map(|(k, v)| value_to_string(v).map(|s| (k.as_str(), s)))
            .collect()
    }

    /// `llama_model_desc` for a file whose size class is unknown: `"<arch> ?B <file type>"`.
    pub fn desc(&self) -> String {
        let ftype = self
            .gguf
            .get("general.file_type")
            .and_then(Value::as_i128)
            .and_then(|n| u32::try_from(n).ok());
        format!("{} ?B {}", self.arch, crate::model::meta::ftype_name(ftype))
    }

    /// Bytes of all tensors in the file (0 for the vocabulary files, which have none).
    pub fn size_bytes(&self) -> u64 {
        self.gguf.tensors().iter().map(|t| t.size as u64).sum()
    }

    /// Elements of all tensors in the file.
    pub fn n_params(&self) -> u64 {
        self.gguf
            .tensors()
            .iter()
            .map(|t| t.n_elements() as u64)
            .sum()
    }

    /// `tokenizer.chat_template` (or `.<name>`), if present.
    pub fn chat_template(&self, name: Option<&str>) -> Option<&str> {
        let key = match name {
            Some(n) => format!("tokenizer.chat_template.{n}"),
            None => "tokenizer.chat_template".to_string(),
        };
        match self.gguf.get(&key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{Array, GgufWriter};

    fn tiny(arch: Option<&str>, with_tokenizer: bool) -> Vec<u8> {
        let mut w = GgufWriter::new();
        if let Some(a) = arch {
            w.set("general.architecture", Value::String(a.into()));
            w.set(format!("{a}.context_length"), Value::U32(512));
            w.set(format!("{a}.embedding_length"), Value::U32(64));
            w.set(format!("{a}.block_count"), Value::U32(2));
            w.set(format!("{a}.attention.head_count"), Value::U32(4));
        }
        w.set("general.file_type", Value::U32(1));
        if with_tokenizer {
            w.set("tokenizer.ggml.model", Value::String("gpt2".into()));
            w.set("tokenizer.ggml.pre", Value::String("gpt-2".into()));
            let toks: Vec<String> = (b'a'..=b'z').map(|c| (c as char).to_string()).collect();
            w.set("tokenizer.ggml.tokens", Value::Array(Array::String(toks)));
            w.set(
                "tokenizer.ggml.merges",
                Value::Array(Array::String(vec!["a b".into()])),
            );
            w.set(
                "tokenizer.chat_template",
                Value::String("{{ bos_token }}".into()),
            );
        }
        w.to_bytes().unwrap()
    }

    #[test]
    fn reads_any_architecture_generically() {
        let m =
            VocabOnlyModel::from_gguf(GgufFile::from_bytes(&tiny(Some("qwen9"), true)).unwrap())
                .unwrap();
        assert_eq!(m.arch(), "qwen9");
        assert_eq!(
            *m.hparams(),
            BasicHparams {
                n_ctx_train: 512,
                n_embd: 64,
                n_layer: 2,
                n_head: 4,
                n_head_kv: 4
            }
        );
        assert_eq!(m.vocab().n_tokens(), 26);
        assert_eq!(m.desc(), "qwen9 ?B F16");
        assert_eq!(m.size_bytes(), 0);
        assert_eq!(m.n_params(), 0);
        assert_eq!(m.chat_template(None), Some("{{ bos_token }}"));
        assert_eq!(m.chat_template(Some("tool_use")), None);
        assert!(m
            .meta_strings()
            .iter()
            .any(|(k, v)| *k == "qwen9.block_count" && v == "2"));
    }

    #[test]
    fn missing_architecture_gives_zero_hparams() {
        let m =
            VocabOnlyModel::from_gguf(GgufFile::from_bytes(&tiny(None, true)).unwrap()).unwrap();
        assert_eq!(m.arch(), "");
        assert_eq!(*m.hparams(), BasicHparams::default());
    }

    #[test]
    fn a_file_without_a_tokenizer_is_a_clear_error() {
        let e =
            VocabOnlyModel::from_gguf(GgufFile::from_bytes(&tiny(Some("llama"), false)).unwrap())
                .unwrap_err();
        assert!(e.message().contains("tokenizer.ggml.model"), "{e}");
    }
}
