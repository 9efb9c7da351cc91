//! One error type for the whole crate. Every kind has a stable negative number that the C API
//! returns, so C callers can branch on it; the message names the thing that was wrong.

use std::fmt;

/// What went wrong, with a stable numeric code (the C API's return value). The numbers follow
/// `bitnet_status` of `spec/CAPI.md`: 0 is success, negative values are errors, and the two
/// positive values keep `llama_decode`'s meanings (1 = no KV slot, 2 = aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorKind {
    /// A caller passed a bad argument (null pointer, out-of-range id, bad option).
    InvalidArgument = -1,
    /// The operating system refused a file operation.
    Io = -2,
    /// The file is not a well-formed GGUF file (bad magic, truncated, inconsistent).
    Format = -3,
    /// Well-formed, but uses something this library does not implement (type, arch, version).
    Unsupported = -4,
    /// An allocation failed.
    OutOfMemory = -5,
    /// A metadata key is missing or has the wrong type or value.
    Metadata = -6,
    /// A token id outside the vocabulary.
    InvalidToken = -7,
    /// A caller's buffer is too small for the result.
    BufferTooSmall = -8,
    /// An internal invariant failed: a bug in this library.
    Internal = -9,
    /// A panic was caught at the C boundary: a bug in this library.
    Panic = -10,
    /// The context (KV cache) has no room for the batch (`llama_decode`'s 1).
    ContextFull = 1,
    /// The computation was aborted by the caller's abort callback (`llama_decode`'s 2).
    Aborted = 2,
}

impl ErrorKind {
    /// The stable number the C API returns for this kind.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// A short name for messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Io => "i/o error",
            ErrorKind::Format => "malformed file",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::OutOfMemory => "out of memory",
            ErrorKind::Metadata => "metadata error",
            ErrorKind::InvalidToken => "invalid token",
            ErrorKind::BufferTooSmall => "buffer too small",
            ErrorKind::ContextFull => "context full",
            ErrorKind::Internal => "internal error",
            ErrorKind::Panic => "panic",
            ErrorKind::Aborted => "aborted",
        }
    }
}

/// An error: a kind and a message that names the thing (file, key, tensor, offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The same error with `context: ` put in front of its message.
    pub fn context(self, context: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }

    pub fn invalid_argument(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, m)
    }
    pub fn format(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, m)
    }
    pub fn unsupported(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, m)
    }
    pub fn metadata(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Metadata, m)
    }
    pub fn invalid_token(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidToken, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, m)
    }
    pub fn io(path: impl fmt::Display, e: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{path}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
