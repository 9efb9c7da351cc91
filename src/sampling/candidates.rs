//! The candidate array (`llama_token_data_array`) and the two steps several samplers share:
//! the fork's softmax and its top-k.

use super::stdsort;

/// One candidate token: `llama_token_data` (same field order, `#[repr(C)]` for the C API).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenData {
    pub id: i32,
    pub logit: f32,
    pub p: f32,
}

/// The candidates a chain works on: `llama_token_data_array` with an owned buffer. Samplers
/// truncate by shortening `data` and reorder it in place; `selected` is an index into `data`
/// (-1 = nothing selected yet); `sorted` means "descending by logit", which lets softmax and
/// top-k skip their sort.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenDataArray {
    pub data: Vec<TokenData>,
    pub selected: i64,
    pub sorted: bool,
}

impl TokenDataArray {
    /// What `llama_sampler_sample` builds: one candidate per logit, in id order, `p = 0`,
    /// unsorted, nothing selected.
    pub fn from_logits(logits: &[f32]) -> Self {
        TokenDataArray {
            data: logits
                .iter()
                .enumerate()
                .map(|(i, &logit)| TokenData {
                    id: i as i32,
                    logit,
                    p: 0.0,
                })
                .collect(),
            selected: -1,
            sorted: false,
        }
    }

