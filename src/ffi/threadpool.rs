//! Thread pools (ggml's `ggml_threadpool_*`, renamed `bitnet_threadpool_*`) and llama.h's
//! `llama_attach_threadpool` / `llama_detach_threadpool`.
//!
//! A pool made here is a real set of worker threads ([`crate::ThreadPool`]); attaching it to a
//! context runs that context's decodes on it (the single-token pool, and the batch pool for
//! multi-token ubatches) until it is detached, when the context's own pools take over again.
//! The context holds a reference to an attached pool, so freeing the pool handle first is safe
//! (its threads exit when the last context lets go of it).

use super::context::bitnet_context;
use super::{borrow, borrow_mut, call, call_void, call_with, free_handle, into_handle};
use crate::error::{Error, Result};
use crate::log::log_warn;
use crate::ThreadPool;

/// Most threads a pool may have (ggml's GGML_MAX_N_THREADS); the size of `cpumask`.
pub const BITNET_MAX_N_THREADS: usize = 512;

/// Thread scheduling priorities (`ggml_sched_priority`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_sched_priority {
    BITNET_SCHED_PRIO_LOW = -1,
    BITNET_SCHED_PRIO_NORMAL = 0,
    BITNET_SCHED_PRIO_MEDIUM = 1,
    BITNET_SCHED_PRIO_HIGH = 2,
    BITNET_SCHED_PRIO_REALTIME = 3,
}

/// Thread pool parameters (`ggml_threadpool_params`, same fields and layout). Fill with
/// bitnet_threadpool_params_default or bitnet_threadpool_params_init.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_threadpool_params {
    /// CPU cores the threads may run on (all false = the inherited affinity). bitnet does not
    /// pin threads: a non-empty mask is logged and not applied.
    pub cpumask: [bool; BITNET_MAX_N_THREADS],
    /// Number of threads (1..=BITNET_MAX_N_THREADS).
    pub n_threads: i32,
    /// `enum bitnet_sched_priority`. Threads run at the inherited priority: another value than
    /// NORMAL is logged and not applied.
    pub prio: i32,
    /// Polling level 0..100 (ggml spins idle threads): bitnet's idle threads sleep, ignored.
    pub poll: u32,
    /// Strict CPU placement: see cpumask (logged and not applied).
    pub strict_cpu: bool,
    /// Start paused (see bitnet_threadpool_pause).
    pub paused: bool,
}

/// A thread pool (opaque; ggml's `struct ggml_threadpool`). Free with bitnet_threadpool_free.
pub struct bitnet_threadpool {
    pool: ThreadPool,
    paused: bool,
}

/// A thread pool handle (`ggml_threadpool_t`).
pub type bitnet_threadpool_t = *mut bitnet_threadpool;

fn params_default(n_threads: i32) -> bitnet_threadpool_params {
    bitnet_threadpool_params {
        cpumask: [false; BITNET_MAX_N_THREADS],
        n_threads,
        prio: bitnet_sched_priority::BITNET_SCHED_PRIO_NORMAL as i32,
        poll: 50,
        strict_cpu: false,
        paused: false,
    }
}

/// ggml's defaults for `n_threads` threads: no CPU mask, normal priority, poll 50, not strict,
/// not paused.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_params_default(n_threads: i32) -> bitnet_threadpool_params {
    call_with(
        |_| params_default(n_threads),
        || Ok(params_default(n_threads)),
    )
}

/// Fills `*p` with bitnet_threadpool_params_default(n_threads). NULL `p`: logged, nothing done.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_params_init(p: *mut bitnet_threadpool_params, n_threads: i32) {
    call_void(|| {
        *borrow_mut(p, "p")? = params_default(n_threads);
        Ok(())
    })
}

/// Whether two parameter sets describe the same pool (n_threads, prio, poll, strict_cpu and
/// cpumask equal; `paused` is not compared, as in ggml). False if either is NULL.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_params_match(
    p0: *const bitnet_threadpool_params,
    p1: *const bitnet_threadpool_params,
) -> bool {
    call(false, || {
        let (a, b) = (borrow(p0, "p0")?, borrow(p1, "p1")?);
        Ok(a.n_threads == b.n_threads
            && a.prio == b.prio
            && a.poll == b.poll
            && a.strict_cpu == b.strict_cpu
            && a.cpumask == b.cpumask)
    })
}

/// Starts a pool of `params->n_threads` threads. NULL on failure (NULL params, n_threads
/// outside 1..=BITNET_MAX_N_THREADS, an unknown priority, threads that cannot be started).
/// Free with bitnet_threadpool_free.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_new(
    params: *mut bitnet_threadpool_params,
) -> *mut bitnet_threadpool {
    call(std::ptr::null_mut(), || {
        let p = borrow(params, "params")?;
        let n = usize::try_from(p.n_threads)
            .ok()
            .filter(|n| (1..=BITNET_MAX_N_THREADS).contains(n))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "threadpool params n_threads = {} must be in 1..={BITNET_MAX_N_THREADS}",
                    p.n_threads
                ))
            })?;
        if !(-1..=3).contains(&p.prio) {
            return Err(Error::invalid_argument(format!(
                "threadpool params prio = {} is not a bitnet_sched_priority (-1..=3)",
                p.prio
            )));
        }
        if p.cpumask.iter().any(|&b| b) || p.strict_cpu {
            log_warn!("bitnet_threadpool_new: cpumask / strict_cpu are not applied (threads are not pinned)");
        }
        if p.prio != bitnet_sched_priority::BITNET_SCHED_PRIO_NORMAL as i32 {
            log_warn!(
                "bitnet_threadpool_new: priority {} is not applied (threads keep the inherited priority)",
                p.prio
            );
        }
        Ok(into_handle(bitnet_threadpool {
            pool: ThreadPool::new(n)?,
            paused: p.paused,
        }))
    })
}

