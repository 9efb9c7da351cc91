//! The id types every module shares, one definition each (llama.h's `llama_token`,
//! `llama_pos`, `llama_seq_id`).

/// A token id (llama.h `llama_token`).
pub type Token = i32;
/// A position in a sequence (llama.h `llama_pos`).
pub type Pos = i32;
/// A sequence id (llama.h `llama_seq_id`).
pub type SeqId = i32;
