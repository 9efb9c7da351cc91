//! x86-64 kernel variants. Each is compiled with `#[target_feature]` (the crate itself needs no
//! `-C target-cpu`) and only handed out by [`super::table`] after runtime detection says the CPU
//! has the instructions: `avx2` (AVX2 + FMA + F16C) and `avx512` (AVX-512 VNNI for the integer
//! ternary product, AVX2 for the rest).

pub(super) mod avx2;
pub(super) mod avx512;
