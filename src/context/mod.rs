//! Evaluation state: the KV cache ([`crate::kv`]), batches ([`batch`]) and the [`Context`] that
//! runs the model's forward pass over them ([`context`]); saving and restoring it (`state.rs`).

mod batch;
#[allow(clippy::module_inception)]
mod context;
mod embeddings;
pub(crate) mod perf;
mod pool;
mod state;
mod threadpool;

pub(crate) use crate::kv::KvCache;
pub use batch::Batch;
pub use context::{AbortCallback, Context, ContextParams};
pub use embeddings::{AttentionType, PoolingType};
pub use perf::PerfContextData;
pub use threadpool::ThreadPool;
