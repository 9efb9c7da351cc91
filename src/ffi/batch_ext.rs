//! The extended batch API of current llama.h (`llama_batch_ext_*`, `llama_process`): a batch
//! owned by the library, filled one token at a time, then evaluated with bitnet_process.
//! Same limits and meaning as bitnet_decode; input embeddings are not supported (BitNet models
//! take token ids), so the embedding setters fail.

use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::decode::decode_status;
use super::{
    bitnet_pos, bitnet_seq_id, bitnet_token, borrow, borrow_mut, call, call_void, call_with,
    free_handle, into_handle, BITNET_TOKEN_NULL,
};
use crate::error::{Error, ErrorKind, Result};

/// Rows of embedding input for one token (`llama_embd`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct bitnet_embd {
    pub data: *const f32,
    /// Number of embedding rows in data.
    pub n_rows: usize,
    /// Size of one row.
    pub n_embd: usize,
}

/// What bitnet_process runs (`llama_process_type`; bitnet_process takes it as int32_t, so any
/// value is safe to pass).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum bitnet_process_type {
    BITNET_PROCESS_TYPE_ENCODE = 0,
    BITNET_PROCESS_TYPE_DECODE = 1,
}
const BITNET_PROCESS_TYPE_ENCODE: i32 = bitnet_process_type::BITNET_PROCESS_TYPE_ENCODE as i32;
const BITNET_PROCESS_TYPE_DECODE: i32 = bitnet_process_type::BITNET_PROCESS_TYPE_DECODE as i32;

#[derive(Debug, Clone)]
struct ExtToken {
    id: bitnet_token,
    pos: bitnet_pos,
    seq_ids: Vec<bitnet_seq_id>,
    output: bool,
}

/// A batch built token by token (opaque). Holds at most n_batch tokens of the context it was
/// made for; free with bitnet_batch_ext_free.
pub struct bitnet_batch_ext {
    n_tokens_max: usize,
    n_seq_max: i32,
    n_vocab: i32,
    tokens: Vec<ExtToken>,
}

impl bitnet_batch_ext {
    fn token_mut(&mut self, idx: i32) -> Result<&mut ExtToken> {
        let n = self.tokens.len();
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.tokens.get_mut(i))
            .ok_or_else(|| Error::invalid_argument(format!("batch index {idx} is outside 0..{n}")))
    }

    fn check_seq(&self, seq_id: bitnet_seq_id) -> Result<()> {
        if (0..self.n_seq_max).contains(&seq_id) {
            Ok(())
        } else {
            Err(Error::invalid_argument(format!(
                "sequence id {seq_id} is outside 0..{}",
                self.n_seq_max
            )))
        }
    }
}

/// A new empty batch for `ctx` (capacity bitnet_n_batch(ctx) tokens). NULL if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_init(ctx: *mut bitnet_context) -> *mut bitnet_batch_ext {
    call(std::ptr::null_mut(), || {
        let c = ctx_ref(ctx)?;
        let p = c.ctx.params();
        Ok(into_handle(bitnet_batch_ext {
            n_tokens_max: p.n_batch as usize,
            n_seq_max: p.n_seq_max as i32,
            n_vocab: c.ctx.model().vocab().n_tokens() as i32,
            tokens: Vec::new(),
        }))
    })
}

/// Frees a batch. NULL is a no-op.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_free(batch: *mut bitnet_batch_ext) {
    call_void(|| {
        free_handle(batch);
        Ok(())
    })
}

/// Removes every token (the capacity stays).
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_clear(batch: *mut bitnet_batch_ext) {
    call_void(|| {
        borrow_mut(batch, "batch")?.tokens.clear();
        Ok(())
    })
}

fn add(batch: *mut bitnet_batch_ext, seq_id: bitnet_seq_id) -> i32 {
    // -1: full, -3: bad sequence id (and NULL batch), as llama.cpp.
    call_with(
        |_| -3,
        || {
            let b = borrow_mut(batch, "batch")?;
            if b.tokens.len() >= b.n_tokens_max {
                return Ok(-1);
            }
            b.check_seq(seq_id)?;
            b.tokens.push(ExtToken {
                id: BITNET_TOKEN_NULL,
                pos: 0,
                seq_ids: vec![seq_id],
                output: false,
            });
            Ok(b.tokens.len() as i32 - 1)
        },
    )
}

/// Adds a token without an id (set it with bitnet_batch_ext_set_embd_token; bitnet needs an
/// id, so prefer bitnet_batch_ext_add_token) to sequence `seq_id`, position 0 until
/// bitnet_batch_ext_set_pos. Returns its index, -1 when the batch is full, -3 for an invalid
/// sequence id.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_add(batch: *mut bitnet_batch_ext, seq_id: bitnet_seq_id) -> i32 {
    add(batch, seq_id)
}

