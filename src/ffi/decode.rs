//! Decode group: bitnet_decode and the logits of its outputs.

use super::batch::{bitnet_batch, read_batch};
use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::{call, call_with};
use crate::error::{Error, ErrorKind};

/// Evaluates a batch: stores its tokens in the KV cache and computes the requested logits.
/// Returns 0 on success; 1 when the KV cache has no room (the cache is unchanged: free some
/// with bitnet_memory_seq_rm or use a bigger n_ctx); 2 when aborted; -1 for an invalid batch
/// (NULL ctx, n_tokens <= 0 or > n_batch, token outside the vocabulary, negative position,
/// sequence id outside 0..n_seq_max-1, NULL arrays); < -1 for other errors.
#[no_mangle]
pub extern "C" fn bitnet_decode(ctx: *mut bitnet_context, batch: bitnet_batch) -> i32 {
    call_with(decode_status, || {
        let c = ctx_mut(ctx)?;
        let n_seq_max = c.ctx.params().n_seq_max as usize;
        read_batch(&batch, &mut c.batch, n_seq_max)?;
        c.backend.check(&c.batch)?;
        c.ctx.decode(&c.batch)?;
        c.backend.sample(&c.ctx, &c.batch)?;
        Ok(0)
    })
}

/// bitnet_decode's return value for a failure of this kind (also bitnet_process's).
pub(crate) fn decode_status(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::ContextFull => 1,
        ErrorKind::Aborted => 2,
        ErrorKind::InvalidArgument | ErrorKind::InvalidToken | ErrorKind::Unsupported => -1,
        other => other.code().min(-2),
    }
}

/// The logits of the last bitnet_decode: one row of n_vocab floats per token that asked for
/// logits, in batch order. Valid until the next decode; read-only. NULL if ctx is NULL or the
/// last decode produced no logits.
#[no_mangle]
pub extern "C" fn bitnet_get_logits(ctx: *mut bitnet_context) -> *mut f32 {
    call(std::ptr::null_mut(), || {
        let logits = ctx_ref(ctx)?.ctx.logits();
        if logits.is_empty() {
            return Err(Error::invalid_argument(
                "no logits: the last decode produced none",
            ));
        }
        // The pointer is handed out mutable only because llama.h's signature is; callers
        // must not write through it.
        Ok(logits.as_ptr().cast_mut())
    })
}

/// The logits row (n_vocab floats) of batch token `i` of the last decode; negative `i` counts
/// from the last output (-1 = the last). NULL (with a message) if `i` is out of range or that
/// token did not ask for logits. Valid until the next decode; read-only.
#[no_mangle]
pub extern "C" fn bitnet_get_logits_ith(ctx: *mut bitnet_context, i: i32) -> *mut f32 {
    call(std::ptr::null_mut(), || {
        Ok(ctx_ref(ctx)?.ctx.logits_ith(i)?.as_ptr().cast_mut())
    })
}
