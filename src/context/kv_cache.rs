//! The KV cache: `size` cells, each with a position and a set of sequence ids, and per layer an
//! F16 K store (one row of `n_embd_kv` per cell, K after RoPE) and an F16 V store kept transposed
//! (one row of `size` per V dimension), as llama.cpp's default (non flash-attention) cache.
//! Slot finding, sequence operations and the K-shift follow llama.cpp, because which cell a token
//! lands in decides its lane in the attention sums, and so the last bits of the logits.

use super::batch::{Pos, SeqId};
use crate::error::{Error, Result};
use crate::model::ops;
use half::f16;

/// Sequence ids a cell can carry: 0..MAX_SEQ.
pub const MAX_SEQ: usize = 64;

/// Cells attended to are padded to a multiple of this (llama.cpp's KV padding without flash
/// attention); it changes the summation lanes, so it matters for bits.
pub const KV_PAD: usize = 32;

/// One cache cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvCell {
    /// Position of the token stored here; -1 when empty.
    pub pos: Pos,
    /// Position shift accumulated since the last K-shift (seq_add / seq_div).
    pub delta: Pos,
    /// Bit s set = the cell belongs to sequence s.
    seqs: u64,
}

impl KvCell {
    const EMPTY: KvCell = KvCell {
        pos: -1,
        delta: 0,
        seqs: 0,
    };
    pub fn is_empty(&self) -> bool {
        self.pos < 0
    }
    pub fn has_seq(&self, s: SeqId) -> bool {
        (0..MAX_SEQ as SeqId).contains(&s) && self.seqs & (1u64 << s) != 0
    }
    fn add_seq(&mut self, s: SeqId) {
        self.seqs |= 1u64 << s;
    }
    fn remove_seq(&mut self, s: SeqId) {
        self.seqs &= !(1u64 << s);
    }
    fn no_seqs(&self) -> bool {
        self.seqs == 0
    }
}

/// K and V of one layer.
pub(crate) struct LayerKv {
    /// `[size][n_embd_kv]`: row c is the K (after RoPE) of cell c.
    pub k: Vec<f16>,
    /// `[n_embd_kv][size]`: V transposed, row d holds dimension d of every cell.
    pub v: Vec<f16>,
}

/// The cache of one context.
pub struct KvCache {
    size: usize,
    n_embd_kv: usize,
    head: usize,
    used: usize,
    has_shift: bool,
    cells: Vec<KvCell>,
    pub(crate) layers: Vec<LayerKv>,
}

/// `n` zeroed f16 values, or `None` if the allocation fails.
fn zeroed(n: usize) -> Option<Vec<f16>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, f16::ZERO);
    Some(v)
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

/// Normalises llama.cpp's range arguments: p0 < 0 means 0, p1 < 0 means "to the end" (which
/// includes a cell at INT32_MAX, hence the wider type).
fn range(p0: Pos, p1: Pos) -> (i64, i64) {
    (p0.max(0) as i64, if p1 < 0 { i64::MAX } else { p1 as i64 })
}

/// `pos` is in the half-open range from [`range`].
fn in_range(pos: Pos, (p0, p1): (i64, i64)) -> bool {
    (p0..p1).contains(&(pos as i64))
}

