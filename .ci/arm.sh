#!/usr/bin/env bash
# aarch64 under emulation (docs/portability.md): cross-build, clippy, the kernel tests under
# three qemu CPUs (NEON only, NEON + dotprod, everything), then golden traces, model and vocab
# tests under `-cpu max` with the i8mm variant (SMMLA for the multi-token I2_S product, SDOT for
# the rest). An unsupported instruction is a SIGILL under qemu, so a wrong dispatch fails here
# as a crash.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
T=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$T" || rustup target add "$T"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export BITNET_REQUIRE_TEST_DATA=1
export BITNET_TEST_DATA="${BITNET_TEST_DATA:-$(cd .. && pwd)/shared}"
# The 128256 x 2560 head comparison takes minutes under emulation; the same kernels are
# compared with scalar on every other shape.
export BITNET_SKIP_BIG_TESTS=1
runner() { export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu $1 -L /usr/aarch64-linux-gnu"; }
t0=$SECONDS

# The library only: tests written for x86 may hold casts that are no-ops where c_char is u8.
cargo clippy --release --target "$T" --lib -- -D warnings
cargo test --release --target "$T" --lib --no-run
echo "arm: build $((SECONDS - t0)) s"

# cortex-a72: NEON only (neither the dotprod nor the i8mm table may be handed out);
# neoverse-n1: dotprod without i8mm; max: dotprod, i8mm, SVE. The variant tests compare every
# available table with scalar. BITNET_CALIBRATE=0: the default table is not timed under
# emulation (about a minute per CPU, meaningless there); the calibration's own unit test runs.
for cpu in cortex-a72 neoverse-n1 max; do
  t=$SECONDS
  runner "$cpu"
  BITNET_CALIBRATE=0 cargo test --release --target "$T" --lib kernels
  echo "arm: kernel tests under -cpu $cpu $((SECONDS - t)) s"
done

# The whole model on the best ARM variant. Golden traces of two of the six tiny models (all six
# pass but took 41 min emulated on a loaded 2-core box): tiny-spm-i2_s (I2_S layers, F16 head,
# F16 attention) and tiny-spm-tq1_0-q6k (TQ1_0 layers, Q6_K head); the others share these
# kernels (TQ2_0 and F32 are covered by the kernel tests). BITNET_ARM_GOLDEN=all runs all six.
t=$SECONDS
runner max
export BITNET_KERNEL=i8mm
# CI keeps to one golden model (and leaves the model and vocab tests to BITNET_ARM_FULL=1) so the
# whole .ci/run stays within its time budget on 2 cores.
if [ "${BITNET_ARM_GOLDEN:-}" = all ]; then
  cargo test --release --target "$T" --test golden_traces golden_tiny
else
  cargo test --release --target "$T" --test golden_traces -- --exact golden_tiny_spm_i2_s
fi
if [ "${BITNET_ARM_FULL:-}" = 1 ]; then
  cargo test --release --target "$T" --test model_context --test vocab_vectors
fi
echo "arm: golden traces + model + vocab under -cpu max (i8mm) $((SECONDS - t)) s"
echo "arm: total $((SECONDS - t0)) s"
