//! Cross-check against the real libstdc++ 12: the expected outputs below were produced by
//! `testdata/libstdcxx_crosscheck.cpp` (this module's own harness: the fork's candidate steps
//! written against `std::sort`, `std::partial_sort`, `std::discrete_distribution`,
//! `std::mt19937`), built with `g++ 12.2 -O2` on x86-64 (no FMA), i.e. the same library the
//! reference links. They pin tie order and draws on inputs full of exactly equal logits.
//!
//! Inputs: `logit_i = ((i * mul) % modulo) as f32 / scale - offset` (exact in float).
//! Regenerate: `g++ -O2 -o h testdata/libstdcxx_crosscheck.cpp && ./h`.

use super::candidates::{self, TokenDataArray};
use super::rng::Mt19937;
use super::select::Dist;
use super::truncate::Typical;
use super::Sampler;

fn make(n: usize, mul: usize, modulo: usize, scale: f32, offset: f32) -> TokenDataArray {
    let logits: Vec<f32> = (0..n)
        .map(|i| ((i * mul) % modulo) as f32 / scale - offset)
        .collect();
    TokenDataArray::from_logits(&logits)
}

fn ids(cur: &TokenDataArray) -> Vec<i32> {
    cur.data.iter().map(|t| t.id).collect()
}

const SOFTMAX_DIST_SEED42_IDS: [i32; 30] = [
    235, 2722, 2221, 700, 2747, 2587, 246, 2710, 981, 786, 515, 725, 2051, 2121, 1882, 320, 651,
    282, 564, 50, 1950, 1128, 1954, 785, 1361, 2159, 1055, 324, 1754, 873,
];

const TOP_K_40_IDS: [i32; 40] = [
    2734, 282, 1508, 895, 2121, 2403, 1790, 564, 1177, 2072, 846, 2685, 1459, 233, 2354, 1128,
    2967, 515, 1741, 2023, 797, 2636, 1410, 184, 2305, 2918, 1079, 1692, 466, 135, 1361, 748, 2587,
    1974, 2256, 1030, 1643, 2869, 417, 1925,
];

const TOP_K_300_IDS: [i32; 300] = [
    2734, 1508, 895, 2121, 282, 2403, 564, 1790, 1177, 2685, 846, 233, 2072, 1459, 2354, 1741,
    2967, 1128, 515, 1410, 184, 2023, 797, 2636, 1692, 2918, 466, 2305, 1079, 748, 2587, 1974,
    1361, 135, 2869, 1643, 1030, 417, 2256, 86, 1312, 1925, 699, 2538, 2207, 368, 981, 2820, 1594,
    2489, 650, 1876, 1263, 37, 2158, 2771, 1545, 932, 319, 2440, 1214, 601, 1827, 1496, 2722, 883,
    2109, 270, 1778, 1165, 2391, 552, 221, 2673, 1447, 834, 2060, 503, 2342, 1116, 1729, 2955,
    1398, 172, 2624, 2011, 785, 2906, 1680, 1067, 454, 2293, 1349, 1962, 736, 2575, 123, 2244, 405,
    1018, 2857, 1631, 2526, 1913, 74, 1300, 687, 2808, 1582, 356, 969, 2195, 25, 2477, 638, 1864,
    1251, 2146, 920, 307, 2759, 1533, 1815, 2428, 1202, 589, 871, 2097, 2710, 258, 1484, 2992,
    2379, 1766, 540, 1153, 2048, 209, 1435, 2661, 822, 1104, 2330, 1717, 2943, 491, 773, 160, 2612,
    1386, 1999, 2281, 1055, 2894, 442, 1668, 1337, 1950, 2563, 111, 724, 2232, 393, 1619, 1006,
    2845, 2514, 62, 1901, 1288, 675, 2183, 1570, 957, 2796, 344, 1852, 2465, 1239, 626, 13, 2747,
    908, 295, 1521, 2134, 577, 1190, 1803, 2416, 2085, 859, 246, 1472, 2698, 2980, 2367, 1754,
    1141, 528, 1423, 2036, 810, 2649, 197, 1705, 2318, 479, 2931, 1092, 761, 148, 2600, 1987, 1374,
    1043, 2882, 430, 2269, 1656, 2551, 1938, 712, 1325, 99, 2220, 381, 1607, 2833, 994, 50, 1276,
    1889, 663, 2502, 1558, 945, 2171, 332, 2784, 2453, 1, 1840, 1227, 614, 2122, 896, 1509, 2735,
    283, 1178, 2404, 1791, 565, 1460, 2073, 2686, 234, 847, 2355, 2968, 516, 1742, 1129, 2024, 185,
    1411, 2637, 798, 1693, 467, 2306, 1080, 2919, 749, 1362, 2588, 136, 1975, 1644, 418, 2870,
    1031, 2257, 87, 1313, 700, 1926, 2539, 982, 1595, 2208, 369, 2821, 38, 1264, 651, 1877, 2490,
    320,
];

