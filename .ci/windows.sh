#!/usr/bin/env bash
# Windows (x86_64-pc-windows-gnu, MinGW-w64) from this Linux box (docs/portability.md): clippy
# and a release build of the library and the CLI, then a check that bitnet.dll exports every
# function include/bitnet.h declares and that the import library exists. Tests do not run here
# (no Windows runner; wine was not tried in CI).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1 || {
  apt-get update -qq && apt-get install -y -qq gcc-mingw-w64-x86-64 >/dev/null
}
T=x86_64-pc-windows-gnu
rustup target list --installed | grep -qx "$T" || rustup target add "$T"
t0=$SECONDS

cargo clippy --release --target "$T" --lib --bins -- -D warnings
cargo build --release --target "$T" --lib --bins
out="target/$T/release"
for f in bitnet.dll libbitnet.dll.a libbitnet.a bitnet.exe; do
  [ -f "$out/$f" ] || { echo "windows: $out/$f was not built"; exit 1; }
done
declared=$(grep -o '\bbitnet_[a-z0-9_]*(' include/bitnet.h | tr -d '(' | sort -u)
exported=$(x86_64-w64-mingw32-objdump -p "$out/bitnet.dll" | grep -o '\bbitnet_[a-z0-9_]*$' | sort -u)
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
if [ -n "$missing" ]; then
  echo "windows: bitnet.dll does not export:"; echo "$missing"; exit 1
fi
echo "windows: bitnet.dll exports all $(echo "$declared" | wc -l) functions of bitnet.h ($((SECONDS - t0)) s)"
