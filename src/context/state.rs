//! Saving and restoring a context (llama.h `llama_state_*`): the logits of the last decode and
//! the KV cache, as one little-endian blob. Files additionally hold the caller's token list, as
//! `llama_state_save_file` does. The format is this library's own (llama.cpp's session files
//! cannot be read: their KV layout is ggml's).
//!
//! Every blob starts with a header naming what it belongs to: magic, version, the model's id
//! (a hash of its hyper-parameters and tensor directory, so a state of another model, even of
//! the same shape, is refused), and the saving context's n_ctx and n_seq_max. Every field is
//! range-checked against the header and the loading context, the blob must end exactly where
//! its data ends (trailing bytes are an error), and nothing changes before all of it is known
//! to be good: a failed load leaves the context byte for byte as it was. Files are read
//! piecewise with each size checked against the file's length first.
//!
//! ```text
//! whole:    "BNST" u32 version, u64 model id, u32 n_ctx, u32 n_seq_max, u32 n_vocab,
//!           u32 n_ids, i32 ids[n_ids], u32 n_out, f32 logits[n_out * n_vocab], KV section
//! sequence: "BNSQ" u32 version, u64 model id, u32 n_ctx, u32 n_seq_max, KV sequence section
//! file:     "BNSF" u32 version, u32 n_tokens, i32 tokens[n_tokens], whole state
//! seq file: "BNQF" u32 version, u32 n_tokens, i32 tokens[n_tokens], sequence state
//! ```

use super::batch::{SeqId, Token};
use super::context::Context;
use crate::error::{Error, ErrorKind, Result};
use crate::kv::{StateReader, StateWriter, MAX_SEQ};
use crate::model::Model;
use std::io::Read;
use std::path::Path;

const MAGIC: &[u8; 4] = b"BNST";
const SEQ_MAGIC: &[u8; 4] = b"BNSQ";
const FILE_MAGIC: &[u8; 4] = b"BNSF";
const SEQ_FILE_MAGIC: &[u8; 4] = b"BNQF";
/// 2: the header names the model and the saving context; 1 had neither.
const VERSION: u32 = 2;

/// Bytes of the common header: magic, version, model id, n_ctx, n_seq_max.
const HEADER: usize = 4 + 4 + 8 + 4 + 4;

/// The model's identity in state blobs: FNV-1a 64 over its hyper-parameters and its tensor
/// directory (names, types, shapes, offsets). Two files of the same shape but other tensor
/// types (the TQ2_0 and I2_S copies of one network) differ.
pub(super) fn model_id(model: &Model) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    };
    let c = model.config();
    eat(c.arch.name().as_bytes());
    for v in [
        c.n_ctx_train,
        c.n_embd,
        c.n_layer,
        c.n_ff,
        c.n_head,
        c.n_head_kv,
        c.head_dim,
        c.head_dim_v,
        c.n_rot,
        c.n_vocab,
    ] {
        eat(&(v as u64).to_le_bytes());
    }
    eat(&c.rms_eps.to_bits().to_le_bytes());
    eat(&c.rope_freq_base.to_bits().to_le_bytes());
    for t in model.gguf().tensors() {
        eat(&(t.name.len() as u64).to_le_bytes());
        eat(t.name.as_bytes());
        eat(&t.ty.id().to_le_bytes());
        for &d in &t.dims {
            eat(&(d as u64).to_le_bytes());
        }
        eat(&(t.offset as u64).to_le_bytes());
    }
    h
}

impl Context {
    fn write_header(&self, out: &mut Vec<u8>, magic: &[u8; 4]) {
        out.extend_from_slice(magic);
        let mut w = StateWriter(out);
        w.u32(VERSION);
        w.u64(model_id(self.model()));
        w.u32(self.n_ctx() as u32);
        w.u32(self.params().n_seq_max);
    }

