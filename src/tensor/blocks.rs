//! `#[repr(C)]` block structs of the quantized ggml types, byte-for-byte as in ggml-common.h.
//! Sizes are asserted at compile time so a layout mistake cannot build.
//!
//! Scales stored as IEEE half are kept as raw `u16` bits (`half::f16::from_bits` to read them),
//! so every struct is plain bytes: alignment 2 (4 for Q8_K), no padding.

/// Elements per K-quant super-block (QK_K).
pub const QK_K: usize = 256;
/// Elements per Q8_0 block.
pub const QK8_0: usize = 32;
/// Elements per I2_S packing block (x86 layout: 128 weights in 32 bytes).
pub const QK_I2_S: usize = 128;

/// Q8_0: 32 int8 values and one f16 scale. value = `d * qs[i]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; QK8_0],
}

/// Q6_K: 256 6-bit values in 16 sub-blocks of 16 with int8 scales, one f16 super-scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: u16,
}

/// Q8_K: the activation side of TQ1_0/TQ2_0/Q6_K dot products. Never stored in files.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    /// Sums of `qs` over each group of 16.
    pub bsums: [i16; QK_K / 16],
}

/// TQ1_0: 256 trits, 5 per byte in `qs`, 4 per byte in `qh`, one f16 scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTQ1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: u16,
}

/// TQ2_0: 256 2-bit codes (value = code - 1), LSB-first lanes, one f16 scale.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTQ2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: u16,
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);
const _: () = assert!(std::mem::size_of::<BlockTQ1_0>() == 54);
const _: () = assert!(std::mem::size_of::<BlockTQ2_0>() == 66);
const _: () = assert!(std::mem::align_of::<BlockQ8_0>() == 2);
const _: () = assert!(std::mem::align_of::<BlockQ6K>() == 2);
const _: () = assert!(std::mem::align_of::<BlockTQ1_0>() == 2);
const _: () = assert!(std::mem::align_of::<BlockTQ2_0>() == 2);
const _: () = assert!(std::mem::align_of::<BlockQ8K>() == 4);

/// Marker for plain-old-data block types that may be viewed from raw bytes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only integer/float fields (every bit pattern valid)
/// and have no padding.
pub unsafe trait Pod: Copy + 'static {}
// SAFETY: all five are repr(C) structs of integer arrays and integers with no padding (sizes asserted above).
unsafe impl Pod for BlockQ8_0 {}
// SAFETY: as above.
unsafe impl Pod for BlockQ6K {}
// SAFETY: as above (f32 + i8/i16 arrays: every bit pattern is a valid value).
unsafe impl Pod for BlockQ8K {}
// SAFETY: as above.
unsafe impl Pod for BlockTQ1_0 {}
// SAFETY: as above.
unsafe impl Pod for BlockTQ2_0 {}
// SAFETY: primitive numeric types: every bit pattern is valid, no padding.
unsafe impl Pod for f32 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for i8 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for u8 {}
// SAFETY: half::f16 is a repr(transparent) u16.
unsafe impl Pod for half::f16 {}

/// Views `bytes` as a slice of `T`. Returns `None` when the length is not a multiple of
/// `size_of::<T>()` or the start is not aligned for `T`.
pub fn cast_slice<T: Pod>(bytes: &[u8]) -> Option<&[T]> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size)
        || !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: length and alignment checked above; T is Pod so any bytes are a valid T; the
    // returned slice borrows `bytes` and so cannot outlive it.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / size) })
}

/// Views a slice of `T` as bytes.
pub fn as_bytes<T: Pod>(v: &[T]) -> &[u8] {
    // SAFETY: T is Pod (no padding, no invalid bytes); the byte slice covers exactly the same
    // memory and borrows `v`.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}
