#!/usr/bin/env bash
# The library's Rust API documentation builds without warnings (broken or private intra-doc
# links, bad HTML in doc comments). About 1-2 min on 2 cores with the dependencies already
# compiled by the earlier steps (rustdoc of the bitnet crate only: --no-deps).
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p bitnet
