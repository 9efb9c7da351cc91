#!/usr/bin/env bash
# Builds seed corpora under fuzz/corpus/ from the shared data (not committed).
set -euo pipefail
cd "$(dirname "$0")"
shared="${BITNET_TEST_DATA:-$(cd ../.. && pwd)/shared}"
mkdir -p corpus/gguf_parse
# GGUF headers (metadata + tensor directory) of the shared files, cut to 64 KiB, plus one
# whole small file made by the project's generator is too large; headers exercise the parser.
for f in "$shared"/models/*.gguf "$shared"/vocab/*.gguf; do
  head -c 65536 "$f" > "corpus/gguf_parse/$(basename "$f").head"
done
