#![allow(clippy::needless_range_loop, clippy::too_many_arguments)]
//! bitnet: run BitNet b1.58 ternary language models on CPU.
//!
//! Data flow, one module a stage: [`gguf`] (file) → [`tensor`] (types, blocks) → kernels →
//! model → context/KV → sampling, with vocab beside them and the C API (`ffi`) and the CLI on
//! top of the same Rust API. See `ARCHITECTURE.md`.

pub mod error;
pub mod gguf;
pub mod tensor;
pub mod vocab;

pub use error::{Error, ErrorKind, Result};
pub use vocab::Vocab;

#[doc(hidden)]
pub mod testdata;
