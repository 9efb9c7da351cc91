//! The cache as state bytes (llama.h `llama_state_*`): cells (position, pending shift,
//! sequences) and their K/V, little-endian. Cells keep their indices, so a restored cache
//! continues bit for bit (the cell index decides the summation lane).

use super::{KvCache, KvCell, MAX_SEQ};
use crate::error::{Error, Result};
use crate::types::{Pos, SeqId};
use half::f16;

/// Little-endian writer for state blobs.
pub(crate) struct StateWriter<'a>(pub &'a mut Vec<u8>);

impl StateWriter<'_> {
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn f16s(&mut self, v: &[f16]) {
        for x in v {
            self.0.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
}

/// Bounds-checked little-endian reader for state blobs; errors name what was being read.
pub(crate) struct StateReader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> StateReader<'a> {
    pub(crate) fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::format(format!(
                "state data: truncated while reading {what} (needs {n} bytes at offset {}, {} left)",
                self.pos,
                self.buf.len() - self.pos
            )));
        };
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }
    /// Checks that exactly `n` bytes are left (the rest of the blob is `what`).
    pub(crate) fn expect_exactly(&self, n: usize, what: &str) -> Result<()> {
        let left = self.buf.len() - self.pos;
        if left < n {
            return Err(Error::format(format!(
                "state data: truncated {what} ({n} bytes needed, {left} left)"
            )));
        }
        if left > n {
            return Err(Error::format(format!(
                "state data: {} bytes after the end of the {what}",
                left - n
            )));
        }
        Ok(())
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(self.u32(what)? as i32)
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn f16s(&mut self, out: &mut [f16], what: &str) -> Result<()> {
        let n = out
            .len()
            .checked_mul(2)
            .ok_or_else(|| Error::format("state data: size overflow"))?;
        let b = self.bytes(n, what)?;
        for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
            *o = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
        }
        Ok(())
    }
}

impl KvCache {
    /// Serialises the whole cache: geometry, every cell up to the last used one (position,
    /// pending shift, sequences) and their K rows and V columns. Cells keep their indices, so a
    /// restored cache continues bit for bit (the cell index decides the summation lane).
    pub(crate) fn write_state(&self, out: &mut Vec<u8>) {
        let n = self.cell_max();
        let mut w = StateWriter(out);
        w.u32(self.store.n_layer() as u32);
        w.u32(self.store.n_embd_kv() as u32);
        w.u32(self.head as u32);
        w.u32(self.has_shift as u32);
        w.u32(n as u32);
        for c in &self.cells[..n] {
            w.i32(c.pos);
            w.i32(c.delta);
            w.u64(c.seqs);
        }
        self.store.write_cells(0..n, &mut w);
    }

    /// Bytes [`KvCache::write_state`] produces.
    pub(crate) fn state_size(&self) -> usize {
        let n = self.cell_max();
        20 + n * 16 + self.store.n_layer() * 2 * n * self.store.n_embd_kv() * 2
    }

    /// Replaces the cache's content with a state written by [`KvCache::write_state`] for a
    /// model of the same geometry and a cache at least as large as its used cells. Every field
    /// is range-checked (positions, pending shifts, sequence ids below `n_seq_max`), and the
    /// KV data must end the buffer exactly, before anything changes: on error the cache is as
    /// it was.
    pub(crate) fn read_state(&mut self, r: &mut StateReader, n_seq_max: usize) -> Result<()> {
        let n_layer = r.u32("KV layer count")? as usize;
        let n_embd_kv = r.u32("KV width")? as usize;
        if n_layer != self.store.n_layer() || n_embd_kv != self.store.n_embd_kv() {
            return Err(Error::invalid_argument(format!(
                "state data: KV cache of {n_layer} layers x {n_embd_kv} does not fit this \
                 model ({} x {})",
                self.store.n_layer(),
                self.store.n_embd_kv()
            )));
        }
        let head = r.u32("KV head")? as usize;
        let has_shift = match r.u32("KV shift flag")? {
            0 => false,
            1 => true,
            v => {
                return Err(Error::format(format!(
                    "state data: KV shift flag is {v} (0 or 1)"
                )))
            }
        };
        let n = r.u32("KV cell count")? as usize;
        if n > self.size {
            return Err(Error::invalid_argument(format!(
                "state data: {n} KV cells do not fit a context of {}",
                self.size
            )));
        }
        // Read into fresh cells first so that bad data leaves the cache as it was.
        let mut cells = vec![KvCell::EMPTY; self.size];
        for (i, c) in cells[..n].iter_mut().enumerate() {
            c.pos = r.i32("KV cell position")?;
            c.delta = r.i32("KV cell shift")?;
            c.seqs = r.u64("KV cell sequences")?;
            check_cell(i, c, n_seq_max)?;
        }
        let need = n_layer * 2 * n * n_embd_kv * 2;
        r.expect_exactly(need, "KV data")?;
        check_finite(&r.buf[r.pos..], "state data")?;
        self.clear();
        self.store.read_cells(0, n, r)?;
        self.used = cells.iter().filter(|c| !c.is_empty()).count();
        self.cells = cells;
        self.head = if head < self.size { head } else { 0 };
        self.has_shift = has_shift;
        Ok(())
    }

