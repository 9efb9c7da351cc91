//! Batch group: the C batch struct, allocation, and its conversion to the Rust Batch.

use super::{bitnet_pos, bitnet_seq_id, bitnet_token, call, call_void, slice};
use crate::context::Batch;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;

/// The batches bitnet_batch_init made and not yet freed, by their `seq_id` array's address:
/// (tokens, sequence ids per token) they have room for. llama_batch has no field for these,
/// and without them a caller's `n_seq_id[i]` larger than the row it was given is read past
/// the row's end.
static ALLOCATED: Mutex<BTreeMap<usize, (usize, usize)>> = Mutex::new(BTreeMap::new());

fn allocated() -> std::sync::MutexGuard<'static, BTreeMap<usize, (usize, usize)>> {
    // The map holds plain numbers: a panic elsewhere cannot leave it inconsistent.
    ALLOCATED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Input of bitnet_decode (llama_batch). Per token i < n_tokens: `token[i]`, `pos[i]`,
/// `n_seq_id[i]` sequence ids in `seq_id[i][..]`, and `logits[i] != 0` to get its logits. pos,
/// seq_id/n_seq_id and logits may be NULL (bitnet_batch_get_one): positions then continue each
/// sequence, all tokens are in sequence 0 and only the last token's logits are computed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_batch {
    pub n_tokens: i32,
    pub token: *mut bitnet_token,
    /// Embeddings input: not supported (must be NULL).
    pub embd: *mut f32,
    pub pos: *mut bitnet_pos,
    pub n_seq_id: *mut i32,
    pub seq_id: *mut *mut bitnet_seq_id,
    pub logits: *mut i8,
}

const EMPTY: bitnet_batch = bitnet_batch {
    n_tokens: 0,
    token: std::ptr::null_mut(),
    embd: std::ptr::null_mut(),
    pos: std::ptr::null_mut(),
    n_seq_id: std::ptr::null_mut(),
    seq_id: std::ptr::null_mut(),
    logits: std::ptr::null_mut(),
};

/// A view batch over `tokens` (not copied, not owned: do not bitnet_batch_free it): sequence
/// 0, positions continuing the sequence, logits for the last token.
#[no_mangle]
pub extern "C" fn bitnet_batch_get_one(tokens: *mut bitnet_token, n_tokens: i32) -> bitnet_batch {
    call(EMPTY, || {
        Ok(bitnet_batch {
            n_tokens,
            token: tokens,
            ..EMPTY
        })
    })
}

fn calloc<T>(n: usize) -> Result<*mut T> {
    // SAFETY: calloc with a non-zero count; the result is checked for NULL. The memory is
    // released by bitnet_batch_free with free(), as llama.cpp does.
    let p = unsafe { libc::calloc(n.max(1), std::mem::size_of::<T>()) }.cast::<T>();
    if p.is_null() {
        return Err(Error::new(
            crate::ErrorKind::OutOfMemory,
            format!("bitnet_batch_init: cannot allocate {n} elements"),
        ));
    }
    Ok(p)
}

/// Allocates a batch for up to `n_tokens` tokens, each in up to `n_seq_max` sequences, with
/// n_tokens set to 0 (fill it, then set n_tokens). `embd` must be 0 (token input only). On
/// failure (bad sizes, embd != 0, no memory) every pointer is NULL. Free with bitnet_batch_free.
#[no_mangle]
pub extern "C" fn bitnet_batch_init(n_tokens: i32, embd: i32, n_seq_max: i32) -> bitnet_batch {
    call(EMPTY, || {
        if embd != 0 {
            return Err(Error::unsupported(
                "bitnet_batch_init: embeddings input (embd != 0) is not supported",
            ));
        }
        if n_tokens <= 0 || n_seq_max <= 0 {
            return Err(Error::invalid_argument(format!(
                "bitnet_batch_init: n_tokens {n_tokens} and n_seq_max {n_seq_max} must be positive"
            )));
        }
        let n = n_tokens as usize;
        let mut b = EMPTY;
        // On a failed allocation, free what was allocated so far.
        let result = (|| -> Result<()> {
            b.token = calloc(n)?;
            b.pos = calloc(n)?;
            b.n_seq_id = calloc(n)?;
            // One extra NULL entry ends the list, so bitnet_batch_free needs no count.
            b.seq_id = calloc::<*mut bitnet_seq_id>(n + 1)?;
            for i in 0..n {
                let s = calloc(n_seq_max as usize)?;
                // SAFETY: seq_id has n + 1 zeroed entries.
                unsafe { *b.seq_id.add(i) = s };
            }
            b.logits = calloc(n)?;
            Ok(())
        })();
        if let Err(e) = result {
            free_batch(b);
            return Err(e);
        }
        allocated().insert(b.seq_id as usize, (n, n_seq_max as usize));
        Ok(b)
    })
}

