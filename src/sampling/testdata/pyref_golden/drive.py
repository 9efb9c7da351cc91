#!/usr/bin/env python3
"""Replay the golden sampling traces with this crate's sampler chains on logits from the shared
numpy oracle (bit-exact with the reference), before the Rust model exists.

  cargo build --release --manifest-path src/sampling/testdata/pyref_golden/Cargo.toml
  python3 src/sampling/testdata/pyref_golden/drive.py SHARED_DIR MODEL[,MODEL] [LETTERS]

Per chain: reset the oracle's KV cache, decode the prompt as one batch, then 48 times: send the
last-position logits to the Rust sampler, read the token, decode it alone (as chains.md says).
Stops a chain at its first divergence. Prints one OK/DIFF line per trace.
"""
import os
import subprocess
import sys
import time

import numpy as np

shared = sys.argv[1]
sys.path.insert(0, os.path.join(shared, "tools/pyref"))
import model as M  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
tool = os.path.join(here, "target/release/pyref-golden-sampling")
gold = os.path.join(shared, "golden/sampling")
models = sys.argv[2].split(",")
letters = sys.argv[3] if len(sys.argv) > 3 else "abcdefgh"

for mname in models:
    m = M.Model(os.path.join(shared, "models/%s.gguf" % mname))
    for prompt in ["short_en", "code"]:
        for letter in letters:
            lines = open("%s/%s.%s.%s.trace" % (gold, mname, prompt, letter)).read().split("\n")
            ids = [int(x) for x in lines[0].split("ids=")[1].split(",")]
            expect = [int(l.split("id=")[1]) for l in lines[1:] if l.startswith("TOKEN")]
            m.reset()
            p = subprocess.Popen([tool, mname, letter], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            t0 = time.time()
            logits = m.forward(ids, 0)
            got = []
            for step in range(len(expect)):
                p.stdin.write(np.asarray(logits, dtype="<f4").tobytes())
                p.stdin.flush()
                got.append(int(p.stdout.readline()))
                if got[-1] != expect[step]:
                    break
                if step + 1 < len(expect):
                    logits = m.forward([got[-1]], len(ids) + step)
            p.stdin.close()
            p.wait()
            status = "OK" if got == expect else "DIFF at step %d: expected %d got %d" % (
                len(got) - 1, expect[len(got) - 1], got[-1])
            print("%s.%s.%s: %s (%.0fs)" % (mname, prompt, letter, status, time.time() - t0), flush=True)
