#!/usr/bin/env bash
# The OpenAI-compatible server (crates/bitnet-server): its Rust tests, then the official `openai`
# Python client against servers started on a shared model (crates/bitnet-server/tests/test_openai.py).
# About 1-2 minutes on 2 cores after the main build (the server crate compiles tokio/axum once).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check openai pytest 2>&1 | grep -v "WARNING: Running pip as" || true

cargo clippy --release -p bitnet-server --all-targets -- -D warnings
cargo test --release -p bitnet-server
cargo build --release -p bitnet-server

export BITNET_SERVER_BIN="$PWD/target/release/bitnet-server"
export BITNET_SERVER_MODEL="${BITNET_TEST_DATA:-$(cd .. && pwd)/shared}/models/tiny-b158-i2_s-q6k.gguf"
test -f "$BITNET_SERVER_MODEL" || { echo "server CI: model $BITNET_SERVER_MODEL is missing"; exit 1; }
python3 -m pytest -q crates/bitnet-server/tests/test_openai.py