/// Frees a pool handle. A context it is still attached to keeps using it (its threads exit when
/// that context detaches it or is freed). NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_free(threadpool: *mut bitnet_threadpool) {
    call_void(|| {
        free_handle(threadpool);
        Ok(())
    })
}

/// Number of threads of the pool; -1 if threadpool is NULL.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_get_n_threads(threadpool: *mut bitnet_threadpool) -> i32 {
    call(-1, || {
        Ok(borrow(threadpool, "threadpool")?.pool.n_threads() as i32)
    })
}

/// Marks the pool paused. bitnet's idle threads always sleep (they never spin), and a decode on
/// a paused pool resumes it, as ggml's compute does, so pausing changes no result.
#[no_mangle]
pub extern "C" fn bitnet_threadpool_pause(threadpool: *mut bitnet_threadpool) {
    call_void(|| {
        borrow_mut(threadpool, "threadpool")?.paused = true;
        Ok(())
    })
}

/// Marks the pool running (see bitnet_threadpool_pause).
#[no_mangle]
pub extern "C" fn bitnet_threadpool_resume(threadpool: *mut bitnet_threadpool) {
    call_void(|| {
        borrow_mut(threadpool, "threadpool")?.paused = false;
        Ok(())
    })
}

fn pool_of(tp: *mut bitnet_threadpool, name: &str) -> Result<Option<ThreadPool>> {
    if tp.is_null() {
        return Ok(None);
    }
    let h = borrow_mut(tp, name)?;
    h.paused = false;
    Ok(Some(h.pool.clone()))
}

/// Runs this context's decodes on `threadpool` (single-token ubatches) and `threadpool_batch`
/// (multi-token ubatches; NULL = `threadpool`), as llama.cpp does, until
/// bitnet_detach_threadpool. The logits are the same bits on any pool. NULL `threadpool`
/// (with NULL `threadpool_batch`) detaches; NULL ctx is logged and ignored.
#[no_mangle]
pub extern "C" fn bitnet_attach_threadpool(
    ctx: *mut bitnet_context,
    threadpool: bitnet_threadpool_t,
    threadpool_batch: bitnet_threadpool_t,
) {
    call_void(|| {
        let c = borrow_mut(ctx, "ctx")?;
        let single = pool_of(threadpool, "threadpool")?;
        let batch = pool_of(threadpool_batch, "threadpool_batch")?;
        match (single, batch) {
            (Some(s), b) => c.ctx.attach_threadpool(s, b),
            (None, Some(b)) => c.ctx.attach_threadpool(b, None),
            (None, None) => c.ctx.detach_threadpool(),
        }
        Ok(())
    })
}

/// Goes back to the context's own thread pools (n_threads / n_threads_batch). NULL ctx is
/// logged and ignored; detaching with nothing attached is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_detach_threadpool(ctx: *mut bitnet_context) {
    call_void(|| {
        borrow_mut(ctx, "ctx")?.ctx.detach_threadpool();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_pool_lifecycle() {
        let mut p = bitnet_threadpool_params_default(3);
        assert_eq!(p.n_threads, 3);
        assert_eq!(p.poll, 50);
        let mut q = p;
        q.paused = true;
        assert!(bitnet_threadpool_params_match(&p, &q));
        q.n_threads = 2;
        assert!(!bitnet_threadpool_params_match(&p, &q));
        bitnet_threadpool_params_init(&mut q, 3);
        assert!(bitnet_threadpool_params_match(&p, &q));
        assert!(!bitnet_threadpool_params_match(&p, std::ptr::null()));
        bitnet_threadpool_params_init(std::ptr::null_mut(), 3);

        let tp = bitnet_threadpool_new(&mut p);
        assert!(!tp.is_null());
        assert_eq!(bitnet_threadpool_get_n_threads(tp), 3);
        bitnet_threadpool_pause(tp);
        bitnet_threadpool_resume(tp);
        bitnet_threadpool_free(tp);
        bitnet_threadpool_free(std::ptr::null_mut());
        assert_eq!(bitnet_threadpool_get_n_threads(std::ptr::null_mut()), -1);

        for bad in [0, -1, 513] {
            p.n_threads = bad;
            assert!(bitnet_threadpool_new(&mut p).is_null());
            assert!(crate::ffi::error::last().unwrap().1.contains("n_threads"));
        }
        p.n_threads = 1;
        p.prio = 9;
        assert!(bitnet_threadpool_new(&mut p).is_null());
        assert!(bitnet_threadpool_new(std::ptr::null_mut()).is_null());
        bitnet_attach_threadpool(
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        assert!(crate::ffi::error::last().unwrap().1.contains("ctx"));
        bitnet_detach_threadpool(std::ptr::null_mut());
    }
}
