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
# State reader: the first byte picks whole/sequence state, raw or damaged valid blob, and the
# target context (1 sequence, 8 cells); then 3-byte damage ops (kind, offset, value).
mkdir -p corpus/state
printf '\x02' > corpus/state/valid-whole
printf '\x04' > corpus/state/valid-whole-2
printf '\x03' > corpus/state/valid-seq
printf '\x12' > corpus/state/valid-into-one-seq
printf '\x22' > corpus/state/valid-into-8-cells
printf '\x13' > corpus/state/seq-into-one-seq
printf '\x02\x01\x06\x04\x01\x07\x06' > corpus/state/extreme-fields
printf '\x02\x03\x05\x00' > corpus/state/trailing-bytes
printf '\x02\x02\x09\x00' > corpus/state/cut-short
printf 'BNST\x01\x00\x00\x00' > corpus/state/raw-header
# Positions: 6-byte ops (kind, sequence, values; see fuzz_targets/positions.rs `value`:
# 0x20 is INT32_MAX, 0x40 is -1, 0x60 is INT32_MIN).
mkdir -p corpus/positions
printf '\x00\x01\x20\x00\x05\x00\x02\x01\x07\x00\x00\x00' > corpus/positions/at-int32-max-then-next
printf '\x00\x01\x05\x01\x05\x01\x04\x01\x00\x40\x20\x00\x02\x01\x07\x00\x00\x00' > corpus/positions/add-int32-max
printf '\x00\x01\x05\x03\x05\x01\x05\x01\x00\x40\x60\x00' > corpus/positions/div-int32-min
printf '\x00\x01\x21\x03\x05\x01\x07\x00\x00\x00\x00\x00\x02\x01\x09\x01\x00\x00' > corpus/positions/state-near-max
printf '\x00\x01\x80\x03\x05\x01\x04\x01\x00\x40\x80\x00\x04\x01\x00\x40\xc0\x00' > corpus/positions/add-middle-twice
printf '\x00\x04\x05\x02\x05\x01\x06\x00\x00\x40\x03\x01' > corpus/positions/seq-past-max
