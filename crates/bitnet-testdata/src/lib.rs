//! Where tests find the shared data (`../shared`, or `BITNET_TEST_DATA`). A test whose data is
//! missing is skipped with a message, unless `BITNET_REQUIRE_TEST_DATA=1` (CI), where it fails.

use std::path::PathBuf;

/// The shared data directory.
pub fn root() -> PathBuf {
    match std::env::var_os("BITNET_TEST_DATA") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// True when missing test data must fail the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("BITNET_REQUIRE_TEST_DATA").is_ok_and(|v| v == "1")
}

/// `root()/rel` if it exists. Otherwise prints a skip message and returns `None`, or panics
/// when test data is required.
pub fn path(rel: &str) -> Option<PathBuf> {
    let p = root().join(rel);
    if p.exists() {
        return Some(p);
    }
    if required() {
        panic!(
            "test data {} is missing and BITNET_REQUIRE_TEST_DATA=1",
            p.display()
        );
    }
    eprintln!(
        "SKIPPED: test data {} is missing (set BITNET_TEST_DATA)",
        p.display()
    );
    None
}

/// The six shared tiny models, by file stem.
pub const MODELS: [&str; 6] = [
    "tiny-b158-i2_s",
    "tiny-b158-i2_s-q6k",
    "tiny-spm-f32",
    "tiny-spm-i2_s",
    "tiny-spm-tq2_0-q6k",
    "tiny-spm-tq1_0-q6k",
];
