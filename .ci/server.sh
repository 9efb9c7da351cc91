#!/usr/bin/env bash
# The OpenAI-compatible server (crates/bitnet-server; its Rust tests run in the main
# `cargo test`): the official `openai` Python client against `bitnet serve` started on a shared
# model (crates/bitnet-server/tests/test_openai.py). About 30 s after the main build.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check openai pytest 2>&1 | grep -v "WARNING: Running pip as" || true

cargo build --release --bin bitnet --lib

export BITNET_BIN="$PWD/target/release/bitnet"
# The embeddings test compares the server's vectors with the C API's (ctypes).
export BITNET_LIB="$PWD/target/release/libbitnet.so"
export BITNET_SERVER_MODEL="${BITNET_TEST_DATA:-$(cd .. && pwd)/shared}/models/tiny-b158-i2_s-q6k.gguf"
test -f "$BITNET_SERVER_MODEL" || { echo "server CI: model $BITNET_SERVER_MODEL is missing"; exit 1; }
python3 -m pytest -q crates/bitnet-server/tests/test_openai.py
