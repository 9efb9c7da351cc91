//! x86-64 kernel variants. Each is compiled with `#[target_feature]` (the crate itself needs no
//! `-C target-cpu`) and only handed out by [`super::table`] after runtime detection says the CPU
//! has the instructions: `avx2` (AVX2 + FMA + F16C) and `avx512` (AVX-512 VNNI for the integer
//! ternary product, AVX2 for the rest).

pub(super) mod avx2;
pub(super) mod avx512;

use super::candidates::{Candidate, Entry};
use super::Kind;

/// The candidates of `entry` on this CPU: AVX2's when it has AVX2 + FMA + F16C, AVX-512's when it
/// also has AVX-512 VNNI (see [`super::candidates`]).
pub(super) fn candidates(entry: Entry, out: &mut Vec<Candidate>) {
    if super::table(Kind::Avx2).is_some() {
        avx2::candidates(entry, out);
    }
    if super::table(Kind::Avx512Vnni).is_some() {
        avx512::candidates(entry, out);
    }
}
