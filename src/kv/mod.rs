//! The KV cache: `size` cells, each with a position and a set of sequence ids (this file), and
//! their K and V values in a storage layout only this module knows ([`store`]: per layer F16 K
//! rows and V kept transposed, as llama.cpp's default non flash-attention cache), saved and
//! restored as state bytes ([`state`]).
//!
//! Slot finding, sequence operations and the K-shift follow llama.cpp, because which cell a token
//! lands in decides its lane in the attention sums, and so the last bits of the logits. The model
//! writes a token's K/V with [`KvCache::store`] and reads them back through [`KvLayer`] (rows and
//! their strides); the K-shift hands each moved cell's K rows to a rotation the caller supplies
//! (RoPE is the model's business).

mod state;
mod store;

pub(crate) use state::{StateReader, StateWriter};
pub(crate) use store::KvLayer;

use crate::error::{Error, Result};
use crate::types::{Pos, SeqId};
use store::KvStore;

/// Sequence ids a cell can carry: 0..MAX_SEQ.
pub(crate) const MAX_SEQ: usize = 64;

/// Cells attended to are padded to a multiple of this (llama.cpp's KV padding without flash
/// attention); it changes the summation lanes, so it matters for bits.
pub(crate) const KV_PAD: usize = 32;

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

/// The cache of one context.
pub struct KvCache {
    size: usize,
    head: usize,
    used: usize,
    has_shift: bool,
    cells: Vec<KvCell>,
    store: KvStore,
    /// Sequence ids this cache may hold: `0..n_seq_max` (the context's `n_seq_max`; MAX_SEQ
    /// until the context says). `seq_cp` into an id outside it does nothing.
    n_seq_max: usize,
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
        let store = KvStore::new(size, n_layer, n_embd_kv)?;
        let mut cells = Vec::new();
        cells.try_reserve_exact(size).map_err(|_| {
            Error::invalid_argument(format!("KV cache of {size} cells cannot be allocated"))
        })?;
        cells.resize(size, KvCell::EMPTY);
        Ok(KvCache {
            size,
            head: 0,
            used: 0,
            has_shift: false,
            cells,
            store,
            n_seq_max: MAX_SEQ,
        })
    }

    /// Limits the sequence ids this cache holds to `0..n` (the context's `n_seq_max`).
    pub(crate) fn limit_seqs(&mut self, n: usize) {
        self.n_seq_max = n.min(MAX_SEQ);
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
    /// Width of one cell's K (and V) in one layer.
    pub fn n_embd_kv(&self) -> usize {
        self.store.n_embd_kv()
    }

    /// Stores one token's K (after RoPE) and V of layer `il` in `cell`, rounded to F16.
    pub(crate) fn store(&mut self, il: usize, cell: usize, k: &[f32], v: &[f32]) {
        self.store.store(il, cell, k, v);
    }

    /// The K and V of layer `il`, for attention.
    pub(crate) fn layer(&self, il: usize) -> KvLayer<'_> {
        self.store.layer(il)
    }

    /// Empties every cell and zeroes the data (`llama_kv_cache_clear`).
    pub fn clear(&mut self) {
        self.cells.fill(KvCell::EMPTY);
        self.head = 0;
        self.used = 0;
        self.has_shift = false;
        self.store.clear();
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
        // An id the context does not have would put a cell in a sequence nothing can address
        // (found by the `positions` fuzz target); llama.cpp asserts on it, here it is a no-op.
        let ids = 0..self.n_seq_max as SeqId;
        if src == dst || !ids.contains(&dst) || !ids.contains(&src) {
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

    /// The K-shift: for every cell whose position moved since its K was stored, calls
    /// `rotate(delta, rows)` once, `rows` being that cell's F16 K row of every layer
    /// (llama.cpp's K-shift graph re-rotates them with RoPE by the accumulated delta, on the F16
    /// cache view). Clears the pending shift.
    pub(crate) fn shift_k(&mut self, mut rotate: impl FnMut(Pos, &mut store::CellK<'_>)) {
        if !self.has_shift {
            return;
        }
        for i in 0..self.size {
            let delta = self.cells[i].delta;
            self.cells[i].delta = 0;
            if delta == 0 || self.cells[i].is_empty() {
                continue;
            }
            rotate(delta, &mut self.store.cell_k(i));
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

#[cfg(test)]
mod tests {
    #[test]
    fn seq_cp_outside_n_seq_max_does_nothing() {
        let mut kv = KvCache::new(8, 1, 4).unwrap();
        kv.limit_seqs(3);
        kv.cells[0] = KvCell {
            pos: 0,
            ..KvCell::EMPTY
        };
        kv.cells[0].add_seq(0);
        kv.used = 1;
        kv.seq_cp(0, 3, -1, -1);
        kv.seq_cp(3, 1, -1, -1);
        assert!(!kv.cells[0].has_seq(3) && !kv.cells[0].has_seq(1));
        kv.seq_cp(0, 2, -1, -1);
        assert!(kv.cells[0].has_seq(2));
    }

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
