//! State group: save/restore a context (KV cache + last outputs) to a buffer or a file.

use super::context::{bitnet_context, ctx_mut, ctx_ref};
use super::{bitnet_seq_id, bitnet_token, c_str, call, slice, slice_mut};
use crate::error::{Error, ErrorKind};

/// Size in bytes of the context's state (for bitnet_state_get_data). 0 if ctx is NULL.
#[no_mangle]
pub extern "C" fn bitnet_state_get_size(ctx: *mut bitnet_context) -> usize {
    call(0, || Ok(ctx_ref(ctx)?.ctx.state_size()))
}

/// Copies the state into `dst` (`size` bytes). Returns the bytes written; 0 on error (NULL
/// arguments, or size smaller than bitnet_state_get_size).
#[no_mangle]
pub extern "C" fn bitnet_state_get_data(
    ctx: *mut bitnet_context,
    dst: *mut u8,
    size: usize,
) -> usize {
    call(0, || {
        let state = ctx_ref(ctx)?.ctx.state_save();
        if state.len() > size {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("state needs {} bytes, dst holds {size}", state.len()),
            ));
        }
        slice_mut(dst, state.len() as i64, "dst")?.copy_from_slice(&state);
        Ok(state.len())
    })
}

/// Restores a state written by bitnet_state_get_data (same model, n_ctx at least as large,
/// same or larger n_seq_max). Returns the bytes read; 0 on error (the context is then
/// unchanged, unless the KV data itself was cut short).
#[no_mangle]
pub extern "C" fn bitnet_state_set_data(
    ctx: *mut bitnet_context,
    src: *const u8,
    size: usize,
) -> usize {
    call(0, || {
        let c = ctx_mut(ctx)?;
        let src = slice(src, i64::try_from(size).unwrap_or(i64::MAX), "src")?;
        c.ctx.state_load(src)
    })
}

/// Saves the state and `n_token_count` tokens (the text the state was built from) to a file.
#[no_mangle]
pub extern "C" fn bitnet_state_save_file(
    ctx: *mut bitnet_context,
    path_session: *const std::ffi::c_char,
    tokens: *const bitnet_token,
    n_token_count: usize,
) -> bool {
    call(false, || {
        let c = ctx_ref(ctx)?;
        let path = c_str(path_session, "path_session")?;
        let tokens = slice(
            tokens,
            i64::try_from(n_token_count).unwrap_or(i64::MAX),
            "tokens",
        )?;
        c.ctx.state_save_file(path, tokens)?;
        Ok(true)
    })
}

/// Restores a file from bitnet_state_save_file: the state goes into ctx, its tokens into
/// tokens_out (capacity n_token_capacity) and their count into *n_token_count_out. False on
/// error (missing or malformed file, other model, too few tokens of capacity); the context is
/// then unchanged, unless the file's KV data itself was cut short.
#[no_mangle]
pub extern "C" fn bitnet_state_load_file(
    ctx: *mut bitnet_context,
    path_session: *const std::ffi::c_char,
    tokens_out: *mut bitnet_token,
    n_token_capacity: usize,
    n_token_count_out: *mut usize,
) -> bool {
    call(false, || {
        let c = ctx_mut(ctx)?;
        let path = c_str(path_session, "path_session")?;
        let count_out = super::borrow_mut(n_token_count_out, "n_token_count_out")?;
        let out = slice_mut(
            tokens_out,
            i64::try_from(n_token_capacity).unwrap_or(i64::MAX),
            "tokens_out",
        )?;
        let tokens = c.ctx.state_load_file(path, out.len())?;
        out[..tokens.len()].copy_from_slice(&tokens);
        *count_out = tokens.len();
        Ok(true)
    })
}

/// Size in bytes of sequence `seq_id`'s state (bitnet_state_seq_get_data). 0 on error.
#[no_mangle]
pub extern "C" fn bitnet_state_seq_get_size(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
) -> usize {
    call(0, || Ok(seq_state(ctx, seq_id)?.len()))
}

/// Flags of the bitnet_state_seq_*_ext functions (llama.h `llama_state_seq_flags`).
pub type bitnet_state_seq_flags = u32;

/// No flag: the whole sequence state.
pub const BITNET_STATE_SEQ_FLAGS_NONE: bitnet_state_seq_flags = 0;
/// Partial states only (SWA or recurrent caches). BitNet models have neither, so, as llama.h's
/// plain KV cache does, the whole sequence state is written and read.
pub const BITNET_STATE_SEQ_FLAGS_PARTIAL_ONLY: bitnet_state_seq_flags = 1;
/// Old name of BITNET_STATE_SEQ_FLAGS_PARTIAL_ONLY.
pub const BITNET_STATE_SEQ_FLAGS_SWA_ONLY: bitnet_state_seq_flags = 1;
/// Keep the tensor data in device buffers. There are no devices: the state is a
/// self-contained host buffer, exactly as without the flag, and stays valid after later gets.
pub const BITNET_STATE_SEQ_FLAGS_ON_DEVICE: bitnet_state_seq_flags = 2;

fn check_flags(flags: bitnet_state_seq_flags) -> crate::Result<()> {
    let known = BITNET_STATE_SEQ_FLAGS_PARTIAL_ONLY | BITNET_STATE_SEQ_FLAGS_ON_DEVICE;
    if flags & !known != 0 {
        return Err(Error::invalid_argument(format!(
            "state sequence flags {flags:#x}: unknown bits {:#x}",
            flags & !known
        )));
    }
    Ok(())
}

