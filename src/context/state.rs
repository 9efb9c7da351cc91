//! Saving and restoring a context's state (`llama_state_*`): the KV cache (cells and their
//! K/V data) and the outputs of the last decode, so that a restored context continues
//! bit-exactly where the saved one was.
//!
//! Format (little-endian, version 1):
//! ```text
//! "BNST" u32:version  u32:n_layer u32:n_embd_kv u32:n_vocab       model fingerprint
//! u32:n_cells u32:head u8:has_shift                                 cells 0..n_cells saved
//! n_cells × (i32:pos i32:delta u64:seqs)
//! n_layer × (n_cells×n_embd_kv f16 K rows, n_embd_kv×n_cells f16 V columns)
//! u32:n_outputs u32:n_ids n_ids×i32:output_ids n_outputs×n_vocab×f32:logits
//! ```
//! Session files (`save_session`) put `"BNSS" u32:version u32:n_tokens n_tokens×i32` in front.

use super::batch::Token;
use super::kv_cache::KvCell;
use super::Context;
use crate::error::{Error, Result};
use half::f16;
use std::path::Path;

const STATE_MAGIC: &[u8; 4] = b"BNST";
const SESSION_MAGIC: &[u8; 4] = b"BNSS";
const VERSION: u32 = 1;

/// Reads the format back with bounds checks; every error names the field.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                Error::format(format!(
                    "state: truncated at byte {} reading {what} ({n} bytes, {} left)",
                    self.pos,
                    self.bytes.len() - self.pos
                ))
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(self.u32(what)? as i32)
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or_default(),
        ))
    }
    fn f16s(&mut self, out: &mut [f16], what: &str) -> Result<()> {
        let b = self.take(out.len() * 2, what)?;
        for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        Ok(())
    }
    fn expect_magic(&mut self, magic: &[u8; 4], what: &str) -> Result<()> {
        let m = self.take(4, what)?;
        if m != magic {
            return Err(Error::format(format!(
                "{what}: bad magic {m:?}, expected {magic:?}"
            )));
        }
        let v = self.u32("version")?;
        if v != VERSION {
            return Err(Error::unsupported(format!(
                "{what}: version {v}, this library reads {VERSION}"
            )));
        }
        Ok(())
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn len_u32(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::internal(format!("state: {what} {n} does not fit u32")))
}

impl Context {
    fn state_dims(&self) -> (usize, usize, usize, usize) {
        let cfg = self.model().config();
        (
            cfg.n_layer,
            self.kv().n_embd_kv(),
            cfg.n_vocab,
            self.kv().cell_max(),
        )
    }

    /// Exact size in bytes of [`Context::state_bytes`] (`llama_state_get_size`).
    pub fn state_size(&self) -> usize {
        let (n_layer, n_embd_kv, n_vocab, n_cells) = self.state_dims();
        4 + 4 * 4
            + 4
            + 4
            + 1
            + n_cells * 16
            + n_layer * 2 * (n_cells * n_embd_kv * 2)
            + 8
            + self.output_ids.len() * 4
            + self.n_outputs * n_vocab * 4
    }

