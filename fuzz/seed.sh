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
# Tokenizer inputs: the shared vocab test strings, in 512-byte pieces (the first byte of each
# input selects vocab and flags, so any split works).
mkdir -p corpus/tokenize corpus/detokenize corpus/decode
for f in "$shared"/vocab/extra/*.inp "$shared"/vocab/*.inp; do
  split -b 512 -d -a 4 "$f" "corpus/tokenize/$(basename "$f" .inp)-"
done