/// Adds token `id` to sequence `seq_id` (position 0 until bitnet_batch_ext_set_pos, no output).
/// Returns its index, -1 when the batch is full, -2 for an id outside the vocabulary (the
/// token is still added, as in llama.cpp), -3 for an invalid sequence id.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_add_token(
    batch: *mut bitnet_batch_ext,
    seq_id: bitnet_seq_id,
    id: bitnet_token,
) -> i32 {
    let idx = add(batch, seq_id);
    if idx < 0 {
        return idx;
    }
    call(-2, || {
        let b = borrow_mut(batch, "batch")?;
        if !(0..b.n_vocab).contains(&id) {
            return Err(Error::invalid_token(format!(
                "token {id} is outside the vocabulary (0..{})",
                b.n_vocab
            )));
        }
        b.token_mut(idx)?.id = id;
        Ok(idx)
    })
}

/// Input embeddings are not supported: adds the token (to keep llama.cpp's indices) and returns
/// -2.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_add_embd(
    batch: *mut bitnet_batch_ext,
    seq_id: bitnet_seq_id,
    embd: bitnet_embd,
) -> i32 {
    let idx = add(batch, seq_id);
    if idx < 0 {
        return idx;
    }
    bitnet_batch_ext_set_embd_token(batch, idx, embd);
    -2
}

/// Adds the token at `idx` to one more sequence. False for a bad index or sequence id.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_add_seq(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    seq_id: bitnet_seq_id,
) -> bool {
    call(false, || {
        let b = borrow_mut(batch, "batch")?;
        b.check_seq(seq_id)?;
        let t = b.token_mut(idx)?;
        if !t.seq_ids.contains(&seq_id) {
            t.seq_ids.push(seq_id);
        }
        Ok(true)
    })
}

fn no_embeddings(what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{what}: input embeddings are not supported (BitNet models take token ids)"),
    )
}

/// Input embeddings are not supported: false.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_set_embd_token(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    embd: bitnet_embd,
) -> bool {
    let _ = embd;
    call(false, || {
        borrow_mut(batch, "batch")?.token_mut(idx)?;
        Err(no_embeddings("bitnet_batch_ext_set_embd_token"))
    })
}

/// Hidden state from another stage is not supported: false (as llama.cpp, where it is a TODO).
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_set_embd_state(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    embd: bitnet_embd,
) -> bool {
    let _ = embd;
    call(false, || {
        borrow_mut(batch, "batch")?.token_mut(idx)?;
        Err(no_embeddings("bitnet_batch_ext_set_embd_state"))
    })
}

fn set_output(batch: *mut bitnet_batch_ext, idx: i32, value: bool) -> bool {
    call(false, || {
        borrow_mut(batch, "batch")?.token_mut(idx)?.output = value;
        Ok(true)
    })
}

/// Whether token `idx` produces an output (same flag as the logits one). False for a bad index.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_set_output_embd(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    value: bool,
) -> bool {
    set_output(batch, idx, value)
}

/// Whether token `idx` produces logits (bitnet_get_logits_ith(ctx, idx) after processing).
/// False for a bad index.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_set_output_logits(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    value: bool,
) -> bool {
    set_output(batch, idx, value)
}

/// Sets the position of token `idx` from `pos[0]` (one position per token: no M-RoPE). False
/// for a bad index or NULL pos.
#[no_mangle]
pub extern "C" fn bitnet_batch_ext_set_pos(
    batch: *mut bitnet_batch_ext,
    idx: i32,
    pos: *const bitnet_pos,
) -> bool {
    call(false, || {
        let p = *borrow(pos, "pos")?;
        borrow_mut(batch, "batch")?.token_mut(idx)?.pos = p;
        Ok(true)
    })
}

/// Evaluates the batch. DECODE: as bitnet_decode (0 ok, 1 no KV room, 2 aborted, -1 invalid
/// batch: empty, a token without an id, ...). ENCODE: -1, the model is decoder-only.
#[no_mangle]
pub extern "C" fn bitnet_process(
    ctx: *mut bitnet_context,
    r#type: i32,
    batch: *mut bitnet_batch_ext,
) -> i32 {
    call_with(decode_status, || {
        let b = borrow(batch, "batch")?;
        let c = ctx_mut(ctx)?;
        match r#type {
            BITNET_PROCESS_TYPE_DECODE => {}
            BITNET_PROCESS_TYPE_ENCODE => {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "bitnet_process(ENCODE): the model is decoder-only (it has no encoder)",
                ))
            }
            other => {
                return Err(Error::invalid_argument(format!(
                    "process type {other} is neither ENCODE (0) nor DECODE (1)"
                )))
            }
        }
        if b.tokens.is_empty() {
            return Err(Error::invalid_argument("the batch is empty"));
        }
        c.batch.clear();
        for (i, t) in b.tokens.iter().enumerate() {
            if t.id == BITNET_TOKEN_NULL {
                return Err(Error::invalid_argument(format!(
                    "batch token {i} has no token id (input embeddings are not supported)"
                )));
            }
            c.batch.push(t.id, t.pos, &t.seq_ids, t.output);
        }
        c.backend.check(&c.batch)?;
        c.ctx.decode(&c.batch)?;
        c.backend.sample(&c.ctx, &c.batch)?;
        Ok(0)
    })
}
