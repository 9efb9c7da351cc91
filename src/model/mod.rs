//! A loaded model: the GGUF file (memory map), its hyper-parameters and every tensor of the graph
//! bound to the map without copying. The forward pass lives in `forward.rs`, its element-wise
//! operations in [`ops`].

mod attention;
mod config;
pub(crate) mod forward;
mod invariant;
mod io;
mod layout;
pub(crate) mod meta;
mod ops;
pub mod quantize;
mod user;
mod weights;

pub use config::{Arch, Config, FfnActivation};
pub(crate) use user::metadata_file;
pub use user::DeclaredTensor;

pub(crate) use weights::{ModelWeights, TensorRef};

use crate::error::Result;
use crate::gguf::GgufFile;
use crate::kernels;
use crate::tensor::blocks::cast_slice;
use crate::tensor::blocks::{BlockQ8_0, QK8_0};
use crate::tensor::i2s_layout::I2sLayout;
use crate::tensor::GgmlType;
use crate::vocab::Vocab;
use rayon::prelude::*;
use std::path::Path;

/// A model ready to run: owns the file, so every tensor view borrows from it.
pub struct Model {
    gguf: GgufFile,
    config: Config,
    weights: ModelWeights,
    vocab: Vocab,
    /// Microseconds `load` took (0 for `from_gguf`); reported by the context perf counters.
    load_us: i64,
    /// The lm_head re-quantized at load time ([`ModelParams::head_q8_0`]); `None` = the file's
    /// `token_embd` is used as is.
    head_q8_0: Option<Vec<BlockQ8_0>>,
}

