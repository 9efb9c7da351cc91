//! llama.cpp's tokenizer test vectors in `../shared/vocab` (`.inp` / `.out` pairs), read the same
//! way by the Rust-API test (`vocab_vectors.rs`) and the C-API one (`vocab_only_capi.rs`).

use std::path::Path;

/// The vocabularies that have vectors.
pub const VOCABS: [&str; 4] = ["llama-bpe", "llama-spm", "gpt-2", "falcon"];

/// What ends each input in an `.inp` file.
pub const SEPARATOR: &[u8] = b"\n__ggml_vocab_test__\n";

/// The vector files of vocabulary `name` (paths under the shared data): (inputs, expected
/// ids, parse special tokens): llama.cpp's own set, then the extra plain and special sets.
pub fn sets(name: &str) -> [(String, String, bool); 3] {
    [
        (
            format!("vocab/ggml-vocab-{name}.gguf.inp"),
            format!("vocab/ggml-vocab-{name}.gguf.out"),
            false,
        ),
        (
            format!("vocab/extra/ggml-vocab-{name}.inp"),
            format!("vocab/extra/ggml-vocab-{name}.out"),
            false,
        ),
        (
            format!("vocab/extra/ggml-vocab-{name}.special.inp"),
            format!("vocab/extra/ggml-vocab-{name}.special.out"),
            true,
        ),
    ]
}

/// Tests in an `.inp` file: each string is followed by the separator.
pub fn read_inputs(p: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(p).unwrap();
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(pos) = data[start..]
        .windows(SEPARATOR.len())
        .position(|w| w == SEPARATOR)
    {
        out.push(data[start..start + pos].to_vec());
        start += pos + SEPARATOR.len();
    }
    assert_eq!(
        start,
        data.len(),
        "{}: trailing bytes after the last separator",
        p.display()
    );
    out
}

/// The expected ids of an `.out` file, one line per input.
pub fn read_outputs(p: &Path) -> Vec<Vec<i32>> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect()
}