    /// Reads and checks the common header; returns the saving context's n_seq_max.
    fn read_header(&self, r: &mut StateReader, magic: &[u8; 4], what: &str) -> Result<usize> {
        check_magic(r, magic, what)?;
        let id = r.u64("model id")?;
        let ours = model_id(self.model());
        if id != ours {
            return Err(Error::invalid_argument(format!(
                "{what}: saved with another model (model id {id:016x}; this model is \
                 {ours:016x})"
            )));
        }
        let n_ctx = r.u32("n_ctx")?;
        let n_seq_max = r.u32("n_seq_max")?;
        if n_ctx == 0 || n_ctx > i32::MAX as u32 {
            return Err(Error::format(format!("{what}: n_ctx {n_ctx} out of range")));
        }
        if n_seq_max == 0 || n_seq_max as usize > MAX_SEQ {
            return Err(Error::format(format!(
                "{what}: n_seq_max {n_seq_max} out of range (1..={MAX_SEQ})"
            )));
        }
        Ok(n_seq_max as usize)
    }

    /// Size in bytes of [`Context::state_save`]'s result (`llama_state_get_size`).
    pub fn state_size(&self) -> usize {
        let (ids, logits) = self.output_state();
        HEADER + 4 + 4 + ids.len() * 4 + 4 + logits.len() * 4 + self.kv().state_size()
    }

