//! Saving and restoring a context (llama.h `llama_state_*`): the logits of the last decode and
//! the KV cache, as one little-endian blob with a header that ties it to the model's geometry.
//! Files additionally hold the caller's token list, as `llama_state_save_file` does. The format
//! is this library's own (llama.cpp's session files cannot be read: their KV layout is ggml's).

use super::batch::{SeqId, Token};
use super::context::Context;
use crate::error::{Error, Result};
use crate::kv::{StateReader, StateWriter};
use std::path::Path;

const MAGIC: &[u8; 4] = b"BNST";
const SEQ_MAGIC: &[u8; 4] = b"BNSQ";
const FILE_MAGIC: &[u8; 4] = b"BNSF";
const VERSION: u32 = 1;

fn check_magic(r: &mut StateReader, magic: &[u8; 4], what: &str) -> Result<()> {
    let m = r.bytes(4, "magic")?;
    if m != magic {
        return Err(Error::format(format!(
            "{what}: bad magic {m:02x?} (expected {magic:02x?})"
        )));
    }
    let v = r.u32("version")?;
    if v != VERSION {
        return Err(Error::unsupported(format!(
            "{what}: version {v} (this library reads {VERSION})"
        )));
    }
    Ok(())
}

impl Context {
    /// Size in bytes of [`Context::state_save`]'s result (`llama_state_get_size`).
    pub fn state_size(&self) -> usize {
        let (ids, logits) = self.output_state();
        8 + 4 + 4 + ids.len() * 4 + 4 + logits.len() * 4 + self.kv().state_size()
    }

    /// The whole state: last logits and the KV cache (`llama_state_get_data`).
    pub fn state_save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.state_size());
        out.extend_from_slice(MAGIC);
        let (ids, logits) = self.output_state();
        let mut w = StateWriter(&mut out);
        w.u32(VERSION);
        w.u32(self.model().config().n_vocab as u32);
        w.u32(ids.len() as u32);
        for &i in ids {
            w.i32(i);
        }
        w.u32((logits.len() / self.model().config().n_vocab.max(1)) as u32);
        for &l in logits {
            w.u32(l.to_bits());
        }
        self.kv().write_state(&mut out);
        out
    }

    /// Restores a state from [`Context::state_save`] of a context over the same model
    /// (`llama_state_set_data`). Returns the bytes read. On error the context is unchanged
    /// unless the KV data itself was cut short.
    pub fn state_load(&mut self, data: &[u8]) -> Result<usize> {
        let mut r = StateReader { buf: data, pos: 0 };
        check_magic(&mut r, MAGIC, "state data")?;
        let n_vocab = r.u32("vocabulary size")? as usize;
        if n_vocab != self.model().config().n_vocab {
            return Err(Error::invalid_argument(format!(
                "state data: saved for a vocabulary of {n_vocab}, this model has {}",
                self.model().config().n_vocab
            )));
        }
        let n_ids = r.u32("output id count")? as usize;
        let ids_bytes = r.bytes(n_ids.saturating_mul(4), "output ids")?;
        let n_out = r.u32("output count")? as usize;
        let logits_bytes = r.bytes(n_out.saturating_mul(n_vocab).saturating_mul(4), "logits")?;
        let ids: Vec<i32> = ids_bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(&bad) = ids.iter().find(|&&i| i >= n_out as i32 || i < -1) {
            return Err(Error::format(format!(
                "state data: output id {bad} with {n_out} outputs"
            )));
        }
        self.kv_mut().read_state(&mut r)?;
        let logits = logits_bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        self.restore_outputs(ids, logits, n_out);
        Ok(r.pos)
    }

    /// Writes the state and `tokens` (the caller's history) to a file (`llama_state_save_file`).
    pub fn state_save_file(&self, path: impl AsRef<Path>, tokens: &[Token]) -> Result<()> {
        let path = path.as_ref();
        let mut out = Vec::new();
        out.extend_from_slice(FILE_MAGIC);
        let mut w = StateWriter(&mut out);
        w.u32(VERSION);
        w.u32(tokens.len() as u32);
        for &t in tokens {
            w.i32(t);
        }
        out.extend_from_slice(&self.state_save());
        std::fs::write(path, out).map_err(|e| Error::io(path.display(), e))
    }

    /// Reads a file from [`Context::state_save_file`]: restores the state and returns the
    /// token list, which must fit `max_tokens` (`llama_state_load_file`).
    pub fn state_load_file(
        &mut self,
        path: impl AsRef<Path>,
        max_tokens: usize,
    ) -> Result<Vec<Token>> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
        let ctx = |e: Error| e.context(path.display());
        let mut r = StateReader { buf: &data, pos: 0 };
        check_magic(&mut r, FILE_MAGIC, "state file").map_err(ctx)?;
        let n = r.u32("token count").map_err(ctx)? as usize;
        if n > max_tokens {
            return Err(Error::new(
                crate::error::ErrorKind::BufferTooSmall,
                format!(
                    "{}: holds {n} tokens, room for {max_tokens}",
                    path.display()
                ),
            ));
        }
        let tokens: Vec<Token> = r
            .bytes(n * 4, "tokens")
            .map_err(ctx)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        self.state_load(&data[r.pos..]).map_err(ctx)?;
        Ok(tokens)
    }

    /// The KV cells of one sequence (`llama_state_seq_get_data`).
    pub fn state_seq_save(&self, seq: SeqId) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SEQ_MAGIC);
        StateWriter(&mut out).u32(VERSION);
        self.kv().write_seq_state(seq, &mut out);
        out
    }

    /// Restores [`Context::state_seq_save`] data as sequence `dst`, replacing its cells
    /// (`llama_state_seq_set_data`). Returns the bytes read; ContextFull if no room.
    pub fn state_seq_load(&mut self, data: &[u8], dst: SeqId) -> Result<usize> {
        if !(0..self.params().n_seq_max as SeqId).contains(&dst) {
            return Err(Error::invalid_argument(format!(
                "sequence id {dst} is outside 0..{} (n_seq_max)",
                self.params().n_seq_max
            )));
        }
        let mut r = StateReader { buf: data, pos: 0 };
        check_magic(&mut r, SEQ_MAGIC, "sequence state")?;
        self.kv_mut().read_seq_state(dst, &mut r)?;
        Ok(r.pos)
    }
}
