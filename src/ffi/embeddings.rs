//! Embeddings group: bitnet_set_embeddings, bitnet_get_embeddings(_ith, _seq) and the pooling /
//! attention types of the context parameters (llama.h's semantics; see docs/embeddings.md).

use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::{bitnet_seq_id, call, call_void};
use crate::context::{AttentionType, PoolingType};
use crate::error::{Error, Result};
use crate::log::{log, Level};

/// Attention types (`llama_attention_type`): only causal attention is implemented; NON_CAUSAL is
/// refused by bitnet_init_from_model.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_attention_type {
    BITNET_ATTENTION_TYPE_UNSPECIFIED = -1,
    BITNET_ATTENTION_TYPE_CAUSAL = 0,
    BITNET_ATTENTION_TYPE_NON_CAUSAL = 1,
}

/// The Rust pooling type for a `bitnet_context_params.pooling_type` value.
pub(crate) fn pooling_from_c(v: i32) -> Result<PoolingType> {
    PoolingType::from_llama(v as i64).ok_or_else(|| {
        Error::invalid_argument(format!(
            "pooling_type {v} is not a bitnet_pooling_type (-1 UNSPECIFIED, 0 NONE, 1 MEAN, \
             2 CLS, 3 LAST, 4 RANK)"
        ))
    })
}

/// The Rust attention type for a `bitnet_context_params.attention_type` value.
pub(crate) fn attention_from_c(v: i32) -> Result<AttentionType> {
    match v {
        -1 => Ok(AttentionType::Unspecified),
        0 => Ok(AttentionType::Causal),
        1 => Ok(AttentionType::NonCausal),
        _ => Err(Error::invalid_argument(format!(
            "attention_type {v} is not a bitnet_attention_type (-1 UNSPECIFIED, 0 CAUSAL, \
             1 NON_CAUSAL)"
        ))),
    }
}

/// Turns embeddings output on or off for later decodes. With it on, every token of a batch is
/// an output (its logits flag is overridden, with a warning when it was 0) and its embedding is
/// the output of the model's final RMSNorm (n_embd floats; un-normalized).
#[no_mangle]
pub extern "C" fn bitnet_set_embeddings(ctx: *mut bitnet_context, embeddings: bool) {
    call_void(|| {
        ctx_mut(ctx)?.ctx.set_embeddings(embeddings);
        Ok(())
    })
}

/// Logs a failed lookup as llama.cpp does (it returns NULL and logs), and keeps the message for
/// bitnet_last_error.
fn logged<T>(what: &str, r: Result<T>) -> Result<T> {
    if let Err(e) = &r {
        log(Level::Error, &format!("{what}: {e}\n"));
    }
    r
}

/// Every token embedding of the last decode: n_outputs rows of n_embd floats, in batch order.
/// Only for contexts with pooling NONE; NULL with embeddings off, before any decode, or for a
/// pooled context (use bitnet_get_embeddings_seq). Valid until the next decode; read-only.
#[no_mangle]
pub extern "C" fn bitnet_get_embeddings(ctx: *mut bitnet_context) -> *mut f32 {
    call(std::ptr::null_mut(), || {
        let c = ctx_ref(ctx)?;
        match c.ctx.embeddings() {
            // The pointer is handed out mutable only because llama.h's signature is.
            Some(rows) => Ok(rows.as_ptr().cast_mut()),
            None => Err(Error::invalid_argument(format!(
                "no token embeddings: {}",
                if c.ctx.pooling_type() != PoolingType::None {
                    "the context pools them per sequence (bitnet_get_embeddings_seq)"
                } else {
                    "the last decode computed none (embeddings off)"
                }
            ))),
        }
    })
}

/// The embedding (n_embd floats) of batch token `i` of the last decode; negative `i` counts from
/// the last output (-1 = the last). NULL, with a logged message, for an invalid index, embeddings
/// off, or a pooled context. Valid until the next decode; read-only.
#[no_mangle]
pub extern "C" fn bitnet_get_embeddings_ith(ctx: *mut bitnet_context, i: i32) -> *mut f32 {
    call(std::ptr::null_mut(), || {
        let c = ctx_ref(ctx)?;
        let row = logged(
            &format!("bitnet_get_embeddings_ith: invalid embeddings id {i}"),
            c.ctx.embeddings_ith(i),
        )?;
        Ok(row.as_ptr().cast_mut())
    })
}

/// The pooled embedding (n_embd floats) of sequence `seq_id` from the last decode: MEAN, CLS or
/// LAST over that sequence's tokens of the batch, un-normalized. NULL with pooling NONE,
/// embeddings off, or a sequence that was not in the last batch. Valid until the next decode.
#[no_mangle]
pub extern "C" fn bitnet_get_embeddings_seq(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
) -> *mut f32 {
    call(std::ptr::null_mut(), || {
        let c = ctx_ref(ctx)?;
        match c.ctx.embeddings_seq(seq_id) {
            Some(v) => Ok(v.as_ptr().cast_mut()),
            None => Err(Error::invalid_argument(format!(
                "no pooled embedding for sequence {seq_id} (pooling NONE, embeddings off, or \
                 the sequence was not in the last batch)"
            ))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_context_is_an_error_not_a_crash() {
        bitnet_set_embeddings(std::ptr::null_mut(), true);
        assert!(bitnet_get_embeddings(std::ptr::null_mut()).is_null());
        assert!(bitnet_get_embeddings_ith(std::ptr::null_mut(), -1).is_null());
        assert!(bitnet_get_embeddings_seq(std::ptr::null_mut(), 0).is_null());
    }

    #[test]
    fn c_enum_values_map_as_llama_h() {
        for v in -1..=4 {
            assert_eq!(pooling_from_c(v).unwrap().to_llama(), v);
        }
        assert!(pooling_from_c(5).is_err());
        assert!(pooling_from_c(-2).is_err());
        assert_eq!(attention_from_c(0).unwrap(), AttentionType::Causal);
        assert_eq!(attention_from_c(1).unwrap(), AttentionType::NonCausal);
        assert!(attention_from_c(2).is_err());
    }
}
