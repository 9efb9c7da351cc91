//! The merge loops' priority queue: a min-heap of `u64` keys with eight children per node.
//!
//! A merge loop over one long word (50 MB of text without a space is one word) queues about
//! one key per byte. With a binary heap of 16- or 24-byte entries every pop walked some 25
//! levels, most of them cache misses, and that made tokenizing long words super-linear in
//! practice. Here a key is 8 bytes (priority in the high half, symbol index in the low half)
//! and a node's eight children share one 64-byte line, so a pop touches about a third as many
//! lines. The order is the keys' order exactly: the same merges in the same order.

const D: usize = 8;

/// Children of node `i` are `D*i + 1 ..= D*i + D`.
#[derive(Default)]
pub(super) struct MinQueue {
    keys: Vec<u64>,
}

impl MinQueue {
    pub(super) fn clear(&mut self) {
        self.keys.clear();
    }

    /// Drops the buffer when it grew past `bytes` (a long word should not pin its memory).
    pub(super) fn shrink_to(&mut self, bytes: usize) {
        if self.keys.capacity() * 8 > bytes {
            self.keys = Vec::new();
        }
    }

    pub(super) fn reserve(&mut self, n: usize) {
        self.keys.reserve(n);
    }

    #[inline]
    pub(super) fn push(&mut self, key: u64) {
        let mut i = self.keys.len();
        self.keys.push(key);
        while i > 0 {
            let parent = (i - 1) / D;
            let p = self.keys[parent];
            if p <= key {
                break;
            }
            self.keys[i] = p;
            i = parent;
        }
        self.keys[i] = key;
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<u64> {
        let last = self.keys.pop()?;
        let n = self.keys.len();
        if n == 0 {
            return Some(last);
        }
        let top = self.keys[0];
        // Sift `last` down from the root.
        let mut i = 0;
        loop {
            let first = D * i + 1;
            if first >= n {
                break;
            }
            let end = (first + D).min(n);
            let mut c = first;
            let mut min = self.keys[first];
            for (j, &k) in self.keys[first + 1..end].iter().enumerate() {
                if k < min {
                    min = k;
                    c = first + 1 + j;
                }
            }
            if last <= min {
                break;
            }
            self.keys[i] = min;
            i = c;
        }
        self.keys[i] = last;
        Some(top)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_key_order() {
        let mut q = MinQueue::default();
        let mut x = 12345u64;
        let mut all = Vec::new();
        for round in 0..3 {
            for _ in 0..1000 + round * 77 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = x >> 40; // duplicates too
                q.push(k);
                all.push(k);
            }
            all.sort_unstable_by(|a, b| b.cmp(a));
            // Pop half, interleaving pushes.
            for _ in 0..all.len() / 2 {
                assert_eq!(q.pop(), all.pop());
            }
        }
        while let Some(k) = all.pop() {
            assert_eq!(q.pop(), Some(k));
        }
        assert_eq!(q.pop(), None);
    }
}
