#!/usr/bin/env bash
# Windows (x86_64-pc-windows-gnu, MinGW-w64) from this Linux box (docs/portability.md): clippy
# and a release build of the library and the CLI, then a check that bitnet.dll exports every
# function include/bitnet.h declares and that the import library exists, then the library's
# unit tests and the golden traces under Debian's wine (BITNET_WINE=0 skips them).
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
# The CMake package as installed for Windows (DLL in bin/, import and static libraries in
# lib/), consumed through find_package(bitnet) by a C program linked both ways.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mingw=(-DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER=x86_64-w64-mingw32-gcc)
cmake -S . -B "$tmp/build" "${mingw[@]}" -DCMAKE_CXX_COMPILER=x86_64-w64-mingw32-gcc \
  -DCMAKE_CXX_COMPILER_WORKS=1 -DBITNET_PREBUILT_DIR="$PWD/$out" -DBITNET_BUILD_EXAMPLES=OFF >/dev/null
cmake --install "$tmp/build" --prefix "$tmp/prefix" >/dev/null
for f in bin/bitnet.dll lib/libbitnet.dll.a lib/libbitnet.a include/bitnet.h lib/cmake/bitnet/bitnetConfig.cmake; do
  [ -f "$tmp/prefix/$f" ] || { echo "windows: the install has no $f"; exit 1; }
done
mkdir "$tmp/consumer"
cat >"$tmp/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(bitnet REQUIRED)
add_executable(shared main.c)
target_link_libraries(shared bitnet::bitnet)
add_executable(static main.c)
target_link_libraries(static bitnet::bitnet_static)
CM
printf '#include <bitnet.h>\n#include <stdio.h>\nint main(void) { puts(bitnet_print_system_info()); return 0; }\n' \
  >"$tmp/consumer/main.c"
cmake -S "$tmp/consumer" -B "$tmp/consumer/build" "${mingw[@]}" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_FIND_ROOT_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/consumer/build" >/dev/null
echo "windows: bitnet.dll exports all $(echo "$declared" | wc -l) functions of bitnet.h ($((SECONDS - t0)) s)"

# The library's unit tests and the golden traces (six models) run under wine (Debian
# bookworm's wine64 8.0). Wine 8 has no bcryptprimitives.dll, which Rust's std imports
# (ProcessPrng): a MinGW-built stub forwarding to RtlGenRandom goes into the prefix's system32
# (.ci/wine/). About 2 minutes with the target directory warm, plus installing wine.
if [ "${BITNET_WINE:-1}" = 1 ]; then
  t=$SECONDS
  command -v wine >/dev/null 2>&1 || {
    apt-get update -qq && apt-get install -y -qq wine64 >/dev/null
  }
  export WINEPREFIX="$PWD/target/wine-prefix" WINEDEBUG=-all
  sys32="$WINEPREFIX/drive_c/windows/system32"
  if [ ! -f "$sys32/bcryptprimitives.dll" ]; then
    wineboot -i >/dev/null 2>&1 || true
    mkdir -p "$sys32"
    x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" \
      .ci/wine/bcryptprimitives.c .ci/wine/bcryptprimitives.def -ladvapi32
  fi
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
  export BITNET_REQUIRE_TEST_DATA=1 BITNET_SKIP_BIG_TESTS=1
  export BITNET_TEST_DATA="${BITNET_TEST_DATA:-$(cd .. && pwd)/shared}"
  cargo test --release --target "$T" -p bitnet --lib
  cargo test --release --target "$T" --test golden_traces
  echo "windows: lib tests + golden traces under wine $((SECONDS - t)) s"
fi