    /// [`TokenDataArray::from_logits`] into this array, reusing its storage.
    pub fn fill_from_logits(&mut self, logits: &[f32]) {
        self.data.clear();
        self.data
            .extend(logits.iter().enumerate().map(|(i, &logit)| TokenData {
                id: i as i32,
                logit,
                p: 0.0,
            }));
        self.selected = -1;
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The selected candidate, if `selected` is a valid index.
    pub fn selected_token(&self) -> Option<TokenData> {
        usize::try_from(self.selected)
            .ok()
            .and_then(|i| self.data.get(i).copied())
    }
}

/// The order every logit sort of the reference uses: `a.logit > b.logit`.
pub(crate) fn logit_desc(a: &TokenData, b: &TokenData) -> bool {
    a.logit > b.logit
}

/// `std::sort` of the candidates by descending logit (libstdc++'s introsort, so ties land where
/// they land in the reference).
pub(crate) fn sort_desc(data: &mut [TokenData]) {
    stdsort::sort(data, &mut logit_desc);
}

/// The fork's `llama_sampler_softmax_impl`: sort descending unless already sorted, then
/// `p_i = expf(l_i - l_0)` with a float running sum, then `p_i /= sum`. An empty array (an
/// assertion failure in the reference) is left alone; the chain reports the missing selection.
pub(crate) fn softmax(cur: &mut TokenDataArray) {
    if cur.data.is_empty() {
        return;
    }
    if !cur.sorted {
        sort_desc(&mut cur.data);
        cur.sorted = true;
    }
    let max_l = cur.data[0].logit;
    let mut sum = 0.0f32;
    for t in cur.data.iter_mut() {
        let p = (t.logit - max_l).exp();
        t.p = p;
        sum += p;
    }
    for t in cur.data.iter_mut() {
        t.p /= sum;
    }
}

/// C's `int(x)` for a float as x86-64 compiles it (`cvttss2si`): truncation toward zero, and
/// NaN or out-of-range values give `INT_MIN` (the reference relies on this for ±inf logits).
pub(crate) fn float_to_int_x86(x: f32) -> i32 {
    if !(-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// Top-k's 128-bucket histogram constants: buckets over logits in [-10, 10].
const N_BUCKETS: i32 = 128;
const BUCKET_LOW: f32 = -10.0;
const BUCKET_HIGH: f32 = 10.0;
const BUCKET_SCALE: f32 = N_BUCKETS as f32 / (BUCKET_HIGH - BUCKET_LOW);
const BUCKET_INTER: f32 = -BUCKET_LOW * BUCKET_SCALE;

/// The fork's `llama_sampler_top_k_impl`: `k <= 0` means all; `k = min(k, size)`; if unsorted,
/// `std::partial_sort` for k <= 128, else the 128-bucket histogram path (full sort of the
/// buckets above the one holding the k-th logit, partial sort of that bucket); then
/// `sorted = true`, size = k. Does not touch `p`.
pub(crate) fn top_k(cur: &mut TokenDataArray, k: i32) {
    let size = cur.data.len() as i32;
    let k = if k <= 0 { size } else { k.min(size) };
    if !cur.sorted {
        if k <= 128 {
            stdsort::partial_sort(&mut cur.data, k as usize, &mut logit_desc);
        } else {
            bucket_top_k(&mut cur.data, k as usize);
        }
        cur.sorted = true;
    }
    cur.data.truncate(k as usize);
}

/// The histogram path of top-k for k > 128. Leaves the top k, sorted, in `data[..k]`.
fn bucket_top_k(data: &mut [TokenData], k: usize) {
    let mut histo = [0usize; N_BUCKETS as usize];
    let bucket_idx: Vec<usize> = data
        .iter()
        .map(|t| {
            // Float multiply then add (the reference's llama code is built without FMA).
            let ib = float_to_int_x86(BUCKET_SCALE * t.logit + BUCKET_INTER);
            let ib = ib.clamp(0, N_BUCKETS - 1) as usize;
            histo[ib] += 1;
            ib
        })
        .collect();

    // The lowest bucket that, with all above it, holds at least k candidates.
    let mut nhave = 0usize;
    let mut ib = N_BUCKETS as usize - 1;
    loop {
        nhave += histo[ib];
        if nhave >= k || ib == 0 {
            break;
        }
        ib -= 1;
    }

    // Gather buckets top-down, each in input order.
    let mut start = [0usize; N_BUCKETS as usize];
    let mut offset = 0usize;
    for j in (ib..N_BUCKETS as usize).rev() {
        start[j] = offset;
        offset += histo[j];
    }
    let mut tmp = vec![
        TokenData {
            id: 0,
            logit: 0.0,
            p: 0.0
        };
        nhave
    ];
    for (t, &j) in data.iter().zip(&bucket_idx) {
        if j >= ib {
            tmp[start[j]] = *t;
            start[j] += 1;
        }
    }

    let mut ptr = 0usize;
    let mut ndone = 0usize;
    for j in (ib + 1..N_BUCKETS as usize).rev() {
        stdsort::sort(&mut tmp[ptr..ptr + histo[j]], &mut logit_desc);
        ptr += histo[j];
        ndone += histo[j];
    }
    stdsort::partial_sort(&mut tmp[ptr..ptr + histo[ib]], k - ndone, &mut logit_desc);
    data[..k].copy_from_slice(&tmp[..k]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(logits: &[f32]) -> TokenDataArray {
        TokenDataArray::from_logits(logits)
    }

    fn ids(cur: &TokenDataArray) -> Vec<i32> {
        cur.data.iter().map(|t| t.id).collect()
    }

    #[test]
    fn from_logits_is_id_ordered_unsorted_unselected() {
        let cur = arr(&[0.5, -1.0, 2.0]);
        assert_eq!(ids(&cur), vec![0, 1, 2]);
        assert!(cur.data.iter().all(|t| t.p == 0.0));
        assert_eq!(cur.selected, -1);
        assert!(!cur.sorted);
        assert_eq!(cur.selected_token(), None);
    }

    #[test]
    fn softmax_sorts_and_uses_float_expf_and_float_sum() {
        let logits = [1.0f32, 3.0, 2.0, 0.0];
        let mut cur = arr(&logits);
        softmax(&mut cur);
        assert!(cur.sorted);
        assert_eq!(ids(&cur), vec![1, 2, 0, 3]);
        // By hand: e_i = expf(l_i - 3) in sorted order, float sum left to right.
        let e: Vec<f32> = [3.0f32, 2.0, 1.0, 0.0]
            .iter()
            .map(|l| (l - 3.0f32).exp())
            .collect();
        let sum = e.iter().fold(0.0f32, |a, &b| a + b);
        for (t, ei) in cur.data.iter().zip(&e) {
            assert_eq!(t.p, ei / sum);
        }
        // Already sorted: no re-sort even if the order is not descending.
        let mut cur = arr(&[0.0, 1.0]);
        cur.sorted = true;
        softmax(&mut cur);
        assert_eq!(ids(&cur), vec![0, 1]);
        assert_eq!(cur.data[0].p, 1.0 / (1.0 + 1.0f32.exp()));
    }

    #[test]
    fn softmax_of_empty_array_is_a_no_op() {
        let mut cur = arr(&[]);
        softmax(&mut cur);
        assert!(cur.is_empty());
    }

    #[test]
    fn top_k_small_and_large_k_agree() {
        // 1000 logits spread over [-12, 12] with many ties: the partial-sort path (k <= 128)
        // and the bucket path (k > 128) must both return the exact top k in descending order.
        let logits: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 97) as f32 - 48.0) / 4.0)
            .collect();
        let mut by_value = logits.clone();
        by_value.sort_by(|a, b| b.partial_cmp(a).unwrap());
        for k in [1, 40, 128, 129, 300, 999, 1000, 5000] {
            let mut cur = arr(&logits);
            top_k(&mut cur, k);
            let kk = (k as usize).min(1000);
            assert_eq!(cur.len(), kk);
            assert!(cur.sorted);
            let got: Vec<f32> = cur.data.iter().map(|t| t.logit).collect();
            assert_eq!(got, by_value[..kk].to_vec(), "k = {k}");
        }
    }

    #[test]
    fn top_k_non_positive_keeps_all_but_sorts() {
        for k in [0, -1] {
            let mut cur = arr(&[0.1, 0.3, 0.2]);
            top_k(&mut cur, k);
            assert_eq!(ids(&cur), vec![1, 2, 0]);
            assert!(cur.sorted);
            assert!(cur.data.iter().all(|t| t.p == 0.0));
        }
    }

    #[test]
    fn top_k_on_sorted_input_only_truncates() {
        let mut cur = arr(&[0.1, 0.3, 0.2]);
        cur.sorted = true; // a lie, but the reference trusts it
        top_k(&mut cur, 2);
        assert_eq!(ids(&cur), vec![0, 1]);
    }

    #[test]
    fn bucket_path_handles_infinities_and_out_of_range_logits() {
        // +inf converts to INT_MIN in the reference and lands in bucket 0, -inf too: the final
        // sort of the lowest bucket still orders them correctly.
        let mut logits: Vec<f32> = (0..200).map(|i| i as f32 * 0.01).collect();
        logits[7] = f32::INFINITY;
        logits[9] = f32::NEG_INFINITY;
        logits[11] = 50.0;
        logits[13] = -50.0;
        let mut cur = arr(&logits);
        top_k(&mut cur, 150);
        assert_eq!(cur.len(), 150);
        assert!(cur.data.windows(2).all(|w| w[0].logit >= w[1].logit));
        // +inf sits in bucket 0 (INT_MIN clamped up), below the buckets that already hold 150
        // candidates, so the reference drops it: a quirk, reproduced. 50.0 is in bucket 127.
        assert!(cur.data.iter().all(|t| t.id != 7));
        assert_eq!(cur.data[0].id, 11);
        assert_eq!(float_to_int_x86(f32::INFINITY), i32::MIN);
        assert_eq!(float_to_int_x86(f32::NAN), i32::MIN);
        assert_eq!(float_to_int_x86(-3.7), -3);
    }

    #[test]
    fn bucket_constants_are_the_references() {
        assert_eq!(BUCKET_SCALE, 6.4f32);
        assert_eq!(BUCKET_INTER, 64.0f32);
    }
}
