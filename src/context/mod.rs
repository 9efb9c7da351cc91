//! Evaluation state: the KV cache ([`crate::kv`]), batches ([`batch`]) and the [`Context`] that
//! runs the model's forward pass over them ([`context`]); saving and restoring it (`state.rs`).

pub mod batch;
#[allow(clippy::module_inception)]
pub mod context;
pub mod perf;
mod pool;
mod state;

pub use crate::kv::{KvCache, KvCell};
pub use batch::{Batch, Pos, SeqId, Token};
pub use context::{AbortCallback, Context, ContextParams};
pub use perf::PerfContextData;