const TYPICAL_05_IDS: [i32; 104] = [
    497, 206, 400, 303, 109, 12, 134, 328, 425, 231, 37, 278, 181, 375, 84, 472, 353, 159, 256, 62,
    450, 156, 59, 447, 350, 253, 378, 87, 475, 281, 184, 228, 34, 131, 422, 325, 403, 209, 306,
    112, 15, 300, 9, 494, 203, 106, 397, 234, 137, 331, 428, 40, 275, 469, 372, 178, 81, 162, 65,
    453, 356, 259, 250, 56, 347, 153, 444, 187, 381, 90, 478, 284, 128, 225, 419, 322, 31, 18, 115,
    309, 406, 212, 103, 297, 491, 394, 200, 6, 43, 431, 334, 140, 237, 466, 78, 272, 175, 369, 359,
    165, 262, 68, 456, 53,
];

const ZERO_P_DRAWS: [i32; 5] = [0, 0, 0, 0, 0];

/// A: `softmax` then `dist(42)`, 30 steps on 3000 candidates (~5 per distinct logit).
#[test]
fn softmax_dist_matches_libstdcxx_with_ties() {
    let mut dist = Dist::new(42);
    let mut got = Vec::new();
    for _ in 0..30 {
        let mut cur = make(3000, 7919, 613, 64.0, 4.0);
        candidates::softmax(&mut cur);
        dist.apply(&mut cur);
        got.push(cur.selected_token().unwrap().id);
    }
    assert_eq!(got, SOFTMAX_DIST_SEED42_IDS.to_vec());
}

/// B: top-k 40 (partial sort path) on the same input: which tied tokens survive, in order.
#[test]
fn top_k_partial_sort_matches_libstdcxx() {
    let mut cur = make(3000, 7919, 613, 64.0, 4.0);
    candidates::top_k(&mut cur, 40);
    assert_eq!(ids(&cur), TOP_K_40_IDS.to_vec());
}

/// C: top-k 300 (128-bucket path).
#[test]
fn top_k_bucket_path_matches_libstdcxx() {
    let mut cur = make(3000, 7919, 613, 64.0, 4.0);
    candidates::top_k(&mut cur, 300);
    assert_eq!(ids(&cur), TOP_K_300_IDS.to_vec());
}

/// D: typical(0.5, 1) on 500 candidates (97 distinct logits): order by score and the cut.
#[test]
fn typical_matches_libstdcxx() {
    let mut cur = make(500, 31, 97, 16.0, 3.0);
    Typical {
        p: 0.5,
        min_keep: 1,
    }
    .apply(&mut cur);
    assert_eq!(ids(&cur), TYPICAL_05_IDS.to_vec());
}

/// E: `discrete_distribution` over all-zero weights (NaN after normalising) picks 0.
#[test]
fn zero_weights_match_libstdcxx() {
    let mut rng = Mt19937::new(7);
    let got: Vec<i32> = (0..5)
        .map(|_| super::rng::discrete_distribution_sample(&[0.0; 5], &mut rng) as i32)
        .collect();
    assert_eq!(got, ZERO_P_DRAWS.to_vec());
}