    /// The state: KV cells in use and their data, and the last decode's outputs
    /// (`llama_state_get_data`).
    pub fn state_bytes(&self) -> Result<Vec<u8>> {
        let (n_layer, n_embd_kv, n_vocab, n_cells) = self.state_dims();
        let kv = self.kv();
        let mut out = Vec::with_capacity(self.state_size());
        out.extend_from_slice(STATE_MAGIC);
        for v in [
            VERSION,
            len_u32(n_layer, "n_layer")?,
            len_u32(n_embd_kv, "n_embd_kv")?,
            len_u32(n_vocab, "n_vocab")?,
        ] {
            put_u32(&mut out, v);
        }
        put_u32(&mut out, len_u32(n_cells, "n_cells")?);
        put_u32(&mut out, len_u32(kv.head, "head")?);
        out.push(kv.has_shift as u8);
        for c in &kv.cells[..n_cells] {
            out.extend_from_slice(&c.pos.to_le_bytes());
            out.extend_from_slice(&c.delta.to_le_bytes());
            out.extend_from_slice(&c.seqs.to_le_bytes());
        }
        let size = kv.size();
        for l in &kv.layers {
            for x in &l.k[..n_cells * n_embd_kv] {
                out.extend_from_slice(&x.to_bits().to_le_bytes());
            }
            for d in 0..n_embd_kv {
                for x in &l.v[d * size..d * size + n_cells] {
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
            }
        }
        put_u32(&mut out, len_u32(self.n_outputs, "n_outputs")?);
        put_u32(&mut out, len_u32(self.output_ids.len(), "n_output_ids")?);
        for id in &self.output_ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for x in &self.logits[..self.n_outputs * n_vocab] {
            out.extend_from_slice(&x.to_le_bytes());
        }
        debug_assert_eq!(out.len(), self.state_size());
        Ok(out)
    }

    /// Restores a state from [`Context::state_bytes`] of a context over the same model with at
    /// least as many cells (`llama_state_set_data`). Returns the bytes read. On error the
    /// context is unchanged.
    pub fn state_load(&mut self, bytes: &[u8]) -> Result<usize> {
        let mut r = Reader { bytes, pos: 0 };
        r.expect_magic(STATE_MAGIC, "state")?;
        let (n_layer, n_embd_kv, n_vocab, _) = self.state_dims();
        for (what, want) in [
            ("n_layer", n_layer),
            ("n_embd_kv", n_embd_kv),
            ("n_vocab", n_vocab),
        ] {
            let got = r.u32(what)? as usize;
            if got != want {
                return Err(Error::invalid_argument(format!(
                    "state: {what} {got} does not match this model's {want}"
                )));
            }
        }
        let size = self.kv().size();
        let n_cells = r.u32("n_cells")? as usize;
        if n_cells > size {
            return Err(Error::invalid_argument(format!(
                "state: holds {n_cells} cells, this context has only {size} (n_ctx)"
            )));
        }
        let n_seq_max = self.params().n_seq_max;
        let head = r.u32("head")? as usize;
        let has_shift = r.take(1, "has_shift")?[0] != 0;
        let mut cells = vec![
            KvCell {
                pos: -1,
                delta: 0,
                seqs: 0
            };
            size
        ];
        for (i, c) in cells.iter_mut().take(n_cells).enumerate() {
            let what = format!("cell {i}");
            c.pos = r.i32(&what)?;
            c.delta = r.i32(&what)?;
            c.seqs = r.u64(&what)?;
            if n_seq_max < 64 && c.seqs >> n_seq_max != 0 {
                return Err(Error::invalid_argument(format!(
                    "state: cell {i} uses sequence ids beyond this context's n_seq_max {n_seq_max}"
                )));
            }
            if c.pos < -1 || (c.pos == -1) != (c.seqs == 0) {
                return Err(Error::format(format!(
                    "state: cell {i} has position {} and sequences {:#x}",
                    c.pos, c.seqs
                )));
            }
        }
        let mut k = vec![f16::ZERO; n_cells * n_embd_kv];
        let mut v = vec![f16::ZERO; n_embd_kv * n_cells];
        let mut layers_kv = Vec::with_capacity(n_layer);
        for l in 0..n_layer {
            r.f16s(&mut k, &format!("layer {l} K"))?;
            r.f16s(&mut v, &format!("layer {l} V"))?;
            layers_kv.push((k.clone(), v.clone()));
        }
        let n_outputs = r.u32("n_outputs")? as usize;
        let n_ids = r.u32("n_output_ids")? as usize;
        let ids_bytes = r.take(n_ids.saturating_mul(4), "output_ids")?;
        let output_ids: Vec<i32> = ids_bytes
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(bad) = output_ids
            .iter()
            .find(|&&i| i < -1 || i >= n_outputs as i32)
        {
            return Err(Error::format(format!(
                "state: output id {bad} outside -1..{n_outputs}"
            )));
        }
        let logit_bytes = r.take(
            n_outputs.saturating_mul(n_vocab).saturating_mul(4),
            "logits",
        )?;

        // Everything read and checked: apply.
        let kv = self.kv_mut();
        kv.clear();
        for (l, (k, v)) in kv.layers.iter_mut().zip(layers_kv) {
            l.k[..n_cells * n_embd_kv].copy_from_slice(&k);
            for d in 0..n_embd_kv {
                l.v[d * size..d * size + n_cells]
                    .copy_from_slice(&v[d * n_cells..(d + 1) * n_cells]);
            }
        }
        kv.used = cells.iter().filter(|c| !c.is_empty()).count();
        kv.cells = cells;
        kv.head = if head < size { head } else { 0 };
        kv.has_shift = has_shift;
        if self.logits.len() < n_outputs * n_vocab {
            self.logits.resize(n_outputs * n_vocab, 0.0);
        }
        for (o, c) in self.logits.iter_mut().zip(logit_bytes.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        self.n_outputs = n_outputs;
        self.output_ids = output_ids;
        Ok(r.pos)
    }

    /// Writes the state and the tokens it was built from to a file (`llama_state_save_file`).
    pub fn save_session(&self, path: impl AsRef<Path>, tokens: &[Token]) -> Result<()> {
        let path = path.as_ref();
        let mut out = Vec::new();
        out.extend_from_slice(SESSION_MAGIC);
        put_u32(&mut out, VERSION);
        put_u32(&mut out, len_u32(tokens.len(), "n_tokens")?);
        for t in tokens {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(&self.state_bytes()?);
        std::fs::write(path, out).map_err(|e| Error::io(path.display(), e))
    }

    /// Restores a file written by [`Context::save_session`]; returns its tokens
    /// (`llama_state_load_file`). On error the context is unchanged.
    pub fn load_session(&mut self, path: impl AsRef<Path>) -> Result<Vec<Token>> {
        let path = path.as_ref();
        let (tokens, state) = read_session(path)?;
        let used = self
            .state_load(&state)
            .map_err(|e| e.context(path.display()))?;
        if used != state.len() {
            return Err(Error::format(format!(
                "{}: {} trailing bytes after the state",
                path.display(),
                state.len() - used
            )));
        }
        Ok(tokens)
    }
}

/// Reads a session file: its tokens and the state bytes (for [`Context::state_load`]).
pub fn read_session(path: impl AsRef<Path>) -> Result<(Vec<Token>, Vec<u8>)> {
    let path = path.as_ref();
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    let mut r = Reader {
        bytes: &bytes,
        pos: 0,
    };
    let header = (|| {
        r.expect_magic(SESSION_MAGIC, "session file")?;
        let n = r.u32("n_tokens")? as usize;
        let tb = r.take(n.saturating_mul(4), "tokens")?;
        Ok(tb
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    })();
    let tokens: Vec<Token> = header.map_err(|e: Error| e.context(path.display()))?;
    let start = r.pos;
    bytes.drain(..start);
    Ok((tokens, bytes))
}

#[cfg(test)]
mod tests {
    use crate::context::{Batch, Context, ContextParams};
    use crate::model::Model;
    use std::sync::Arc;

    fn ctx(model: &Arc<Model>, n_ctx: u32) -> Context {
        let p = ContextParams {
            n_ctx,
            n_threads: 1,
            n_threads_batch: 1,
            ..Default::default()
        };
        Context::new(Arc::clone(model), p).unwrap()
    }

    #[test]
    fn restored_context_continues_bit_exactly() {
        let Some(path) = crate::testdata::path("models/tiny-spm-i2_s.gguf") else {
            return;
        };
        let model = Arc::new(Model::load(path).unwrap());
        let mut a = ctx(&model, 64);
        a.decode(&Batch::get_one(&[1, 450, 4996, 17354])).unwrap();
        let state = a.state_bytes().unwrap();
        assert_eq!(state.len(), a.state_size());

        let mut b = ctx(&model, 128);
        assert_eq!(b.state_load(&state).unwrap(), state.len());
        assert_eq!(a.logits(), b.logits());
        assert_eq!(a.logits_ith(-1).unwrap(), b.logits_ith(3).unwrap());
        a.decode(&Batch::get_one(&[1701])).unwrap();
        b.decode(&Batch::get_one(&[1701])).unwrap();
        assert_eq!(a.logits(), b.logits());

        // Truncated, corrupted and mismatched states are refused and leave b as it was.
        let before = b.logits().to_vec();
        for bad in [&state[..state.len() - 1], &state[..10], b"XXXX\x01\0\0\0"] {
            assert!(b.state_load(bad).is_err());
        }
        let mut small = ctx(&model, 32);
        let mut big_state = {
            let mut c = ctx(&model, 128);
            c.decode(&Batch::get_one(&[5; 40])).unwrap();
            c.state_bytes().unwrap()
        };
        assert!(small
            .state_load(&big_state)
            .unwrap_err()
            .message()
            .contains("only 32"));
        big_state[4] = 9;
        assert!(b.state_load(&big_state).is_err());
        assert_eq!(b.logits(), &before[..]);
    }

    #[test]
    fn session_file_round_trip() {
        let Some(path) = crate::testdata::path("models/tiny-spm-f32.gguf") else {
            return;
        };
        let model = Arc::new(Model::load(path).unwrap());
        let mut a = ctx(&model, 32);
        a.decode(&Batch::get_one(&[1, 2, 3])).unwrap();
        let file = std::env::temp_dir().join(format!("bitnet-session-{}.bin", std::process::id()));
        a.save_session(&file, &[1, 2, 3]).unwrap();
        let mut b = ctx(&model, 32);
        assert_eq!(b.load_session(&file).unwrap(), vec![1, 2, 3]);
        assert_eq!(a.logits(), b.logits());
        std::fs::remove_file(&file).unwrap();
        assert!(b.load_session(&file).is_err());
    }
}
