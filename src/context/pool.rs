//! A rayon thread pool whose threads have exited when it is dropped.
//!
//! Dropping a `rayon::ThreadPool` only asks its threads to stop: they finish on their own
//! later. A context's threads must be gone when `bitnet_free` returns: a caller may unload the
//! library next (a thread still running its code would crash), and a thread still exiting
//! holds memory that leak checkers report (the `state` and `positions` fuzz targets, under
//! LeakSanitizer, found the thread-exit records of such threads). So the pool spawns its
//! threads itself, keeps their handles, and joins them after the rayon pool is dropped.

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

pub(crate) struct Pool {
    /// `None` only while dropping.
    pool: Option<rayon::ThreadPool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Pool {
    /// A pool of `n` threads named `bitnet-<i>`.
    pub(crate) fn new(n: usize) -> Result<Pool> {
        let threads = Arc::new(Mutex::new(Vec::with_capacity(n)));
        let handles = Arc::clone(&threads);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("bitnet-{i}"))
            .spawn_handler(move |thread| {
                let mut b = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    b = b.name(name.to_owned());
                }
                if let Some(size) = thread.stack_size() {
                    b = b.stack_size(size);
                }
                let handle = b.spawn(move || thread.run())?;
                handles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| Error::internal(format!("cannot start a pool of {n} threads: {e}")))?;
        Ok(Pool {
            pool: Some(pool),
            threads,
        })
    }

    /// Runs `f` in the pool (`rayon::ThreadPool::install`).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            // Unreachable: `pool` is taken only in `drop`.
            None => f(),
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Tells the threads to stop once idle; then wait until each has exited. No thread of
        // this pool can be running this drop: the pool is only reached through `install`,
        // which borrows it, so it cannot be dropped from inside.
        drop(self.pool.take());
        let handles =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            // A thread that panicked has exited all the same.
            let _ = h.join();
        }
    }
}
