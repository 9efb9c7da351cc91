#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]
//! bitnet: run BitNet b1.58 ternary language models on CPU.
//!
//! Data flow, one module a stage: [`gguf`] (file) → [`tensor`] (types, blocks) → kernels →
//! model → context/KV → sampling, with vocab beside them and the C API (`ffi`) and the CLI on
//! top of the same Rust API. See `ARCHITECTURE.md`.

mod alloc;
pub mod chat;
mod context;
mod error;
pub mod ffi;
pub mod gguf;
pub mod kernels;
mod kv;
pub mod log;
mod model;
pub mod sampling;
pub mod tensor;
mod types;
pub mod vocab;

pub use context::{
    AbortCallback, AttentionType, Batch, Context, ContextParams, PerfContextData, PoolingType,
    ThreadPool,
};
pub use error::{Error, ErrorKind, Result};
pub use kv::{KvCache, KvCell};
pub use model::quantize;
pub use model::{Arch, Config, DeclaredTensor, FfnActivation, Model, ModelParams};
pub use types::{Pos, SeqId, Token};
pub use vocab::Vocab;

/// The README's Rust example, compiled as a doctest so it cannot drift from the API.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