    /// The whole state: last logits and the KV cache (`llama_state_get_data`).
    pub fn state_save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.state_size());
        self.write_header(&mut out, MAGIC);
        let (ids, logits) = self.output_state();
        let n_vocab = self.model().config().n_vocab;
        let mut w = StateWriter(&mut out);
        w.u32(n_vocab as u32);
        w.u32(ids.len() as u32);
        for &i in ids {
            w.i32(i);
        }
        w.u32((logits.len() / n_vocab.max(1)) as u32);
        for &l in logits {
            w.u32(l.to_bits());
        }
        self.kv().write_state(&mut out);
        out
    }

    /// Restores a state from [`Context::state_save`] of a context over the same model
    /// (`llama_state_set_data`): every byte of `data` must belong to it. Returns the bytes read.
    /// On error the context is unchanged.
    pub fn state_load(&mut self, data: &[u8]) -> Result<usize> {
        let mut r = StateReader { buf: data, pos: 0 };
        let saved_n_seq_max = self.read_header(&mut r, MAGIC, "state data")?;
        let n_vocab = r.u32("vocabulary size")? as usize;
        if n_vocab != self.model().config().n_vocab {
            return Err(Error::format(format!(
                "state data: saved for a vocabulary of {n_vocab}, this model has {}",
                self.model().config().n_vocab
            )));
        }
        let n_ids = r.u32("output id count")? as usize;
        if n_ids > self.params().n_batch as usize {
            return Err(Error::invalid_argument(format!(
                "state data: {n_ids} output ids, more than this context's n_batch {}",
                self.params().n_batch
            )));
        }
        let ids_bytes = r.bytes(n_ids.saturating_mul(4), "output ids")?;
        let n_out = r.u32("output count")? as usize;
        if n_out > n_ids {
            return Err(Error::format(format!(
                "state data: {n_out} outputs for a batch of {n_ids} tokens"
            )));
        }
        let logits_bytes = r.bytes(n_out.saturating_mul(n_vocab).saturating_mul(4), "logits")?;
        let ids: Vec<i32> = ids_bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // Each output row once, in batch order; other tokens -1.
        let mut next = 0;
        for (i, &id) in ids.iter().enumerate() {
            if id == -1 {
                continue;
            }
            if id != next {
                return Err(Error::format(format!(
                    "state data: output id {id} of token {i}, expected -1 or {next} \
                     ({n_out} outputs)"
                )));
            }
            next += 1;
        }
        if next as usize != n_out {
            return Err(Error::format(format!(
                "state data: {next} tokens have outputs, the header says {n_out}"
            )));
        }
        // The KV reader checks everything (and that it ends the blob) before changing the
        // cache; after it nothing can fail.
        let n_seq_max = saved_n_seq_max.min(self.params().n_seq_max as usize);
        self.kv_mut().read_state(&mut r, n_seq_max)?;
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
        w.u32(u32::try_from(tokens.len()).map_err(|_| {
            Error::invalid_argument(format!("{} tokens is too many to save", tokens.len()))
        })?);
        for &t in tokens {
            w.i32(t);
        }
        out.extend_from_slice(&self.state_save());
        std::fs::write(path, out).map_err(|e| Error::io(path.display(), e))
    }

    /// Reads a file from [`Context::state_save_file`]: restores the state and returns the
    /// token list, which must fit `max_tokens` (`llama_state_load_file`). The file is read in
    /// pieces, each size checked against the file's length and this context's largest state
    /// first, so a huge or endless file (a device, a pipe) is refused, not read into memory.
    /// On error the context is unchanged.
    pub fn state_load_file(
        &mut self,
        path: impl AsRef<Path>,
        max_tokens: usize,
    ) -> Result<Vec<Token>> {
        let path = path.as_ref();
        let most = self.max_state_size() as u64;
        let mut f = StateFile::open(path, FILE_MAGIC, "state file")?;
        let (tokens, state) = f.read_rest(max_tokens, most)?;
        self.state_load(&state)
            .map_err(|e| e.context(path.display()))?;
        Ok(tokens)
    }

    /// Writes sequence `seq`'s state and `tokens` to a file (`llama_state_seq_save_file`).
    /// Returns the bytes written.
    pub fn state_seq_save_file(
        &self,
        path: impl AsRef<Path>,
        seq: SeqId,
        tokens: &[Token],
    ) -> Result<usize> {
        self.check_seq(seq)?;
        let path = path.as_ref();
        let mut out = Vec::new();
        out.extend_from_slice(SEQ_FILE_MAGIC);
        let mut w = StateWriter(&mut out);
        w.u32(VERSION);
        w.u32(u32::try_from(tokens.len()).map_err(|_| {
            Error::invalid_argument(format!("{} tokens is too many to save", tokens.len()))
        })?);
        for &t in tokens {
            w.i32(t);
        }
        out.extend_from_slice(&self.state_seq_save(seq));
        std::fs::write(path, &out).map_err(|e| Error::io(path.display(), e))?;
        Ok(out.len())
    }

    /// The token count of a file from [`Context::state_seq_save_file`], without loading
    /// anything (`llama_state_seq_load_file` with no token buffer). The count is checked
    /// against the file's length.
    pub fn state_seq_file_token_count(&self, path: impl AsRef<Path>) -> Result<usize> {
        Ok(StateFile::open(path.as_ref(), SEQ_FILE_MAGIC, "sequence state file")?.n_tokens)
    }

    /// Reads a file from [`Context::state_seq_save_file`] into sequence `dst` (replacing its
    /// cells) and returns its tokens, which must fit `max_tokens`, and the file's length
    /// (`llama_state_seq_load_file`). Read as [`Context::state_load_file`] reads: sizes checked
    /// against the file and this context's largest sequence state first. On error the context
    /// is unchanged.
    pub fn state_seq_load_file(
        &mut self,
        path: impl AsRef<Path>,
        dst: SeqId,
        max_tokens: usize,
    ) -> Result<(Vec<Token>, usize)> {
        self.check_seq(dst)?;
        let path = path.as_ref();
        let most = self.max_seq_state_size() as u64;
        let mut f = StateFile::open(path, SEQ_FILE_MAGIC, "sequence state file")?;
        let len = f.len;
        let (tokens, state) = f.read_rest(max_tokens, most)?;
        self.state_seq_load(&state, dst)
            .map_err(|e| e.context(path.display()))?;
        Ok((tokens, len as usize))
    }

    fn check_seq(&self, seq: SeqId) -> Result<()> {
        if !(0..self.params().n_seq_max as SeqId).contains(&seq) {
            return Err(Error::invalid_argument(format!(
                "sequence id {seq} is outside 0..{} (n_seq_max)",
                self.params().n_seq_max
            )));
        }
        Ok(())
    }

    /// The largest sequence state this context can produce or accept: every cell in it.
    fn max_seq_state_size(&self) -> usize {
        let cfg = self.model().config();
        let cells = self.n_ctx();
        HEADER + 12 + cells * (4 + cfg.n_layer * 2 * cfg.n_embd_kv() * 2)
    }

    /// The largest whole state this context can produce or accept: every cell used, n_batch
    /// outputs.
    fn max_state_size(&self) -> usize {
        let cfg = self.model().config();
        let n_batch = self.params().n_batch as usize;
        let cells = self.n_ctx();
        let kv = 20 + cells * 16 + cfg.n_layer * 2 * cells * cfg.n_embd_kv() * 2;
        HEADER + 12 + n_batch * 4 + n_batch * cfg.n_vocab * 4 + kv
    }

    /// The KV cells of one sequence (`llama_state_seq_get_data`).
    pub fn state_seq_save(&self, seq: SeqId) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_header(&mut out, SEQ_MAGIC);
        self.kv().write_seq_state(seq, &mut out);
        out
    }

    /// Restores [`Context::state_seq_save`] data as sequence `dst`, replacing its cells
    /// (`llama_state_seq_set_data`): every byte of `data` must belong to it. Returns the bytes
    /// read; ContextFull if no room. On error the context is unchanged.
    pub fn state_seq_load(&mut self, data: &[u8], dst: SeqId) -> Result<usize> {
        self.check_seq(dst)?;
        let mut r = StateReader { buf: data, pos: 0 };
        self.read_header(&mut r, SEQ_MAGIC, "sequence state")?;
        self.kv_mut().read_seq_state(dst, &mut r)?;
        Ok(r.pos)
    }
}

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

