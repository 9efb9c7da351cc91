//! The random numbers of the reference sampler, bit for bit: `std::mt19937` and the way
//! libstdc++ 12's `std::discrete_distribution<int>` turns two of its outputs into an index.
//!
//! Why emulate a C++ library: the golden sampling traces were drawn by the fork's `dist`
//! sampler (`llama_sample_dist`), which builds a `std::discrete_distribution<int>` over the
//! candidates' `p` fields and calls it with a `std::mt19937`. Every detail below (how many
//! 32-bit outputs make one double, double arithmetic for the weights, `lower_bound`) decides
//! which token a seed picks.

/// `LLAMA_DEFAULT_SEED`: the seed value that means "pick a random seed".
pub const DEFAULT_SEED: u32 = 0xFFFF_FFFF;

/// The 32-bit Mersenne Twister with the standard's `mt19937` parameters
/// (w=32, n=624, m=397, r=31, a=0x9908b0df, u=11, d=0xffffffff, s=7, b=0x9d2c5680,
/// t=15, c=0xefc60000, l=18, f=1812433253).
#[derive(Clone)]
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

impl Mt19937 {
    /// `std::mt19937(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut rng = Mt19937 {
            state: [0; N],
            index: N,
        };
        rng.seed(seed);
        rng
    }

    /// `rng.seed(seed)`: re-initialise the state exactly like the constructor.
    pub fn seed(&mut self, seed: u32) {
        self.state[0] = seed;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    /// Regenerate the whole block of 624 words (libstdc++'s `_M_gen_rand`).
    fn twist(&mut self) {
        for i in 0..N {
            let y = (self.state[i] & UPPER_MASK) | (self.state[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 != 0 { MATRIX_A } else { 0 };
            self.state[i] = self.state[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    /// The next 32-bit output (`rng()`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `std::generate_canonical<double, 53>(rng)` as libstdc++ 12 computes it: 53 bits need
    /// `ceil(53 / 32) = 2` outputs; `u = (g1 + g2 * 2^32) / 2^64` where the addition rounds to
    /// double, and a result of exactly 1.0 becomes the largest double below 1.
    pub fn next_canonical_f64(&mut self) -> f64 {
        let g1 = self.next_u32() as f64;
        let g2 = self.next_u32() as f64;
        let sum = g1 + g2 * 4_294_967_296.0;
        let u = sum / 18_446_744_073_709_551_616.0;
        if u >= 1.0 {
            // nextafter(1.0, 0.0)
            f64::from_bits(1.0f64.to_bits() - 1)
        } else {
            u
        }
    }
}

impl std::fmt::Debug for Mt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mt19937 {{ index: {} }}", self.index)
    }
}

/// libstdc++'s `std::lower_bound` on doubles: the first index whose value is not `< x`.
/// Written as the same binary search (not a scan) so NaN entries behave as they do there.
fn lower_bound(values: &[f64], x: f64) -> usize {
    let mut first = 0usize;
    let mut len = values.len();
    while len > 0 {
        let half = len >> 1;
        let middle = first + half;
        if values[middle] < x {
            first = middle + 1;
            len = len - half - 1;
        } else {
            len = half;
        }
    }
    first
}

/// One draw of `std::discrete_distribution<int>(weights.begin(), weights.end())(rng)`
/// (libstdc++ 12), i.e. the fork's `llama_sample_dist`.
///
/// - fewer than 2 weights: returns 0 and draws nothing;
/// - otherwise: weights to double, summed in double (`std::accumulate` from 0.0), each divided
///   by the sum, prefix-summed in double, the last prefix forced to 1.0; one canonical double
///   `u` (two 32-bit outputs); the answer is `lower_bound(prefix, u)`.
///
/// All-zero weights give NaN prefixes; the binary search then returns 0, as in the reference
/// (the fork's `dist` without a softmax before it always picks index 0).
pub(super) fn discrete_distribution_sample(weights: &[f32], rng: &mut Mt19937) -> usize {
    if weights.len() < 2 {
        return 0;
    }
    let sum: f64 = weights.iter().fold(0.0f64, |acc, &w| acc + w as f64);
    let mut prefix = Vec::with_capacity(weights.len());
    let mut running = 0.0f64;
    for &w in weights {
        running += w as f64 / sum;
        prefix.push(running);
    }
    if let Some(last) = prefix.last_mut() {
        *last = 1.0;
    }
    let u = rng.next_canonical_f64();
    lower_bound(&prefix, u)
}

/// The fork's `get_rng_seed`: `DEFAULT_SEED` means a fresh random seed, any other value is used
/// as is. The reference asks `std::random_device` (or the clock when that has no entropy); here
/// the OS entropy source (`/dev/urandom`), falling back to the clock.
pub(super) fn resolve_seed(seed: u32) -> u32 {
    if seed != DEFAULT_SEED {
        return seed;
    }
    os_random_u32().unwrap_or_else(clock_seed)
}

fn os_random_u32() -> Option<u32> {
    use std::io::Read;
    let mut buf = [0u8; 4];
    let mut f = std::fs::File::open("/dev/urandom").ok()?;
    f.read_exact(&mut buf).ok()?;
    Some(u32::from_ne_bytes(buf))
}

/// Like the reference's fallback: the low 32 bits of the system clock's tick count.
fn clock_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_10000th_output_of_default_seed() {
        // C++ standard [rand.predef]: the 10000th consecutive invocation of a
        // default-constructed mt19937 (seed 5489) produces 4123659995.
        let mut rng = Mt19937::new(5489);
        let mut last = 0;
        for _ in 0..10000 {
            last = rng.next_u32();
        }
        assert_eq!(last, 4_123_659_995);
    }

    #[test]
    fn mt19937_first_outputs_seed_5489() {
        // Well-known first outputs of the reference MT19937 with seed 5489.
        let mut rng = Mt19937::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
        assert_eq!(rng.next_u32(), 581_869_302);
        assert_eq!(rng.next_u32(), 3_890_346_734);
    }

    #[test]
    fn reseed_restarts_the_sequence() {
        let mut a = Mt19937::new(42);
        let first: Vec<u32> = (0..700).map(|_| a.next_u32()).collect();
        a.seed(42);
        let again: Vec<u32> = (0..700).map(|_| a.next_u32()).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn canonical_uses_two_outputs_low_word_first() {
        let mut a = Mt19937::new(7);
        let mut b = Mt19937::new(7);
        let u = a.next_canonical_f64();
        let g1 = b.next_u32() as f64;
        let g2 = b.next_u32() as f64;
        assert_eq!(u, (g1 + g2 * 2f64.powi(32)) / 2f64.powi(64));
        // Both generators are now at the same place.
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn discrete_fewer_than_two_weights_draws_nothing() {
        let mut a = Mt19937::new(1);
        let mut b = Mt19937::new(1);
        assert_eq!(discrete_distribution_sample(&[0.7], &mut a), 0);
        assert_eq!(discrete_distribution_sample(&[], &mut a), 0);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn discrete_all_zero_weights_pick_index_zero_and_draw() {
        let mut a = Mt19937::new(3);
        let mut b = Mt19937::new(3);
        for _ in 0..20 {
            assert_eq!(discrete_distribution_sample(&[0.0; 5], &mut a), 0);
            b.next_u32();
            b.next_u32();
        }
        assert_eq!(a.next_u32(), b.next_u32());
    }

    #[test]
    fn discrete_slot_is_lower_bound_of_prefix_sums() {
        // With weights (1, 1, 2) the prefixes are 0.25, 0.5, 1.0: u picks the first slot whose
        // prefix is >= u. Check against the u the same seed produces.
        let weights = [1.0f32, 1.0, 2.0];
        let mut a = Mt19937::new(1234);
        let mut b = Mt19937::new(1234);
        for _ in 0..200 {
            let idx = discrete_distribution_sample(&weights, &mut a);
            let u = b.next_canonical_f64();
            let expect = if u <= 0.25 {
                0
            } else if u <= 0.5 {
                1
            } else {
                2
            };
            assert_eq!(idx, expect, "u = {u}");
        }
    }

    #[test]
    fn lower_bound_matches_partition_point_on_sorted_input() {
        let v = [0.1, 0.2, 0.2, 0.5, 1.0];
        for x in [0.0, 0.1, 0.15, 0.2, 0.3, 0.5, 0.99, 1.0] {
            assert_eq!(lower_bound(&v, x), v.partition_point(|&e| e < x));
        }
    }

    #[test]
    fn explicit_seed_is_kept_default_seed_is_random() {
        assert_eq!(resolve_seed(42), 42);
        assert_eq!(resolve_seed(0), 0);
        // Two random draws are equal with probability 2^-32; three in a row never.
        let a = resolve_seed(DEFAULT_SEED);
        let b = resolve_seed(DEFAULT_SEED);
        let c = resolve_seed(DEFAULT_SEED);
        assert!(!(a == b && b == c));
    }
}
