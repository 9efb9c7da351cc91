//! libstdc++ 12's `std::sort` and `std::partial_sort`, step for step.
//!
//! Why not `slice::sort_by`: the reference sorts candidates with `std::sort` (introsort, not
//! stable) and `std::partial_sort` (heap select). Tokens with exactly equal logits are common
//! (a Q6_K output head produces up to ~190 tied pairs per step), and the position a tie ends up
//! in decides which token a given `u` selects and which of two tied tokens survives a top-k
//! cut. Reproducing the algorithms makes the tie order the reference's, not an approximation
//! of it. The comparator is the C++ one: `less(a, b)` = "a goes before b".
//!
//! The C++ code relies on sentinels ("unguarded" loops); with a comparator that is not a strict
//! weak order (NaN keys) those loops could run off the range. Here every loop also checks the
//! bounds, which changes nothing whenever the C++ behaviour is defined and never panics.

/// `_S_threshold`: below this size introsort leaves the range to the final insertion sort.
const THRESHOLD: usize = 16;

/// `std::sort(v.begin(), v.end(), less)`.
pub(super) fn sort<T: Copy>(v: &mut [T], less: &mut impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    if n == 0 {
        return;
    }
    // std::__lg(n) * 2
    let depth = 2 * (usize::BITS - 1 - n.leading_zeros()) as usize;
    introsort_loop(v, 0, n, depth, less);
    final_insertion_sort(v, 0, n, less);
}

/// `std::partial_sort(v.begin(), v.begin() + middle, v.end(), less)`: the `middle` smallest
/// (under `less`) elements, sorted, in `v[..middle]`; the rest in heap-select order.
pub(super) fn partial_sort<T: Copy>(
    v: &mut [T],
    middle: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let middle = middle.min(v.len());
    let n = v.len();
    heap_select(v, 0, middle, n, less);
    sort_heap(v, 0, middle, less);
}

fn introsort_loop<T: Copy>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    mut depth: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    while last - first > THRESHOLD {
        if depth == 0 {
            heap_select(v, first, last, last, less);
            sort_heap(v, first, last, less);
            return;
        }
        depth -= 1;
        let cut = unguarded_partition_pivot(v, first, last, less);
        introsort_loop(v, cut, last, depth, less);
        last = cut;
    }
}

fn move_median_to_first<T: Copy>(
    v: &mut [T],
    result: usize,
    a: usize,
    b: usize,
    c: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let pick = if less(&v[a], &v[b]) {
        if less(&v[b], &v[c]) {
            b
        } else if less(&v[a], &v[c]) {
            c
        } else {
            a
        }
    } else if less(&v[a], &v[c]) {
        a
    } else if less(&v[b], &v[c]) {
        c
    } else {
        b
    };
    v.swap(result, pick);
}

fn unguarded_partition_pivot<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) -> usize {
    let mid = first + (last - first) / 2;
    move_median_to_first(v, first, first + 1, mid, last - 1, less);
    // __unguarded_partition(first + 1, last, pivot = first)
    let pivot = v[first];
    let mut lo = first + 1;
    let mut hi = last;
    loop {
        while lo < last && less(&v[lo], &pivot) {
            lo += 1;
        }
        hi -= 1;
        while hi > first && less(&pivot, &v[hi]) {
            hi -= 1;
        }
        if lo >= hi {
            return lo;
        }
        v.swap(lo, hi);
        lo += 1;
    }
}

fn final_insertion_sort<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if last - first > THRESHOLD {
        insertion_sort(v, first, first + THRESHOLD, less);
        for i in first + THRESHOLD..last {
            unguarded_linear_insert(v, first, i, less);
        }
    } else {
        insertion_sort(v, first, last, less);
    }
}

