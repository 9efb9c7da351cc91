//! A thread pool made by the caller and shared by contexts (`ggml_threadpool_new` /
//! `llama_attach_threadpool`): [`Context::attach_threadpool`](super::Context::attach_threadpool)
//! runs that context's decodes on it instead of the context's own pools.

use super::pool::Pool;
use crate::error::{Error, Result};
use std::sync::Arc;

/// A pool of worker threads, cheap to clone (clones share the threads). The threads exit when
/// the last clone is dropped (the caller's handle and every context it is attached to).
#[derive(Clone)]
pub struct ThreadPool {
    pool: Arc<Pool>,
    n_threads: usize,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("n_threads", &self.n_threads)
            .finish()
    }
}

impl ThreadPool {
    /// Starts `n_threads` threads (1..=512, ggml's GGML_MAX_N_THREADS).
    pub fn new(n_threads: usize) -> Result<ThreadPool> {
        if !(1..=super::context::MAX_THREADS).contains(&n_threads) {
            return Err(Error::invalid_argument(format!(
                "thread pool size {n_threads} must be in 1..={}",
                super::context::MAX_THREADS
            )));
        }
        Ok(ThreadPool {
            pool: Arc::new(Pool::new(n_threads)?),
            n_threads,
        })
    }

    /// Number of threads.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether two handles share the same threads.
    pub fn same(&self, other: &ThreadPool) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }
}
