//! Helpers over a logits row that need no sampler chain: the greedy pick and the top-k list
//! (what the golden traces print).

/// Index of the largest logit (ties: the lowest index), as greedy sampling and the golden
/// traces pick it.
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// The `k` largest logits as `(id, logit)`, descending, ties to the lower id.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(crate::types::Token, f32)> {
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    let k = k.min(idx.len());
    let cmp = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    if k < idx.len() && k > 0 {
        idx.select_nth_unstable_by(k - 1, cmp);
    }
    idx.truncate(k);
    idx.sort_by(cmp);
    idx.into_iter()
        .map(|i| (i as crate::types::Token, logits[i]))
        .collect()
}