fn insertion_sort<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    if first == last {
        return;
    }
    for i in first + 1..last {
        if less(&v[i], &v[first]) {
            let val = v[i];
            v.copy_within(first..i, first + 1);
            v[first] = val;
        } else {
            unguarded_linear_insert(v, first, i, less);
        }
    }
}

/// Move `v[pos]` left while it is `less` than its left neighbour (`lower` only guards bounds).
fn unguarded_linear_insert<T: Copy>(
    v: &mut [T],
    lower: usize,
    pos: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let val = v[pos];
    let mut hole = pos;
    while hole > lower && less(&val, &v[hole - 1]) {
        v[hole] = v[hole - 1];
        hole -= 1;
    }
    v[hole] = val;
}

// ---- heap (stl_heap.h); indices are relative to `base` like the C++ `__first + i` ----

fn push_heap<T: Copy>(
    v: &mut [T],
    base: usize,
    mut hole: usize,
    top: usize,
    value: T,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(&v[base + parent], &value) {
            break;
        }
        v[base + hole] = v[base + parent];
        hole = parent;
    }
    v[base + hole] = value;
}

fn adjust_heap<T: Copy>(
    v: &mut [T],
    base: usize,
    mut hole: usize,
    len: usize,
    value: T,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let top = hole;
    let mut second = hole;
    // `(len - 1) / 2` with len >= 1 here (callers never adjust an empty heap).
    while second < (len - 1) / 2 {
        second = 2 * (second + 1);
        if less(&v[base + second], &v[base + second - 1]) {
            second -= 1;
        }
        v[base + hole] = v[base + second];
        hole = second;
    }
    if len & 1 == 0 && len >= 2 && second == (len - 2) / 2 {
        second = 2 * (second + 1);
        v[base + hole] = v[base + second - 1];
        hole = second - 1;
    }
    push_heap(v, base, hole, top, value, less);
}

fn make_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let len = last - first;
    if len < 2 {
        return;
    }
    let mut parent = (len - 2) / 2;
    loop {
        let value = v[first + parent];
        adjust_heap(v, first, parent, len, value, less);
        if parent == 0 {
            return;
        }
        parent -= 1;
    }
}

/// `__pop_heap(first, last, result)`: the heap top goes to `result`, `*result` is re-inserted.
fn pop_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    last: usize,
    result: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    let value = v[result];
    v[result] = v[first];
    adjust_heap(v, first, 0, last - first, value, less);
}

fn heap_select<T: Copy>(
    v: &mut [T],
    first: usize,
    middle: usize,
    last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    make_heap(v, first, middle, less);
    if middle == first {
        return;
    }
    for i in middle..last {
        if less(&v[i], &v[first]) {
            pop_heap(v, first, middle, i, less);
        }
    }
}