impl KvCache {
    /// An empty cache of `size` cells for `n_layer` layers of width `n_embd_kv`, zero-filled
    /// (llama.cpp clears the buffer; padded cells must hold finite values). Fails with a clear
    /// error, instead of aborting, when the memory cannot be had.
    pub fn new(size: usize, n_layer: usize, n_embd_kv: usize) -> Result<KvCache> {
        let bytes = size
            .checked_mul(n_embd_kv)
            .and_then(|n| n.checked_mul(4 * n_layer));
        let oom = || {
            crate::alloc::SizedBy {
                param: "n_ctx",
                value: size,
            }
            .error::<u8>(
                &format!("the KV cache ({n_layer} layers x {n_embd_kv} F16 K and V per cell)"),
                bytes,
            )
        };
        let n = size.checked_mul(n_embd_kv).ok_or_else(oom)?;
        let mut layers = Vec::new();
        layers.try_reserve_exact(n_layer).map_err(|_| oom())?;
        for _ in 0..n_layer {
            layers.push(LayerKv {
                k: zeroed(n).ok_or_else(oom)?,
                v: zeroed(n).ok_or_else(oom)?,
            });
        }
        let mut cells = Vec::new();
        cells.try_reserve_exact(size).map_err(|_| oom())?;
        cells.resize(size, KvCell::EMPTY);
        Ok(KvCache {
            size,
            n_embd_kv,
            head: 0,
            used: 0,
            has_shift: false,
            cells,
            layers,
        })
    }

    /// Number of cells (the context size).
    pub fn size(&self) -> usize {
        self.size
    }
    /// Number of non-empty cells.
    pub fn used(&self) -> usize {
        self.used
    }
    pub fn cells(&self) -> &[KvCell] {
        &self.cells
    }
    pub fn n_embd_kv(&self) -> usize {
        self.n_embd_kv
    }

    /// Empties every cell and zeroes the data (`llama_kv_cache_clear`).
    pub fn clear(&mut self) {
        self.cells.fill(KvCell::EMPTY);
        self.head = 0;
        self.used = 0;
        self.has_shift = false;
        for l in &mut self.layers {
            l.k.fill(f16::ZERO);
            l.v.fill(f16::ZERO);
        }
    }

    /// Empties cell `i`. It counted as used if it still has a position or a sequence: callers
    /// clear one of the two (seq_rm the sequences, seq_add the position) before freeing.
    fn free_cell(&mut self, i: usize, new_head: &mut usize) {
        let c = self.cells[i];
        if c.pos >= 0 || c.seqs != 0 {
            self.used -= 1;
        }
        self.cells[i] = KvCell::EMPTY;
        if *new_head == self.size {
            *new_head = i;
        }
    }

    /// Removes sequence `seq` (any sequence if `seq < 0`) from the cells with positions in
    /// `[p0, p1)`; cells left without sequences become empty (`llama_kv_cache_seq_rm`).
    pub fn seq_rm(&mut self, seq: SeqId, p0: Pos, p1: Pos) -> bool {
        let r = range(p0, p1);
        let mut new_head = self.size;
        for i in 0..self.size {
            let c = self.cells[i];
            if !in_range(c.pos, r) {
                continue;
            }
            if seq < 0 {
                self.cells[i].seqs = 0;
            } else if c.has_seq(seq) {
                self.cells[i].remove_seq(seq);
            } else {
                continue;
            }
            if self.cells[i].no_seqs() {
                self.free_cell(i, &mut new_head);
            }
        }
        // If a slot was freed, start the next search there.
        if new_head != self.size && new_head < self.head {
            self.head = new_head;
        }
        true
    }

    /// Adds sequence `dst` to the cells of `src` with positions in `[p0, p1)`
    /// (`llama_kv_cache_seq_cp`).
    pub fn seq_cp(&mut self, src: SeqId, dst: SeqId, p0: Pos, p1: Pos) {
        if src == dst || !(0..MAX_SEQ as SeqId).contains(&dst) {
            return;
        }
        let r = range(p0, p1);
        self.head = 0;
        for c in &mut self.cells {
            if c.has_seq(src) && in_range(c.pos, r) {
                c.add_seq(dst);
            }
        }
    }

    /// Drops every sequence but `seq` (`llama_kv_cache_seq_keep`).
    pub fn seq_keep(&mut self, seq: SeqId) {
        let mut new_head = self.size;
        for i in 0..self.size {
            if self.cells[i].has_seq(seq) {
                self.cells[i].seqs = 1u64 << seq;
            } else {
                self.free_cell(i, &mut new_head);
            }
        }
        if new_head != self.size && new_head < self.head {
            self.head = new_head;
        }
    }

