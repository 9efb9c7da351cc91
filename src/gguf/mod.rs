//! GGUF container: reader (memory-mapped, zero-copy tensor views) and writer.
//! Layout: `../shared/spec/GGUF.md`.

mod reader;
mod value;
mod writer;

pub use reader::{GgufFile, TensorInfo, TensorView};
pub use value::{Array, Value, ValueType};
pub use writer::GgufWriter;

/// "GGUF" read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// Alignment of tensor data when `general.alignment` is absent.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