    /// Serialises the cells of one sequence (in cell order): count, then each position, then
    /// their K rows and V values (`llama_state_seq_get_data`).
    pub(crate) fn write_seq_state(&self, seq: SeqId, out: &mut Vec<u8>) {
        let idx: Vec<usize> = (0..self.size)
            .filter(|&i| self.cells[i].has_seq(seq))
            .collect();
        let mut w = StateWriter(out);
        w.u32(self.store.n_layer() as u32);
        w.u32(self.store.n_embd_kv() as u32);
        w.u32(idx.len() as u32);
        for &i in &idx {
            w.i32(self.cells[i].pos);
        }
        self.store.write_cells(idx.iter().copied(), &mut w);
    }

    /// Restores a sequence written by [`KvCache::write_seq_state`] as sequence `dst`: its old
    /// cells are dropped, the saved ones go to consecutive free cells (`llama_state_seq_set_data`).
    /// Positions are range-checked and the data must end the buffer exactly; on error (also
    /// when there is no room) the cache is as it was.
    pub(crate) fn read_seq_state(&mut self, dst: SeqId, r: &mut StateReader) -> Result<()> {
        let n_layer = r.u32("KV layer count")? as usize;
        let n_embd_kv = r.u32("KV width")? as usize;
        if n_layer != self.store.n_layer() || n_embd_kv != self.store.n_embd_kv() {
            return Err(Error::invalid_argument(format!(
                "sequence state: KV cache of {n_layer} layers x {n_embd_kv} does not fit this \
                 model ({} x {})",
                self.store.n_layer(),
                self.store.n_embd_kv()
            )));
        }
        let n = r.u32("sequence cell count")? as usize;
        let need = n
            .checked_mul(4 + n_layer * 2 * n_embd_kv * 2)
            .ok_or_else(|| Error::format("sequence state: cell count overflows"))?;
        r.expect_exactly(need, "sequence state")?;
        check_finite(&r.buf[r.pos + 4 * n..], "sequence state")?;
        let mut pos = Vec::with_capacity(n);
        for _ in 0..n {
            let p = r.i32("cell position")?;
            if p < 0 {
                return Err(Error::format(format!(
                    "sequence state: negative position {p}"
                )));
            }
            pos.push(p);
        }
        // seq_rm and find_slot change only the cells and the search head: keep them to undo a
        // failed search (no room), so that failing leaves the cache as it was.
        let (cells, head, used) = (self.cells.clone(), self.head, self.used);
        self.seq_rm(dst, -1, -1);
        if n == 0 {
            return Ok(());
        }
        let first = match self.find_slot(n) {
            Ok(f) => f,
            Err(e) => {
                (self.cells, self.head, self.used) = (cells, head, used);
                return Err(e);
            }
        };
        for (i, &p) in pos.iter().enumerate() {
            self.occupy(first + i, p, &[dst]);
        }
        self.store.read_cells(first, n, r)
    }
}

/// K and V values (little-endian f16) are finite: a NaN or infinity, which no decode writes
/// into the cache of a working model, would poison every later logit of the sequences that
/// attend to it, so a state holding one is refused as corrupt.
fn check_finite(kv: &[u8], what: &str) -> Result<()> {
    match kv
        .chunks_exact(2)
        .position(|c| u16::from_le_bytes([c[0], c[1]]) & 0x7c00 == 0x7c00)
    {
        None => Ok(()),
        Some(i) => Err(Error::format(format!(
            "{what}: KV value {i} is not finite (corrupt data)"
        ))),
    }
}

/// A restored cell's fields are consistent: empty (position -1, no shift, no sequence) or at
/// a position in 0..=INT32_MAX whose pending shift leaves the original position in that range
/// too, in sequences below `n_seq_max`.
fn check_cell(i: usize, c: &KvCell, n_seq_max: usize) -> Result<()> {
    let bad = |why: String| Err(Error::format(format!("state data: KV cell {i}: {why}")));
    if c.pos < 0 {
        if c.pos != -1 || c.seqs != 0 || c.delta != 0 {
            return bad(format!(
                "empty cell with position {}, shift {} and sequence mask {:#x}",
                c.pos, c.delta, c.seqs
            ));
        }
        return Ok(());
    }
    if c.seqs == 0 {
        return bad(format!("position {} in no sequence", c.pos));
    }
    let original = c.pos as i64 - c.delta as i64;
    if !(0..=Pos::MAX as i64).contains(&original) {
        return bad(format!(
            "position {} with pending shift {} (from position {original})",
            c.pos, c.delta
        ));
    }
    if n_seq_max < MAX_SEQ && c.seqs >> n_seq_max != 0 {
        let s = 63 - c.seqs.leading_zeros();
        return Err(Error::invalid_argument(format!(
            "state data: KV cell {i} holds sequence {s}; this context has n_seq_max {n_seq_max}"
        )));
    }
    Ok(())
}