    /// Shifts the positions of `seq`'s cells in `[p0, p1)` by `delta` (`llama_kv_cache_seq_add`).
    /// Cells pushed below position 0 are freed. The cached K of the moved cells is re-rotated
    /// by the next `decode` (the K-shift). A shift that would move a cell past INT32_MAX is an
    /// error, and then no cell moves.
    pub fn seq_add(&mut self, seq: SeqId, p0: Pos, p1: Pos, delta: Pos) -> Result<()> {
        if delta == 0 {
            return Ok(());
        }
        let r = range(p0, p1);
        let moved = |c: &KvCell| c.has_seq(seq) && in_range(c.pos, r);
        if let Some(c) = self
            .cells
            .iter()
            .find(|c| moved(c) && c.pos as i64 + delta as i64 > Pos::MAX as i64)
        {
            return Err(Error::invalid_argument(format!(
                "seq_add: sequence {seq}'s cell at position {} moved by {delta} would pass \
                 INT32_MAX; no cell was moved",
                c.pos
            )));
        }
        let mut new_head = self.size;
        for i in 0..self.size {
            let c = self.cells[i];
            if !moved(&c) {
                continue;
            }
            self.has_shift = true;
            let pos = c.pos as i64 + delta as i64;
            if pos < 0 {
                self.cells[i].pos = -1;
                self.free_cell(i, &mut new_head);
            } else {
                // pos - delta is the position the K was rotated for, in 0..=INT32_MAX.
                self.cells[i].pos = pos as Pos;
                self.cells[i].delta = (c.delta as i64 + delta as i64) as Pos;
            }
        }
        // llama.cpp: start the next search at the freed cell, else at the beginning.
        self.head = if new_head != self.size { new_head } else { 0 };
        Ok(())
    }

    /// Divides the positions of `seq`'s cells in `[p0, p1)` by `d` (`llama_kv_cache_seq_div`).
    /// `d = 1` changes nothing; `d <= 0` is an error (and changes nothing).
    pub fn seq_div(&mut self, seq: SeqId, p0: Pos, p1: Pos, d: i32) -> Result<()> {
        if d <= 0 {
            return Err(Error::invalid_argument(format!(
                "seq_div: divisor {d} must be positive"
            )));
        }
        if d == 1 {
            return Ok(());
        }
        let r = range(p0, p1);
        for c in &mut self.cells {
            if c.has_seq(seq) && in_range(c.pos, r) {
                self.has_shift = true;
                let old = c.pos;
                c.pos /= d;
                c.delta += c.pos - old;
            }
        }
        Ok(())
    }

    /// Smallest position of `seq`, or -1 if it has no cells.
    pub fn seq_pos_min(&self, seq: SeqId) -> Pos {
        self.cells
            .iter()
            .filter(|c| c.has_seq(seq))
            .map(|c| c.pos)
            .min()
            .unwrap_or(-1)
    }

    /// Largest position of `seq`, or -1 if it has no cells.
    pub fn seq_pos_max(&self, seq: SeqId) -> Pos {
        self.cells
            .iter()
            .filter(|c| c.has_seq(seq))
            .map(|c| c.pos)
            .max()
            .unwrap_or(-1)
    }

    /// True when a seq_add/seq_div is waiting for its K-shift.
    pub fn has_shift(&self) -> bool {
        self.has_shift
    }

