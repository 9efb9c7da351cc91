//! The storage layout of the cache, known to this file only: per layer an F16 K store with one
//! row of `n_embd_kv` per cell (K after RoPE) and an F16 V store kept transposed, one row of
//! `size` cells per V dimension, as llama.cpp's default (non flash-attention) cache. Attention
//! reads both through [`KvLayer`]: rows and the stride between them.

use crate::error::Result;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// K and V of one layer.
struct LayerStore {
    /// `[size][n_embd_kv]`: row c is the K (after RoPE) of cell c.
    k: Vec<f16>,
    /// `[n_embd_kv][size]`: V transposed, row d holds dimension d of every cell.
    v: Vec<f16>,
}

/// Every layer's K and V.
pub(super) struct KvStore {
    size: usize,
    n_embd_kv: usize,
    layers: Vec<LayerStore>,
}

/// One layer's cache as attention reads it.
///
/// K: cell `c`'s K is `k[c * k_stride..][..n_embd_kv]`, KV head `h` at offset `h * head_dim`.
/// V: dimension `d` of every cell is the row `v[d * v_stride..][..size]` (cell-contiguous).
#[derive(Clone, Copy)]
pub(crate) struct KvLayer<'a> {
    pub k: &'a [f16],
    /// Elements between the K rows of consecutive cells.
    pub k_stride: usize,
    pub v: &'a [f16],
    /// Elements between consecutive V rows (one row per V dimension).
    pub v_stride: usize,
}

impl<'a> KvLayer<'a> {
    /// K rows from cell `first` on, starting at column `col` (a KV head's offset); rows are
    /// [`KvLayer::k_stride`] apart.
    pub(crate) fn k_rows(&self, first: usize, col: usize) -> &'a [f16] {
        &self.k[first * self.k_stride + col..]
    }
    /// V rows from dimension `d` on (row `d` holds dimension `d` of every cell); rows are
    /// [`KvLayer::v_stride`] apart.
    pub(crate) fn v_rows(&self, d: usize) -> &'a [f16] {
        &self.v[d * self.v_stride..]
    }
}

/// The K rows of one cell in every layer, for the K-shift.
pub(crate) struct CellK<'a> {
    layers: &'a mut [LayerStore],
    range: std::ops::Range<usize>,
}

impl CellK<'_> {
    /// Calls `f` on the cell's F16 K row of each layer, in layer order.
    pub(crate) fn for_each_row(&mut self, mut f: impl FnMut(&mut [f16])) {
        for l in self.layers.iter_mut() {
            f(&mut l.k[self.range.clone()]);
        }
    }
}

/// `n` zeroed f16 values, or `None` if the allocation fails.
fn zeroed(n: usize) -> Option<Vec<f16>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).ok()?;
    v.resize(n, f16::ZERO);
    Some(v)
}

impl KvStore {
    /// Zero-filled (llama.cpp clears the buffer; padded cells must hold finite values). Fails
    /// with a clear error, instead of aborting, when the memory cannot be had.
    pub(super) fn new(size: usize, n_layer: usize, n_embd_kv: usize) -> Result<KvStore> {
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
            layers.push(LayerStore {
                k: zeroed(n).ok_or_else(oom)?,
                v: zeroed(n).ok_or_else(oom)?,
            });
        }
        Ok(KvStore {
            size,
            n_embd_kv,
            layers,
        })
    }

    pub(super) fn n_embd_kv(&self) -> usize {
        self.n_embd_kv
    }
    pub(super) fn n_layer(&self) -> usize {
        self.layers.len()
    }

    pub(super) fn clear(&mut self) {
        for l in &mut self.layers {
            l.k.fill(f16::ZERO);
            l.v.fill(f16::ZERO);
        }
    }

    /// Stores one token's K and V (`n_embd_kv` values each) of layer `il` in `cell`, rounded
    /// to F16 (round to nearest even, as ggml's cpy to an F16 cache).
    pub(super) fn store(&mut self, il: usize, cell: usize, k: &[f32], v: &[f32]) {
        let (nkv, size) = (self.n_embd_kv, self.size);
        let l = &mut self.layers[il];
        l.k[cell * nkv..(cell + 1) * nkv].convert_from_f32_slice(&k[..nkv]);
        for (d, &x) in v[..nkv].iter().enumerate() {
            l.v[d * size + cell] = f16::from_f32(x);
        }
    }

    pub(super) fn layer(&self, il: usize) -> KvLayer<'_> {
        let l = &self.layers[il];
        KvLayer {
            k: &l.k,
            k_stride: self.n_embd_kv,
            v: &l.v,
            v_stride: self.size,
        }
    }

    pub(super) fn cell_k(&mut self, cell: usize) -> CellK<'_> {
        let nkv = self.n_embd_kv;
        CellK {
            layers: &mut self.layers,
            range: cell * nkv..(cell + 1) * nkv,
        }
    }

    /// Every layer's K rows and V values of the cells `cells` yields, in state order: per layer
    /// the K rows (cell order), then per V dimension the cells' values.
    pub(super) fn write_cells(
        &self,
        cells: impl Iterator<Item = usize> + Clone,
        w: &mut super::StateWriter,
    ) {
        let nkv = self.n_embd_kv;
        for l in &self.layers {
            for c in cells.clone() {
                w.f16s(&l.k[c * nkv..(c + 1) * nkv]);
            }
            for d in 0..nkv {
                for c in cells.clone() {
                    w.f16s(&l.v[d * self.size + c..d * self.size + c + 1]);
                }
            }
        }
    }

    /// The K rows and V values of cells `first..first + n` of every layer from `r`, written by
    /// [`KvStore::write_cells`] for consecutive cells.
    pub(super) fn read_cells(
        &mut self,
        first: usize,
        n: usize,
        r: &mut super::StateReader,
    ) -> Result<()> {
        let (nkv, size) = (self.n_embd_kv, self.size);
        for l in &mut self.layers {
            r.f16s(&mut l.k[first * nkv..(first + n) * nkv], "K")?;
            for d in 0..nkv {
                r.f16s(&mut l.v[d * size + first..d * size + first + n], "V")?;
            }
        }
        Ok(())
    }
}
