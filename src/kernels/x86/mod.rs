//! x86-64 kernel variants. Each is compiled with `#[target_feature]` (the crate itself needs no
//! `-C target-cpu`) and only handed out by [`super::table`] after runtime detection says the CPU
//! has the instructions. AVX-512 VNNI / AVX-VNNI variants would be sibling modules here.

pub(super) mod avx2;
