#!/usr/bin/env python3
"""Where a decode step and a prompt batch spend their time, by stage (perf sampling).

    python3 bench/profile.py -m model.gguf [-t 1] [--bin target/release/bitnet] [--head-q8]

Runs `bitnet bench` twice under `perf record` (cpu-clock, so it works in a VM without hardware
counters): tg only (`-p 0 -n 64`) and pp only (`-p 128 -n 0`), then sorts the samples' symbols
into the forward pass's stages and prints one markdown table per run. Samples outside the forward
pass (the bench's bandwidth read loop, loading, and time in the OS kernel, mostly the page faults
of the first touch of the mapped file) are counted apart and left out of the percentages. Needs `perf` (Debian's
`linux-perf`) and a binary with symbols (the release profile keeps them).
"""

import argparse
import re
import subprocess
import sys
import tempfile

# (stage, pattern on the demangled symbol), first match wins. Kernel names are those of
# src/kernels (scalar, c, x86/avx2, x86/avx512, aarch64); the forward's own stages are
# src/model/forward.rs and src/model/invariant.rs.
STAGES = [
    ("harness: bandwidth loop", r"kernels::tune::"),
    # A warmed-up decode step does not allocate (tests/decode_allocations.rs): malloc and
    # memcmp (the vocabulary's tables) are loading.
    ("harness: load, vocab", r"bitnet::vocab::|bitnet::gguf::|BpeTables|::load|make_model|"
     r"malloc|_int_|cfree|realloc|rust_dealloc|memcmp|RawVec|from_utf8"),
    ("I2_S matvec / product", r"i2s|ternary::i2|I2S"),
    ("TQ1_0 / TQ2_0", r"tq1|tq2|TQ1|TQ2"),
    ("head: F16", r"f16_ggml_matmul|f16_four_rows|f16_two_rows|f16_rows|F16PerToken|"
     r"dot_f16_ggml\b"),
    ("head: Q8_0", r"q8_0|Q8_0"),
    ("head: Q6_K", r"q6k|q6_k|Q6K"),
    ("attention (Q·K, P·V, softmax)", r"strided|attention|softmax|soft_max|tinyblas|f16_group|"
     r"f16_row_group|invariant::"),
    ("activation quantization", r"quantize"),
    ("RMSNorm, RoPE, activations, residual", r"rms|rope|norm|silu|relu|residual"),
    ("scatter to token-major", r"scatter"),
    ("threads (rayon)", r"rayon|crossbeam"),
    ("memcpy, memset", r"memset|memcpy|memmove"),
]


def stage_of(sym, kernel_space):
    if kernel_space:
        return "harness: OS kernel"
    for name, pat in STAGES:
        if re.search(pat, sym):
            return name
    return "other (inlined iterator code, control)"


def profile(bin_, model, threads, args, extra):
    with tempfile.NamedTemporaryFile(suffix=".data") as f:
        cmd = ["perf", "record", "-q", "-F", "1999", "-o", f.name, "--", bin_, "bench", "-m",
               model, "-t", str(threads)] + args + extra
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rep = subprocess.run(["perf", "report", "-i", f.name, "--no-children", "--sort", "symbol",
                              "-q", "-F", "overhead,sym"], check=True, capture_output=True,
                             text=True).stdout
    shares, syms = {}, []
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[([.k])\]\s+(.*\S)", line)
        if m:
            st = stage_of(m.group(3), m.group(2) == "k")
            shares[st] = shares.get(st, 0.0) + float(m.group(1))
            syms.append((float(m.group(1)), st, m.group(3)))
    syms.sort(key=lambda x: -x[0])
    return shares, syms


def table(title, shares):
    fwd = {k: v for k, v in shares.items() if not k.startswith("harness")}
    total = sum(fwd.values()) or 1.0
    out = [f"{title}", "", "| stage | share of the forward pass |", "|---|---:|"]
    for k, v in sorted(fwd.items(), key=lambda kv: -kv[1]):
        out.append(f"| {k} | {100 * v / total:.1f}% |")
    left = sum(v for k, v in shares.items() if k not in fwd)
    out.append(f"\n(left out: {left:.1f}% of all samples: the bench's bandwidth loop, loading, "
               "and time in the OS kernel, mostly first-touch page faults of the mapped file)\n")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", "--threads", type=int, default=1)
    ap.add_argument("--bin", default="target/release/bitnet")
    ap.add_argument("--head-q8", action="store_true")
    ap.add_argument("--symbols", type=int, default=0,
                    help="also list this many top symbols with the stage each was put in")
    a = ap.parse_args()
    extra = ["--head-q8"] if a.head_q8 else []
    runs = [("Decode step (tg64", ["-p", "0", "-n", "64", "-r", "5"]),
            ("Prompt batch (pp128", ["-p", "128", "-n", "0", "-r", "10"])]
    for title, args in runs:
        shares, syms = profile(a.bin, a.model, a.threads, args, extra)
        print(table(f"### {title}, {a.threads} thread(s))", shares))
        for pct, st, sym in syms[:a.symbols]:
            print(f"    {pct:6.2f}%  {st:40.40}  {sym[:90]}")


if __name__ == "__main__":
    sys.exit(main())
