//! Memory (KV cache) group: clear, sequence removal/copy/keep/shift, position queries.

use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::{bitnet_pos, bitnet_seq_id, call, call_void};
use crate::context::KvCache;
use crate::error::{Error, Result};

/// The KV cache of a context (opaque; a view into the context, not freed separately).
pub struct bitnet_memory {
    _private: [u8; 0],
}

/// Handle to a context's KV cache (llama_memory_t).
pub type bitnet_memory_t = *mut bitnet_memory;

/// The context's KV cache. NULL if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_get_memory(ctx: *const bitnet_context) -> bitnet_memory_t {
    // The memory handle is the context pointer itself, typed apart so the two cannot be mixed
    // up in C; it is only ever turned back into the context.
    call(std::ptr::null_mut(), || {
        Ok(ctx_ref(ctx)? as *const bitnet_context as bitnet_memory_t)
    })
}

fn kv_mut<'a>(mem: bitnet_memory_t) -> Result<(&'a mut KvCache, i32)> {
    let c = ctx_mut(mem.cast::<bitnet_context>()).map_err(|_| super::null_arg("mem"))?;
    let n_seq = c.ctx.params().n_seq_max as i32;
    Ok((c.ctx.kv_mut(), n_seq))
}

fn kv_ref<'a>(mem: bitnet_memory_t) -> Result<(&'a KvCache, i32)> {
    let c = ctx_ref(mem.cast::<bitnet_context>()).map_err(|_| super::null_arg("mem"))?;
    Ok((c.ctx.kv(), c.ctx.params().n_seq_max as i32))
}

fn check_seq(seq: bitnet_seq_id, n_seq: i32, what: &str) -> Result<()> {
    if (0..n_seq).contains(&seq) {
        Ok(())
    } else {
        Err(Error::invalid_argument(format!(
            "{what} {seq} is outside 0..{n_seq} (n_seq_max)"
        )))
    }
}

/// Empties the cache (all sequences). `data` is accepted for llama.h parity: the cells'
/// data is always zeroed.
#[no_mangle]
pub extern "C" fn bitnet_memory_clear(mem: bitnet_memory_t, data: bool) {
    let _ = data;
    call_void(|| {
        kv_mut(mem)?.0.clear();
        Ok(())
    })
}

/// Removes the cells of sequence `seq_id` (any sequence if seq_id < 0) with positions in
/// [p0, p1) (p0 < 0: from 0, p1 < 0: to the end). False on a bad argument (NULL mem, seq_id
/// >= n_seq_max).
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_rm(
    mem: bitnet_memory_t,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
) -> bool {
    call(false, || {
        let (kv, n_seq) = kv_mut(mem)?;
        if seq_id >= 0 {
            check_seq(seq_id, n_seq, "seq_id")?;
        }
        Ok(kv.seq_rm(seq_id, p0, p1))
    })
}

/// Adds sequence `seq_id_dst` to the cells of `seq_id_src` with positions in [p0, p1).
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_cp(
    mem: bitnet_memory_t,
    seq_id_src: bitnet_seq_id,
    seq_id_dst: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
) {
    call_void(|| {
        let (kv, n_seq) = kv_mut(mem)?;
        check_seq(seq_id_src, n_seq, "seq_id_src")?;
        check_seq(seq_id_dst, n_seq, "seq_id_dst")?;
        kv.seq_cp(seq_id_src, seq_id_dst, p0, p1);
        Ok(())
    })
}

/// Removes every sequence except `seq_id`.
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_keep(mem: bitnet_memory_t, seq_id: bitnet_seq_id) {
    call_void(|| {
        let (kv, n_seq) = kv_mut(mem)?;
        check_seq(seq_id, n_seq, "seq_id")?;
        kv.seq_keep(seq_id);
        Ok(())
    })
}

/// Adds `delta` to the positions of `seq_id`'s cells in [p0, p1) (the next decode re-rotates
/// their keys); cells moved below 0 are removed. A shift that would move a cell past
/// INT32_MAX fails (bitnet_last_status INVALID_ARG, with a message) and moves no cell.
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_add(
    mem: bitnet_memory_t,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
    delta: bitnet_pos,
) {
    call_void(|| {
        let (kv, n_seq) = kv_mut(mem)?;
        check_seq(seq_id, n_seq, "seq_id")?;
        kv.seq_add(seq_id, p0, p1, delta)
    })
}

/// Divides the positions of `seq_id`'s cells in [p0, p1) by `d` (d > 1; d = 1 does nothing;
/// d <= 0 fails with INVALID_ARG and changes nothing).
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_div(
    mem: bitnet_memory_t,
    seq_id: bitnet_seq_id,
    p0: bitnet_pos,
    p1: bitnet_pos,
    d: i32,
) {
    call_void(|| {
        let (kv, n_seq) = kv_mut(mem)?;
        check_seq(seq_id, n_seq, "seq_id")?;
        kv.seq_div(seq_id, p0, p1, d)
    })
}

/// Smallest position of `seq_id` in the cache; -1 if it has none (or on a bad argument).
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_pos_min(
    mem: bitnet_memory_t,
    seq_id: bitnet_seq_id,
) -> bitnet_pos {
    call(-1, || {
        let (kv, n_seq) = kv_ref(mem)?;
        check_seq(seq_id, n_seq, "seq_id")?;
        Ok(kv.seq_pos_min(seq_id))
    })
}

/// Largest position of `seq_id` in the cache; -1 if it has none (or on a bad argument).
#[no_mangle]
pub extern "C" fn bitnet_memory_seq_pos_max(
    mem: bitnet_memory_t,
    seq_id: bitnet_seq_id,
) -> bitnet_pos {
    call(-1, || {
        let (kv, n_seq) = kv_ref(mem)?;
        check_seq(seq_id, n_seq, "seq_id")?;
        Ok(kv.seq_pos_max(seq_id))
    })
}

/// True: positions can be shifted (bitnet_memory_seq_add / _div). False if mem is NULL.
#[no_mangle]
pub extern "C" fn bitnet_memory_can_shift(mem: bitnet_memory_t) -> bool {
    call(false, || kv_ref(mem).map(|_| true))
}