/// Frees a batch made by bitnet_batch_init (not one from bitnet_batch_get_one). A batch whose
/// pointers are all NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_batch_free(batch: bitnet_batch) {
    call_void(|| {
        free_batch(batch);
        Ok(())
    })
}

fn free_batch(batch: bitnet_batch) {
    allocated().remove(&(batch.seq_id as usize));
    let free = |p: *mut c_void| {
        // SAFETY: every pointer was made by calloc in bitnet_batch_init (or is NULL).
        unsafe { libc::free(p) }
    };
    if !batch.seq_id.is_null() {
        let mut i = 0;
        loop {
            // SAFETY: the list ends with a NULL entry (bitnet_batch_init).
            let s = unsafe { *batch.seq_id.add(i) };
            if s.is_null() {
                break;
            }
            free(s.cast());
            i += 1;
        }
    }
    for p in [
        batch.token.cast::<c_void>(),
        batch.embd.cast(),
        batch.pos.cast(),
        batch.n_seq_id.cast(),
        batch.seq_id.cast(),
        batch.logits.cast(),
    ] {
        free(p);
    }
}

/// Copies a C batch into `out` (reusing its buffers). Checks the pointers and lengths, and
/// reads no `seq_id[i]` row past `n_seq_id[i]` entries unless that is within what the row can
/// hold: the `n_seq_max` of bitnet_batch_init for its batches, and `ctx_n_seq_max` (a token
/// can be in at most that many distinct sequences) for any batch. The context checks the
/// values (token ids, positions, sequence ids).
pub(crate) fn read_batch(b: &bitnet_batch, out: &mut Batch, ctx_n_seq_max: usize) -> Result<()> {
    if b.n_tokens <= 0 {
        return Err(Error::invalid_argument(format!(
            "batch.n_tokens is {}",
            b.n_tokens
        )));
    }
    if !b.embd.is_null() {
        return Err(Error::unsupported(
            "batch.embd: embeddings input is not supported",
        ));
    }
    let n = b.n_tokens as i64;
    let room = allocated().get(&(b.seq_id as usize)).copied();
    if let Some((n_alloc, _)) = room {
        if b.n_tokens as usize > n_alloc {
            return Err(Error::invalid_argument(format!(
                "batch.n_tokens is {}, but bitnet_batch_init made the batch for {n_alloc} tokens",
                b.n_tokens
            )));
        }
    }
    out.tokens.clear();
    out.tokens
        .extend_from_slice(slice(b.token, n, "batch.token")?);
    out.pos = if b.pos.is_null() {
        None
    } else {
        let mut v = out.pos.take().unwrap_or_default();
        v.clear();
        v.extend_from_slice(slice(b.pos, n, "batch.pos")?);
        Some(v)
    };
    out.seq_ids = match (b.seq_id.is_null(), b.n_seq_id.is_null()) {
        (true, true) => None,
        (false, false) => {
            let counts = slice(b.n_seq_id, n, "batch.n_seq_id")?;
            let lists = slice(b.seq_id.cast_const(), n, "batch.seq_id")?;
            let mut v = out.seq_ids.take().unwrap_or_default();
            v.resize_with(counts.len(), Vec::new);
            for (i, (&c, &p)) in counts.iter().zip(lists).enumerate() {
                if let Some((_, row)) = room.filter(|&(_, row)| c as i64 > row as i64) {
                    return Err(Error::invalid_argument(format!(
                        "batch.n_seq_id[{i}] is {c}, but bitnet_batch_init made rows of \
                         {row} sequence ids (its n_seq_max)"
                    )));
                }
                if c as i64 > ctx_n_seq_max as i64 {
                    return Err(Error::invalid_argument(format!(
                        "batch.n_seq_id[{i}] is {c}: a token is in at most n_seq_max = \
                         {ctx_n_seq_max} sequences"
                    )));
                }
                v[i].clear();
                // The index goes into the message only on error: no string per token.
                let ids = slice(p.cast_const(), c as i64, "batch.seq_id[i]")
                    .map_err(|e| e.context(format!("token {i}")))?;
                v[i].extend_from_slice(ids);
            }
            Some(v)
        }
        _ => {
            return Err(Error::invalid_argument(
                "batch.seq_id and batch.n_seq_id must both be set or both be NULL",
            ))
        }
    };
    out.logits = if b.logits.is_null() {
        None
    } else {
        let mut v = out.logits.take().unwrap_or_default();
        v.clear();
        v.extend(
            slice(b.logits.cast_const(), n, "batch.logits")?
                .iter()
                .map(|&x| x != 0),
        );
        Some(v)
    };
    Ok(())
}
