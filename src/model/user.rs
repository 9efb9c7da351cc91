//! Models built in memory from metadata and a function that fills each tensor
//! (`llama_model_init_from_user`, docs/quantize.md): the architecture's tensor list is made
//! from the metadata's hyper-parameters, every tensor F32 unless the caller declared it with
//! another type, then `fill` writes each tensor's bytes once, and the result is bound like a
//! loaded file.

use super::{Config, Model, ModelParams};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, GgufWriter, TensorInfo, Value};
use crate::tensor::GgmlType;

/// A tensor the caller declares: its type (and, for tensors the architecture does not require,
/// its dims).
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredTensor {
    pub name: String,
    pub ty: GgmlType,
    pub dims: Vec<usize>,
}

/// The metadata alone, parsed as a GGUF file (no tensors).
pub(crate) fn metadata_file(kvs: &[(String, Value)]) -> Result<GgufFile> {
    let mut w = GgufWriter::new();
    for (k, v) in kvs {
        w.set(k.clone(), v.clone());
    }
    GgufFile::from_bytes(&w.to_bytes()?)
}

/// The tensors a model of `cfg` needs, with their dims (weights.rs binds exactly these).
fn required_tensors(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (e, q, kv, ff) = (cfg.n_embd, cfg.n_embd_q(), cfg.n_embd_kv(), cfg.n_ff);
    let mut t = vec![
        ("token_embd.weight".to_string(), vec![e, cfg.n_vocab]),
        ("output_norm.weight".to_string(), vec![e]),
    ];
    for il in 0..cfg.n_layer {
        for (name, dims) in [
            ("attn_norm", vec![e]),
            ("attn_q", vec![e, q]),
            ("attn_k", vec![e, kv]),
            ("attn_v", vec![e, kv]),
            ("attn_sub_norm", vec![q]),
            ("attn_output", vec![q, e]),
            ("ffn_norm", vec![e]),
            ("ffn_gate", vec![e, ff]),
            ("ffn_up", vec![e, ff]),
            ("ffn_sub_norm", vec![ff]),
            ("ffn_down", vec![ff, e]),
        ] {
            t.push((format!("blk.{il}.{name}.weight"), dims));
        }
    }
    t
}

impl Model {
    /// Builds a model from metadata (`kvs`: the hyper-parameters under the architecture's
    /// prefix and the `tokenizer.*` keys, as a GGUF file holds them) and `fill`, called once
    /// per tensor with its directory entry and its bytes (zeroed) to write.
    ///
    /// The tensors are the architecture's (`token_embd`, `output_norm`, and per layer the
    /// norms and the seven projections), F32 unless `declared` names them with another type;
    /// a declared tensor the architecture does not require (`output.weight`, `rope_freqs`,
    /// biases, `.scale`) is created with the declared dims and type. Everything is then
    /// checked as a file load checks it.
    pub fn from_user(
        kvs: &[(String, Value)],
        declared: &[DeclaredTensor],
        mut fill: impl FnMut(&TensorInfo, &mut [u8]) -> Result<()>,
        params: ModelParams,
    ) -> Result<Model> {
        let start = std::time::Instant::now();
        let meta = metadata_file(kvs)?;
        let config = Config::from_gguf(&meta).map_err(|e| e.context("model metadata"))?;
        let mut tensors: Vec<(String, Vec<usize>, GgmlType)> = required_tensors(&config)
            .into_iter()
            .map(|(name, dims)| {
                let ty = declared
                    .iter()
                    .find(|d| d.name == name)
                    .map_or(GgmlType::F32, |d| d.ty);
                (name, dims, ty)
            })
            .collect();
        for d in declared {
            if !tensors.iter().any(|t| t.0 == d.name) {
                tensors.push((d.name.clone(), d.dims.clone(), d.ty));
            }
        }
        let mut w = GgufWriter::new();
        for (k, v) in kvs {
            w.set(k.clone(), v.clone());
        }
        for (name, dims, ty) in &tensors {
            let size = ty.tensor_bytes(dims).ok_or_else(|| {
                Error::invalid_argument(format!("tensor {name}: {ty} cannot hold dims {dims:?}"))
            })?;
            let mut zeros = Vec::new();
            zeros.try_reserve_exact(size).map_err(|_| {
                Error::new(
                    crate::error::ErrorKind::OutOfMemory,
                    format!("tensor {name}: cannot allocate {size} bytes"),
                )
            })?;
            zeros.resize(size, 0);
            w.add_tensor(name, dims, *ty, zeros)?;
        }
        let bytes = w.to_bytes()?;
        let file = GgufFile::from_bytes(&bytes)?;
        drop(bytes);
        let file = file.into_owned_with(|f, bytes| {
            for t in f.tensors() {
                let at = f.data_offset() + t.offset;
                fill(t, &mut bytes[at..at + t.size])?;
            }
            Ok(())
        })?;
        let mut model = Model::from_gguf_with_params(file, params)?;
        model.load_us = start.elapsed().as_micros() as i64;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared TQ2_0 model rebuilt from its metadata, declared types and tensor bytes gives
    /// the same tensors; with nothing declared every tensor is F32.
    #[test]
    fn rebuilding_a_shared_model_from_its_parts() {
        let Some(p) = bitnet_testdata::path("models/tiny-spm-tq2_0-q6k.gguf") else {
            return;
        };
        let g = GgufFile::open(&p).unwrap();
        let declared: Vec<DeclaredTensor> = g
            .tensors()
            .iter()
            .map(|t| DeclaredTensor {
                name: t.name.clone(),
                ty: t.ty,
                dims: t.dims.clone(),
            })
            .collect();
        let mut calls = 0;
        let m = Model::from_user(
            g.metadata(),
            &declared,
            |t, out| {
                calls += 1;
                out.copy_from_slice(g.tensor(&t.name).unwrap().data);
                Ok(())
            },
            ModelParams::default(),
        )
        .unwrap();
        assert_eq!(calls, g.tensors().len());
        for t in g.tensors() {
            assert_eq!(m.gguf().tensor(&t.name).unwrap().data, g.view(t).data);
        }
        let m = Model::from_user(g.metadata(), &[], |_, _| Ok(()), ModelParams::default()).unwrap();
        assert!(m.gguf().tensors().iter().all(|t| t.ty == GgmlType::F32));
        let e = Model::from_user(
            g.metadata(),
            &[],
            |t, _| Err(Error::invalid_argument(format!("no data for {}", t.name))),
            ModelParams::default(),
        )
        .unwrap_err();
        assert!(e.message().contains("token_embd"), "{e}");
        let e = Model::from_user(
            &g.metadata()[1..],
            &[],
            |_, _| Ok(()),
            ModelParams::default(),
        )
        .unwrap_err();
        assert!(e.message().contains("general.architecture"), "{e}");
    }
}