/// Options for [`Model::load_with`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelParams {
    /// Re-quantize the tied lm_head (`token_embd`) to Q8_0 at load time, when the file stores
    /// it as F16, BF16 or F32. The output matmul then streams 1.06 bytes per weight instead of 2
    /// (for 2B-4T: 349 MB instead of 657 MB a token), at the cost of that much extra memory and
    /// slightly different logits (the activations are quantized to Q8_0 blocks too). Off by
    /// default because the logits are then no longer the reference's bit for bit; the embedding
    /// lookup keeps using the exact file rows.
    pub head_q8_0: bool,
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
        Model::load_with(path, ModelParams::default())
    }

    /// [`Model::load`] with options.
    pub fn load_with(path: impl AsRef<Path>, params: ModelParams) -> Result<Model> {
        Model::load_with_i2s_layout(path, params, None)
    }

    /// [`Model::load_with`] for a file whose I2_S layout the caller knows: `Some(layout)` says
    /// which of bitnet.cpp's two layouts its ternary tensors use (an ARM-quantized file:
    /// [`I2sLayout::Arm`]); `None` takes the `BITNET_I2S_LAYOUT` environment variable, else
    /// the x86 layout. A file that names its layout (`bitnet.i2_s.block_size`) is read as it
    /// says, and a choice contradicting it is an error (docs/i2s-layouts.md).
    pub fn load_with_i2s_layout(
        path: impl AsRef<Path>,
        params: ModelParams,
        layout: Option<I2sLayout>,
    ) -> Result<Model> {
        let start = std::time::Instant::now();
        let path = path.as_ref();
        let gguf = GgufFile::open(path)?;
        let mut model =
            Model::from_gguf_with(gguf, layout).map_err(|e| e.context(path.display()))?;
        if params.head_q8_0 {
            model.requantize_head_q8_0()?;
        }
        model.load_us = start.elapsed().as_micros() as i64;
        Ok(model)
    }

    /// Replaces the lm_head by a Q8_0 copy of `token_embd` (see [`ModelParams::head_q8_0`]).
    /// A quantized table (Q6_K, Q8_0, ternary) is left as it is.
    fn requantize_head_q8_0(&mut self) -> Result<()> {
        let t = self.weights.token_embd;
        if !matches!(t.ty, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32) {
            return Ok(());
        }
        let data = self.tensor_data(&t);
        let row_bytes =
            t.ty.row_bytes(t.cols)
                .ok_or_else(|| crate::Error::internal("token_embd row size"))?;
        if !t.cols.is_multiple_of(QK8_0) {
            return Err(crate::Error::unsupported(format!(
                "head_q8_0: n_embd {} is not a multiple of {QK8_0}",
                t.cols
            )));
        }
        let per_row = t.cols / QK8_0;
        let mut out = vec![
            BlockQ8_0 {
                d: 0,
                qs: [0; QK8_0]
            };
            t.rows * per_row
        ];
        // In slices of rows, each slice's source pages released right after (the embedding
        // lookup only touches a few rows again): peak RSS stays near file + copy - table.
        const SLICE_ROWS: usize = 8192;
        for (si, slice) in out.chunks_mut(SLICE_ROWS * per_row).enumerate() {
            let r0 = si * SLICE_ROWS;
            let src = &data[r0 * row_bytes..(r0 + slice.len() / per_row) * row_bytes];
            slice
                .par_chunks_mut(per_row)
                .enumerate()
                .try_for_each_init(
                    || vec![0f32; t.cols],
                    |row, (r, dst)| -> Result<()> {
                        crate::tensor::dequantize_row(
                            t.ty,
                            &src[r * row_bytes..(r + 1) * row_bytes],
                            row,
                            0.0,
                        )?;
                        dst.copy_from_slice(&crate::tensor::quantize_q8_0(row));
                        Ok(())
                    },
                )?;
            self.gguf.release_pages(src);
        }
        self.head_q8_0 = Some(out);
        Ok(())
    }

    /// The weights of the lm_head: the re-quantized copy if there is one, else `token_embd`.
    pub fn head_matrix(&self) -> kernels::Weights<'_> {
        match &self.head_q8_0 {
            Some(blocks) => kernels::Weights::bound(
                GgmlType::Q8_0,
                crate::tensor::blocks::as_bytes(blocks),
                self.weights.token_embd.rows,
                self.weights.token_embd.cols,
                0.0,
            ),
            None => self.matrix(&self.weights.token_embd),
        }
    }

    /// Binds the model in an already opened file: reads the config, then checks and binds every
    /// tensor (shape and type against the config).
    /// An ARM-layout file (its `bitnet.i2_s.block_size` key, or `BITNET_I2S_LAYOUT`) is first
    /// rewritten into the kernels' layout in memory.
    pub fn from_gguf(gguf: GgufFile) -> Result<Model> {
        Model::from_gguf_with(gguf, None)
    }

    fn from_gguf_with(gguf: GgufFile, layout: Option<I2sLayout>) -> Result<Model> {
        let asked = match layout {
            Some(l) => Some(l),
            None => layout::env_layout()?,
        };
        let layout = layout::resolve(&gguf, asked)?;
        let gguf = layout::to_kernel_layout(gguf, layout)?;
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
            head_q8_0: None,
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
    pub(crate) fn weights(&self) -> &ModelWeights {
        &self.weights
    }

    /// The bytes of a bound tensor: its range of the map, bound at load.
    pub(crate) fn tensor_data(&self, t: &TensorRef) -> &[u8] {
        &self.gguf.bytes()[t.offset..t.offset + t.len]
    }

    /// A kernel view of a bound weight matrix (checked and its scale read at load).
    pub(crate) fn matrix(&self, t: &TensorRef) -> kernels::Weights<'_> {
        let data = &self.gguf.bytes()[t.offset..t.offset + t.rows_len];
        kernels::Weights::bound(t.ty, data, t.rows, t.cols, t.scale)
    }

    /// The values of a bound F32 tensor (norm weights, biases). Alignment was checked when the
    /// tensor was bound, so the cast cannot fail for tensors of this model.
    pub(crate) fn f32_data(&self, t: &TensorRef) -> &[f32] {
        cast_slice::<f32>(self.tensor_data(t)).unwrap_or(&[])
    }
}
