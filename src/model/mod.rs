//! A loaded model: the GGUF file (memory map), its hyper-parameters and every tensor of the graph
//! bound to the map without copying. The forward pass lives in `forward.rs`, its element-wise
//! operations in [`ops`].

pub mod config;
pub(crate) mod forward;
pub mod meta;
pub mod ops;
pub mod weights;

pub use config::{Arch, Config, FfnActivation};
pub use weights::{LayerWeights, Linear, ModelWeights, TensorRef};

use crate::error::Result;
use crate::gguf::GgufFile;
use crate::kernels;
use crate::tensor::blocks::cast_slice;
use crate::vocab::Vocab;
use std::path::Path;

/// A model ready to run: owns the file, so every tensor view borrows from it.
pub struct Model {
    gguf: GgufFile,
    config: Config,
    weights: ModelWeights,
    vocab: Vocab,
    /// Microseconds `load` took (0 for `from_gguf`); reported by the context perf counters.
    load_us: i64,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("source", &self.gguf.source())
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// Opens (memory-maps) a GGUF file and binds the model in it.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let start = std::time::Instant::now();
        let path = path.as_ref();
        let gguf = GgufFile::open(path)?;
        let mut model = Model::from_gguf(gguf).map_err(|e| e.context(path.display()))?;
        model.load_us = start.elapsed().as_micros() as i64;
        Ok(model)
    }

    /// Binds the model in an already opened file: reads the config, then checks and binds every
    /// tensor (shape and type against the config).
    pub fn from_gguf(gguf: GgufFile) -> Result<Model> {
        let config = Config::from_gguf(&gguf)?;
        let weights = ModelWeights::bind(&gguf, &config)?;
        let vocab = Vocab::from_gguf(&gguf)?;
        if vocab.n_tokens() != config.n_vocab {
            return Err(crate::Error::metadata(format!(
                "the tokenizer has {} tokens but the model's vocabulary is {}",
                vocab.n_tokens(),
                config.n_vocab
            )));
        }
        Ok(Model {
            gguf,
            config,
            weights,
            vocab,
            load_us: 0,
        })
    }

    /// The tokenizer read from the same file.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Microseconds [`Model::load`] took (0 when made with [`Model::from_gguf`]).
    pub fn load_us(&self) -> i64 {
        self.load_us
    }

    pub fn config(&self) -> &Config {
        &self.config
    }
    pub fn gguf(&self) -> &GgufFile {
        &self.gguf
    }
    pub fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// The bytes of a bound tensor (a slice of the map).
    pub fn tensor_data(&self, t: &TensorRef) -> &[u8] {
        self.gguf.view(&self.gguf.tensors()[t.index]).data
    }

    /// A kernel view of a bound weight matrix.
    pub fn matrix(&self, t: &TensorRef) -> kernels::Weights<'_> {
        kernels::Weights {
            ty: t.ty,
            data: self.tensor_data(t),
            rows: t.rows,
            cols: t.cols,
        }
    }

    /// The values of a bound F32 tensor (norm weights, biases). Alignment was checked when the
    /// tensor was bound, so the cast cannot fail for tensors of this model.
    pub fn f32_data(&self, t: &TensorRef) -> &[f32] {
        cast_slice::<f32>(self.tensor_data(t)).unwrap_or(&[])
    }
}