/// A state file being read: its header is checked, its token count known to fit the file.
struct StateFile<'p> {
    f: std::fs::File,
    path: &'p Path,
    what: &'static str,
    n_tokens: usize,
    len: u64,
}

impl<'p> StateFile<'p> {
    /// Opens `path` and checks that it is a regular file, its magic and version, and that
    /// its token count fits its length: nothing is read past the 12-byte header.
    fn open(path: &'p Path, magic: &[u8; 4], what: &'static str) -> Result<Self> {
        let ctx = |e: Error| e.context(path.display());
        let io = |e: std::io::Error| Error::io(path.display(), e);
        let mut f = std::fs::File::open(path).map_err(io)?;
        let meta = f.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ctx(Error::format(format!("{what}: not a regular file"))));
        }
        let mut head = [0u8; 12];
        read_exact(&mut f, &mut head, "header").map_err(ctx)?;
        let mut r = StateReader { buf: &head, pos: 0 };
        check_magic(&mut r, magic, what).map_err(ctx)?;
        let n_tokens = r.u32("token count").map_err(ctx)? as usize;
        let len = meta.len();
        let tokens_end = 12 + 4 * n_tokens as u64;
        if tokens_end > len {
            return Err(ctx(Error::format(format!(
                "{what}: {n_tokens} tokens need {tokens_end} bytes, the file has {len}"
            ))));
        }
        Ok(StateFile {
            f,
            path,
            what,
            n_tokens,
            len,
        })
    }

    /// Reads the tokens (at most `max_tokens`) and the state (at most `most` bytes), and
    /// checks that nothing follows.
    fn read_rest(&mut self, max_tokens: usize, most: u64) -> Result<(Vec<Token>, Vec<u8>)> {
        let (path, what, n) = (self.path, self.what, self.n_tokens);
        let ctx = |e: Error| e.context(path.display());
        if n > max_tokens {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!(
                    "{}: holds {n} tokens, room for {max_tokens}",
                    path.display()
                ),
            ));
        }
        let state_len = self.len - (12 + 4 * n as u64);
        if state_len > most {
            return Err(ctx(Error::format(format!(
                "{what}: {state_len} bytes of state, more than this context's largest \
                 state ({most} bytes)"
            ))));
        }
        let mut buf = vec![0u8; 4 * n];
        read_exact(&mut self.f, &mut buf, "tokens").map_err(ctx)?;
        let tokens: Vec<Token> = buf
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut state = vec![0u8; state_len as usize];
        read_exact(&mut self.f, &mut state, "state").map_err(ctx)?;
        // The file may have grown since its length was read: nothing may follow.
        let more = self
            .f
            .read(&mut [0u8; 1])
            .map_err(|e| Error::io(path.display(), e))?;
        if more != 0 {
            return Err(ctx(Error::format(format!("{what}: bytes after the state"))));
        }
        Ok((tokens, state))
    }
}

fn read_exact(f: &mut std::fs::File, buf: &mut [u8], what: &str) -> Result<()> {
    f.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::format(format!("state file: truncated while reading the {what}"))
        } else {
            Error::format(format!("state file: cannot read the {what}: {e}"))
        }
    })
}
