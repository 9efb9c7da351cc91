#!/usr/bin/env bash
# Installs what the grammar tests need (tests/grammar_generate.rs validates generated JSON with
# python3 + the jsonschema package). Run by .ci/run before `cargo test`; takes a few seconds
# (nothing when already installed). The tests themselves take about 30 s on 2 cores.
set -euo pipefail
if python3 -c 'import jsonschema' >/dev/null 2>&1; then
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq python3 >/dev/null
fi
python3 -m pip install --quiet jsonschema >/dev/null 2>&1 \
  || python3 -m pip install --quiet --break-system-packages jsonschema >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y -qq python3-jsonschema >/dev/null; }
python3 -c 'import jsonschema' || { echo "grammar.sh: could not install python jsonschema"; exit 1; }
