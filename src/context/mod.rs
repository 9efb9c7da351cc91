//! Evaluation state: the KV cache ([`kv_cache`]), batches ([`batch`]) and the [`Context`] that
//! runs the model's forward pass over them ([`context`]); saving and restoring it (`state.rs`).

pub mod batch;
#[allow(clippy::module_inception)]
pub mod context;
pub mod kv_cache;
pub mod perf;
mod state;

pub use batch::{Batch, Pos, SeqId, Token};
pub use context::{argmax, top_k, Context, ContextParams};
pub use kv_cache::{KvCache, KvCell};
pub use perf::PerfContextData;