fn sort_heap<T: Copy>(
    v: &mut [T],
    first: usize,
    mut last: usize,
    less: &mut impl FnMut(&T, &T) -> bool,
) {
    while last - first > 1 {
        last -= 1;
        pop_heap(v, first, last, last, less);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for test inputs (not the sampler's RNG).
    fn lcg(state: &mut u64) -> u32 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 33) as u32
    }

    /// Keys with many ties, tagged with their original position.
    fn tied_input(n: usize, distinct: u32, seed: u64) -> Vec<(u32, usize)> {
        let mut s = seed;
        (0..n).map(|i| (lcg(&mut s) % distinct, i)).collect()
    }

    #[test]
    fn sort_orders_by_key_for_all_sizes() {
        for n in [0usize, 1, 2, 3, 15, 16, 17, 33, 100, 1000, 5000] {
            let mut v = tied_input(n, 7, n as u64 + 1);
            sort(&mut v, &mut |a, b| a.0 > b.0);
            assert!(v.windows(2).all(|w| w[0].0 >= w[1].0), "n = {n}");
            let mut pos: Vec<usize> = v.iter().map(|e| e.1).collect();
            pos.sort_unstable();
            assert!(
                pos.iter().enumerate().all(|(i, &p)| i == p),
                "n = {n}: not a permutation"
            );
        }
    }

    #[test]
    fn partial_sort_puts_the_top_in_front_sorted() {
        for (n, k) in [
            (0usize, 0usize),
            (5, 0),
            (5, 5),
            (10, 3),
            (1000, 40),
            (1000, 128),
        ] {
            let mut v = tied_input(n, 50, 99 + n as u64);
            let mut all: Vec<u32> = v.iter().map(|e| e.0).collect();
            all.sort_unstable_by(|a, b| b.cmp(a));
            partial_sort(&mut v, k, &mut |a, b| a.0 > b.0);
            let front: Vec<u32> = v[..k].iter().map(|e| e.0).collect();
            assert_eq!(front, all[..k].to_vec(), "n = {n}, k = {k}");
        }
    }

    // Tie orders produced by libstdc++ 12 (g++ 12.2.0 on this machine; the reference links the
    // same library): `std::sort` / `std::partial_sort` with `a.key > b.key` on {key, position}
    // pairs where key = i * mul % modulo. Each list is the original positions in output order.
    // They pin the exact introsort / heap-select steps, so the tie order is the reference's.
    const SORT_12: [usize; 12] = [2, 7, 4, 9, 1, 6, 11, 3, 8, 0, 5, 10];

    const SORT_40: [usize; 40] = [
        17, 2, 37, 22, 7, 32, 27, 12, 9, 24, 14, 29, 19, 34, 4, 39, 21, 1, 26, 31, 36, 16, 11, 6,
        18, 23, 38, 13, 28, 3, 8, 33, 0, 20, 5, 35, 10, 30, 15, 25,
    ];

    const SORT_300: [usize; 300] = [
        96, 206, 30, 74, 261, 195, 63, 184, 85, 250, 173, 272, 19, 217, 162, 8, 239, 129, 118, 294,
        140, 52, 41, 107, 151, 283, 228, 60, 49, 236, 225, 181, 203, 71, 192, 82, 214, 93, 170,
        159, 104, 148, 115, 137, 126, 258, 27, 5, 291, 16, 247, 280, 38, 269, 277, 101, 90, 178,
        24, 266, 189, 79, 167, 299, 156, 13, 288, 145, 112, 134, 2, 123, 244, 35, 57, 222, 211,
        255, 68, 200, 46, 233, 120, 98, 219, 43, 153, 285, 10, 54, 109, 142, 197, 230, 131, 241,
        296, 164, 208, 186, 65, 263, 87, 175, 252, 21, 274, 76, 32, 194, 205, 128, 260, 238, 293,
        139, 183, 227, 271, 172, 282, 150, 161, 249, 216, 73, 106, 62, 7, 51, 29, 95, 117, 18, 40,
        84, 15, 169, 59, 180, 213, 125, 103, 158, 81, 268, 70, 202, 279, 92, 191, 235, 136, 147,
        257, 26, 37, 224, 246, 48, 290, 4, 114, 243, 188, 199, 254, 34, 276, 45, 78, 23, 67, 232,
        210, 56, 221, 265, 122, 155, 166, 177, 12, 298, 287, 100, 144, 133, 111, 89, 1, 284, 207,
        53, 9, 64, 295, 152, 218, 141, 108, 229, 262, 31, 86, 251, 174, 185, 130, 119, 42, 273, 75,
        196, 20, 97, 240, 163, 116, 259, 138, 39, 248, 28, 50, 127, 237, 215, 6, 182, 83, 281, 17,
        171, 94, 193, 72, 270, 204, 160, 105, 61, 149, 292, 226, 267, 289, 3, 14, 256, 212, 25,
        278, 80, 124, 135, 113, 146, 157, 102, 168, 91, 179, 190, 201, 69, 36, 58, 234, 245, 47,
        223, 11, 165, 286, 44, 154, 0, 242, 110, 143, 33, 132, 297, 121, 99, 231, 176, 88, 55, 187,
        253, 275, 77, 198, 22, 264, 220, 66, 209,
    ];

    const PSORT_300_40: [usize; 300] = [
        8, 107, 129, 195, 63, 184, 140, 85, 162, 118, 52, 151, 294, 41, 173, 19, 206, 74, 239, 261,
        272, 96, 283, 228, 250, 217, 30, 192, 203, 16, 82, 137, 181, 104, 38, 214, 60, 126, 71,
        170, 11, 0, 22, 33, 44, 14, 25, 47, 36, 3, 50, 6, 28, 39, 17, 55, 20, 9, 58, 53, 31, 61,
        42, 45, 64, 12, 66, 67, 23, 69, 1, 56, 72, 34, 26, 75, 4, 77, 78, 48, 80, 81, 37, 83, 70,
        15, 86, 59, 88, 89, 29, 91, 92, 40, 94, 95, 51, 97, 73, 99, 100, 62, 102, 103, 18, 105,
        106, 84, 108, 7, 110, 111, 87, 113, 114, 98, 116, 117, 109, 119, 120, 121, 122, 43, 124,
        125, 65, 127, 128, 10, 130, 131, 132, 133, 21, 135, 136, 54, 138, 139, 76, 141, 142, 143,
        144, 32, 146, 147, 90, 149, 150, 112, 152, 153, 154, 155, 156, 157, 158, 123, 160, 161,
        145, 163, 164, 165, 166, 167, 168, 169, 13, 171, 172, 2, 174, 175, 176, 177, 178, 179, 180,
        24, 182, 183, 68, 185, 186, 187, 188, 189, 190, 191, 46, 193, 194, 35, 196, 197, 198, 199,
        200, 201, 202, 57, 204, 205, 134, 207, 208, 209, 210, 211, 212, 213, 79, 215, 216, 101,
        218, 219, 220, 221, 222, 223, 224, 225, 226, 227, 93, 229, 230, 231, 232, 233, 234, 235,
        236, 237, 238, 148, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 159, 251, 252, 253,
        254, 255, 256, 257, 258, 259, 260, 49, 262, 263, 264, 265, 266, 267, 268, 269, 270, 271,
        27, 273, 274, 275, 276, 277, 278, 279, 280, 281, 282, 115, 284, 285, 286, 287, 288, 289,
        290, 291, 292, 293, 5, 295, 296, 297, 298, 299,
    ];

    const PSORT_7_3: [usize; 7] = [5, 1, 3, 2, 4, 0, 6];

    fn keyed(n: usize, mul: usize, modulo: usize) -> Vec<(u32, usize)> {
        (0..n).map(|i| ((i * mul % modulo) as u32, i)).collect()
    }

    fn positions(v: &[(u32, usize)]) -> Vec<usize> {
        v.iter().map(|e| e.1).collect()
    }

    #[test]
    fn sort_tie_order_matches_libstdcxx() {
        for (n, mul, modulo, expect) in [
            (12, 7, 5, &SORT_12[..]),
            (40, 7, 5, &SORT_40[..]),
            (300, 37, 11, &SORT_300[..]),
        ] {
            let mut v = keyed(n, mul, modulo);
            sort(&mut v, &mut |a, b| a.0 > b.0);
            assert_eq!(positions(&v), expect.to_vec(), "n = {n}");
        }
    }

    #[test]
    fn partial_sort_tie_order_matches_libstdcxx() {
        let mut v = keyed(300, 37, 11);
        partial_sort(&mut v, 40, &mut |a, b| a.0 > b.0);
        assert_eq!(positions(&v), PSORT_300_40.to_vec());
        let mut v = keyed(7, 3, 2);
        partial_sort(&mut v, 3, &mut |a, b| a.0 > b.0);
        assert_eq!(positions(&v), PSORT_7_3.to_vec());
    }
}