    /// Re-rotates the cached K of every cell whose position moved since it was stored: NEOX RoPE
    /// by the accumulated delta, on the F16 values (llama.cpp's K-shift graph, `rope_ext_inplace`
    /// on the F16 cache view). `angles(delta, cos, sin)` fills the rotation for one delta.
    pub(crate) fn apply_k_shift(
        &mut self,
        head_dim: usize,
        cos: &mut [f32],
        sin: &mut [f32],
        angles: impl Fn(Pos, &mut [f32], &mut [f32]),
    ) {
        if !self.has_shift {
            return;
        }
        let n_embd_kv = self.n_embd_kv;
        for i in 0..self.size {
            let delta = self.cells[i].delta;
            self.cells[i].delta = 0;
            if delta == 0 || self.cells[i].is_empty() {
                continue;
            }
            angles(delta, cos, sin);
            for layer in &mut self.layers {
                let row = &mut layer.k[i * n_embd_kv..(i + 1) * n_embd_kv];
                for head in row.chunks_exact_mut(head_dim) {
                    ops::rope_neox_f16(head, cos, sin);
                }
            }
        }
        self.has_shift = false;
    }

    /// Finds `n` consecutive empty cells starting the search at the head, wrapping once, as
    /// `llama_kv_cache_find_slot`. Returns the first cell, or a ContextFull error.
    pub(crate) fn find_slot(&mut self, n: usize) -> Result<usize> {
        let full = || {
            Error::new(
                crate::error::ErrorKind::ContextFull,
                format!(
                    "KV cache full: no room for {n} token(s) ({} of {} cells used)",
                    self.used, self.size
                ),
            )
        };
        if n > self.size {
            return Err(full());
        }
        // llama_decode's heuristic: with enough unused cells before the head, start from 0.
        if self.head > self.used + 2 * n {
            self.head = 0;
        }
        let mut tested = 0usize;
        loop {
            if self.head + n > self.size {
                tested += self.size - self.head;
                self.head = 0;
                if tested >= self.size {
                    return Err(full());
                }
                continue;
            }
            match (0..n).find(|&i| !self.cells[self.head + i].is_empty()) {
                None => return Ok(self.head),
                Some(i) => {
                    self.head += i + 1;
                    tested += i + 1;
                }
            }
            if tested >= self.size {
                return Err(full());
            }
        }
    }

    /// Occupies cell `i` with a token at `pos` in the given sequences.
    pub(crate) fn occupy(&mut self, i: usize, pos: Pos, seqs: &[SeqId]) {
        if self.cells[i].is_empty() {
            self.used += 1;
        }
        self.cells[i].pos = pos;
        self.cells[i].delta = 0;
        self.cells[i].seqs = 0;
        for &s in seqs {
            self.cells[i].add_seq(s);
        }
    }

    /// Empties cells `first..first + n` again (undoing [`KvCache::occupy`] for a failed decode).
    pub(crate) fn release(&mut self, first: usize, n: usize) {
        let mut new_head = self.size;
        for i in first..(first + n).min(self.size) {
            self.free_cell(i, &mut new_head);
        }
        if new_head != self.size && new_head < self.head {
            self.head = new_head;
        }
    }

    /// After a ubatch of `n` tokens was stored at the head: move the head past it.
    pub(crate) fn advance_head(&mut self, n: usize) {
        self.head += n;
        if self.head >= self.size {
            self.head = 0;
        }
    }

    /// One past the last non-empty cell.
    pub fn cell_max(&self) -> usize {
        self.cells
            .iter()
            .rposition(|c| !c.is_empty())
            .map_or(0, |i| i + 1)
    }

    /// Number of cells attention runs over: the used range padded to [`KV_PAD`].
    pub(crate) fn n_kv(&self) -> usize {
        let padded = self.cell_max().div_ceil(KV_PAD) * KV_PAD;
        self.size.min(KV_PAD.max(padded))
    }