/// bitnet_state_seq_get_size with flags (see BITNET_STATE_SEQ_FLAGS_*: for BitNet models every
/// flag gives the same state). 0 on error (also for unknown flag bits).
#[no_mangle]
pub extern "C" fn bitnet_state_seq_get_size_ext(
    ctx: *mut bitnet_context,
    seq_id: bitnet_seq_id,
    flags: bitnet_state_seq_flags,
) -> usize {
    call(0, || {
        check_flags(flags)?;
        Ok(seq_state(ctx, seq_id)?.len())
    })
}

/// bitnet_state_seq_get_data with flags. 0 on error (also for unknown flag bits).
#[no_mangle]
pub extern "C" fn bitnet_state_seq_get_data_ext(
    ctx: *mut bitnet_context,
    dst: *mut u8,
    size: usize,
    seq_id: bitnet_seq_id,
    flags: bitnet_state_seq_flags,
) -> usize {
    if let Err(e) = check_flags(flags) {
        return call(0, || Err(e));
    }
    bitnet_state_seq_get_data(ctx, dst, size, seq_id)
}

/// bitnet_state_seq_set_data with flags. 0 on error (also for unknown flag bits); the
/// context is then unchanged.
#[no_mangle]
pub extern "C" fn bitnet_state_seq_set_data_ext(
    ctx: *mut bitnet_context,
    src: *const u8,
    size: usize,
    dest_seq_id: bitnet_seq_id,
    flags: bitnet_state_seq_flags,
) -> usize {
    if let Err(e) = check_flags(flags) {
        return call(0, || Err(e));
    }
    bitnet_state_seq_set_data(ctx, src, size, dest_seq_id)
}

/// Saves sequence `seq_id`'s state and `n_token_count` tokens (its text) to a file. Returns
/// the bytes written; 0 on error (NULL arguments, bad seq_id, I/O).
#[no_mangle]
pub extern "C" fn bitnet_state_seq_save_file(
    ctx: *mut bitnet_context,
    filepath: *const std::ffi::c_char,
    seq_id: bitnet_seq_id,
    tokens: *const bitnet_token,
    n_token_count: usize,
) -> usize {
    call(0, || {
        let c = ctx_ref(ctx)?;
        let path = c_str(filepath, "filepath")?;
        let tokens = slice(
            tokens,
            i64::try_from(n_token_count).unwrap_or(i64::MAX),
            "tokens",
        )?;
        c.ctx.state_seq_save_file(path, seq_id, tokens)
    })
}

/// Restores a file from bitnet_state_seq_save_file into sequence `dest_seq_id` (its cells are
/// replaced), its tokens into tokens_out (capacity n_token_capacity) and their count into
/// *n_token_count_out. Returns the bytes read (the file's length); 0 on error (missing or
/// malformed file, other model, bad id, too few tokens of capacity, no room in the cache); the
/// context is then unchanged. With tokens_out NULL, as llama.h, only the token count is
/// reported (nothing is loaded) and the header's length (12) returned.
#[no_mangle]
pub extern "C" fn bitnet_state_seq_load_file(
    ctx: *mut bitnet_context,
    filepath: *const std::ffi::c_char,
    dest_seq_id: bitnet_seq_id,
    tokens_out: *mut bitnet_token,
    n_token_capacity: usize,
    n_token_count_out: *mut usize,
) -> usize {
    call(0, || {
        let c = ctx_mut(ctx)?;
        let path = c_str(filepath, "filepath")?;
        let count_out = super::borrow_mut(n_token_count_out, "n_token_count_out")?;
        if tokens_out.is_null() {
            *count_out = c.ctx.state_seq_file_token_count(path)?;
            return Ok(12);
        }
        let out = slice_mut(
            tokens_out,
            i64::try_from(n_token_capacity).unwrap_or(i64::MAX),
            "tokens_out",
        )?;
        let (tokens, len) = c.ctx.state_seq_load_file(path, dest_seq_id, out.len())?;
        out[..tokens.len()].copy_from_slice(&tokens);
        *count_out = tokens.len();
        Ok(len)
    })
}

/// Copies sequence `seq_id`'s KV cells into `dst` (`size` bytes). Returns the bytes written;
/// 0 on error (NULL arguments, bad seq_id, size too small).
#[no_mangle]
pub extern "C" fn bitnet_state_seq_get_data(
    ctx: *mut bitnet_context,
    dst: *mut u8,
    size: usize,
    seq_id: bitnet_seq_id,
) -> usize {
    call(0, || {
        let state = seq_state(ctx, seq_id)?;
        if state.len() > size {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!(
                    "sequence state needs {} bytes, dst holds {size}",
                    state.len()
                ),
            ));
        }
        slice_mut(dst, state.len() as i64, "dst")?.copy_from_slice(&state);
        Ok(state.len())
    })
}

/// Restores a sequence state from bitnet_state_seq_get_data as sequence `dest_seq_id`,
/// replacing its cells. Returns the bytes read; 0 on error (bad data or id, no room).
#[no_mangle]
pub extern "C" fn bitnet_state_seq_set_data(
    ctx: *mut bitnet_context,
    src: *const u8,
    size: usize,
    dest_seq_id: bitnet_seq_id,
) -> usize {
    call(0, || {
        let c = ctx_mut(ctx)?;
        let src = slice(src, i64::try_from(size).unwrap_or(i64::MAX), "src")?;
        c.ctx.state_seq_load(src, dest_seq_id)
    })
}

fn seq_state(ctx: *mut bitnet_context, seq_id: bitnet_seq_id) -> crate::Result<Vec<u8>> {
    let c = ctx_ref(ctx)?;
    let n_seq = c.ctx.params().n_seq_max as bitnet_seq_id;
    if !(0..n_seq).contains(&seq_id) {
        return Err(Error::invalid_argument(format!(
            "seq_id {seq_id} is outside 0..{n_seq} (n_seq_max)"
        )));
    }
    Ok(c.ctx.state_seq_save(seq_id))
}
