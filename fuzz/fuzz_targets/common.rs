//! What the model-driven targets (decode, positions, state) share: the tiny model, loaded once,
//! and single-threaded context parameters.

use bitnet::{ContextParams, Model};
use std::sync::{Arc, OnceLock};

/// The shared tiny model (`$BITNET_TEST_DATA/models/tiny-spm-tq2_0-q6k.gguf`, default
/// `../../shared`), loaded on first use.
pub fn model() -> &'static Arc<Model> {
    static M: OnceLock<Arc<Model>> = OnceLock::new();
    M.get_or_init(|| {
        let root = std::env::var("BITNET_TEST_DATA").unwrap_or_else(|_| "../../shared".into());
        Arc::new(
            Model::load(format!("{root}/models/tiny-spm-tq2_0-q6k.gguf"))
                .expect("tiny model (set BITNET_TEST_DATA)"),
        )
    })
}

/// Context parameters with one thread for decode and prompts.
pub fn params(n_ctx: u32, n_batch: u32, n_ubatch: u32, n_seq_max: u32) -> ContextParams {
    ContextParams {
        n_ctx,
        n_batch,
        n_ubatch,
        n_seq_max,
        n_threads: 1,
        n_threads_batch: 1,
        ..Default::default()
    }
}