    /// Fills `mask[t*n_kv + j]` with 0 where token t (position `pos[t]`, first sequence
    /// `seq[t]`) may attend cell j, and -inf elsewhere (llama.cpp's KQ mask: the cell holds the
    /// token's sequence at a position not after the token's).
    pub(crate) fn build_mask(&self, pos: &[Pos], seq: &[SeqId], n_kv: usize, mask: &mut [f32]) {
        for (t, (&p, &s)) in pos.iter().zip(seq).enumerate() {
            let row = &mut mask[t * n_kv..(t + 1) * n_kv];
            for (j, m) in row.iter_mut().enumerate() {
                let c = &self.cells[j];
                *m = if c.has_seq(s) && c.pos <= p {
                    0.0
                } else {
                    f32::NEG_INFINITY
                };
            }
        }
    }
}

/// Little-endian writer for state blobs.
pub(crate) struct StateWriter<'a>(pub &'a mut Vec<u8>);

impl StateWriter<'_> {
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f16s(&mut self, v: &[f16]) {
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
    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
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
    pub fn expect_exactly(&self, n: usize, what: &str) -> Result<()> {
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
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(self.u32(what)? as i32)
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn f16s(&mut self, out: &mut [f16], what: &str) -> Result<()> {
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
        w.u32(self.layers.len() as u32);
        w.u32(self.n_embd_kv as u32);
        w.u32(self.head as u32);
        w.u32(self.has_shift as u32);
        w.u32(n as u32);
        for c in &self.cells[..n] {
            w.i32(c.pos);
            w.i32(c.delta);
            w.u64(c.seqs);
        }
        for l in &self.layers {
            w.f16s(&l.k[..n * self.n_embd_kv]);
            for d in 0..self.n_embd_kv {
                w.f16s(&l.v[d * self.size..d * self.size + n]);
            }
        }
    }

    /// Bytes [`KvCache::write_state`] produces.
    pub(crate) fn state_size(&self) -> usize {
        let n = self.cell_max();
        20 + n * 16 + self.layers.len() * 2 * n * self.n_embd_kv * 2
    }

    /// Replaces the cache's content with a state written by [`KvCache::write_state`] for a
    /// model of the same geometry and a cache at least as large as its used cells. Every field
    /// is range-checked (positions, pending shifts, sequence ids below `n_seq_max`), and the
    /// KV data must end the buffer exactly, before anything changes: on error the cache is as
    /// it was.
    pub(crate) fn read_state(&mut self, r: &mut StateReader, n_seq_max: usize) -> Result<()> {
        let n_layer = r.u32("KV layer count")? as usize;
        let n_embd_kv = r.u32("KV width")? as usize;
        if n_layer != self.layers.len() || n_embd_kv != self.n_embd_kv {
            return Err(Error::invalid_argument(format!(
                "state data: KV cache of {n_layer} layers x {n_embd_kv} does not fit this \
                 model ({} x {})",
                self.layers.len(),
                self.n_embd_kv
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
        self.clear();
        for l in &mut self.layers {
            r.f16s(&mut l.k[..n * n_embd_kv], "K")?;
            for d in 0..n_embd_kv {
                r.f16s(&mut l.v[d * self.size..d * self.size + n], "V")?;
            }
        }
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
        w.u32(self.layers.len() as u32);
        w.u32(self.n_embd_kv as u32);
        w.u32(idx.len() as u32);
        for &i in &idx {
            w.i32(self.cells[i].pos);
        }
        for l in &self.layers {
            for &i in &idx {
                w.f16s(&l.k[i * self.n_embd_kv..(i + 1) * self.n_embd_kv]);
            }
            for d in 0..self.n_embd_kv {
                for &i in &idx {
                    w.f16s(&l.v[d * self.size + i..d * self.size + i + 1]);
                }
            }
        }
    }

    /// Restores a sequence written by [`KvCache::write_seq_state`] as sequence `dst`: its old
    /// cells are dropped, the saved ones go to consecutive free cells (`llama_state_seq_set_data`).
    /// Positions are range-checked and the data must end the buffer exactly; on error (also
    /// when there is no room) the cache is as it was.
    pub(crate) fn read_seq_state(&mut self, dst: SeqId, r: &mut StateReader) -> Result<()> {
        let n_layer = r.u32("KV layer count")? as usize;
        let n_embd_kv = r.u32("KV width")? as usize;
        if n_layer != self.layers.len() || n_embd_kv != self.n_embd_kv {
            return Err(Error::invalid_argument(format!(
                "sequence state: KV cache of {n_layer} layers x {n_embd_kv} does not fit this \
                 model ({} x {})",
                self.layers.len(),
                self.n_embd_kv
            )));
        }
        let n = r.u32("sequence cell count")? as usize;
        let need = n
            .checked_mul(4 + n_layer * 2 * n_embd_kv * 2)
            .ok_or_else(|| Error::format("sequence state: cell count overflows"))?;
        r.expect_exactly(need, "sequence state")?;
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
        let size = self.size;
        for l in &mut self.layers {
            r.f16s(&mut l.k[first * n_embd_kv..(first + n) * n_embd_kv], "K")?;
            for d in 0..n_embd_kv {
                r.f16s(&mut l.v[d * size + first..d * size + first + n], "V")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(n: usize) -> KvCache {
        let mut kv = KvCache::new(64, 1, 4).unwrap();
        let at = kv.find_slot(n).unwrap();
        for i in 0..n {
            kv.occupy(at + i, i as Pos, &[0]);
        }
        kv.advance_head(n);
        kv
    }

    #[test]
    fn slots_fill_in_order_and_report_full() {
        let mut kv = filled(40);
        assert_eq!(kv.used(), 40);
        assert_eq!(kv.n_kv(), 64);
        assert_eq!(kv.find_slot(24).unwrap(), 40);
        let e = kv.find_slot(25).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::ContextFull);
        assert!(kv.find_slot(65).is_err());
    }

    #[test]
    fn sequence_operations() {
        let mut kv = filled(10);
        assert_eq!((kv.seq_pos_min(0), kv.seq_pos_max(0)), (0, 9));
        kv.seq_cp(0, 1, 0, 5);
        assert_eq!(kv.seq_pos_max(1), 4);
        kv.seq_rm(0, 5, -1);
        assert_eq!(kv.used(), 5);
        assert_eq!(kv.seq_pos_max(0), 4);
        kv.seq_rm(1, -1, -1);
        assert_eq!(kv.seq_pos_max(1), -1);
        assert_eq!(kv.used(), 5);
        kv.seq_add(0, 2, -1, -2).unwrap();
        assert!(kv.has_shift());
        assert_eq!(kv.seq_pos_max(0), 2);
        // positions 0,1 stay; 2,3,4 -> 0,1,2
        assert_eq!(kv.used(), 5);
        kv.seq_keep(3);
        assert_eq!(kv.used(), 0);
        assert_eq!(kv.n_kv(), 32);
    }

    #[test]
    fn seq_add_below_zero_frees_cells() {
        let mut kv = filled(10);
        kv.seq_add(0, 0, -1, -4).unwrap();
        assert_eq!(kv.used(), 6);
        assert_eq!((kv.seq_pos_min(0), kv.seq_pos_max(0)), (0, 5));
        assert_eq!(kv.cells().iter().filter(|c| !c.is_empty()).count(), 6);
    }

    #[test]
    fn mask_is_causal_per_sequence() {
        let mut kv = KvCache::new(32, 1, 4).unwrap();
        kv.occupy(0, 0, &[0]);
        kv.occupy(1, 0, &[1]);
        kv.occupy(2, 1, &[0]);
        let mut m = vec![0f32; 2 * 32];
        kv.build_mask(&[0, 1], &[0, 0], 32, &mut m);
        assert_eq!(m[0], 0.0);
        assert!(m[1].is_infinite() && m[2].is_infinite());
        assert_eq!((m[32], m[34]), (0.0, 0.0));
        assert!(m[33].is_infinite() && m[35].is_infinite());
    }
}
