#!/usr/bin/env python3
"""Load benchmark for an OpenAI-compatible server (bitnet serve, or llama-server for comparison).

    python3 crates/bitnet-server/bench/load.py --url http://127.0.0.1:8080 --streams 1,4,8 -n 64

For each stream count S, S clients each send R streaming completions of N tokens (prompts of the
same length; the generated-token count is the server's usage, so an early end of text counts
what was really generated). Prints a markdown table: aggregate generated tokens/s (all tokens of all
clients / wall time), median and worst time to first token. Standard library only.
"""

import argparse
import json
import statistics
import threading
import time
import urllib.request


def one(url, key, prompt, n, seed):
    body = {"prompt": prompt, "max_tokens": n, "temperature": 0.8, "seed": seed, "stream": True,
            "stream_options": {"include_usage": True}}
    req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    t0 = time.perf_counter()
    ttft, tokens, pieces = None, 0, 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            ev = json.loads(line[6:])
            # OpenAI events carry choices[0].text; older llama-servers (bitnet.cpp's fork)
            # answer /v1/completions with their native events: content, then tokens_predicted.
            text = ev["choices"][0].get("text") if ev.get("choices") else ev.get("content")
            if text:
                pieces += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
            if ev.get("usage"):
                tokens = ev["usage"]["completion_tokens"]
            elif ev.get("stop") is True and "tokens_predicted" in ev:
                tokens = ev["tokens_predicted"]
    return ttft or 0.0, tokens or pieces


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--api-key")
    ap.add_argument("--streams", default="1,4,8")
    ap.add_argument("-n", type=int, default=64, help="tokens per request")
    ap.add_argument("-r", type=int, default=2, help="requests per client")
    ap.add_argument("-p", type=int, default=32, help="prompt words")
    a = ap.parse_args()
    one(a.url, a.api_key, "warm up", 4, 0)
    print("| streams | requests | gen tokens | wall s | aggregate tok/s | TTFT median ms | TTFT max ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for s in [int(x) for x in a.streams.split(",")]:
        results = []
        lock = threading.Lock()

        def client(c):
            for r in range(a.r):
                prompt = " ".join(f"word{(c * 31 + r * 7 + i) % 97}" for i in range(a.p))
                res = one(a.url, a.api_key, prompt, a.n, c * 100 + r)
                with lock:
                    results.append(res)

        t0 = time.perf_counter()
        ts = [threading.Thread(target=client, args=(c,)) for c in range(s)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        toks = sum(r[1] for r in results)
        ttfts = [r[0] * 1e3 for r in results]
        print(f"| {s} | {len(results)} | {toks} | {wall:.2f} | {toks / wall:.1f} | "
              f"{statistics.median(ttfts):.0f} | {max(ttfts):.0f} |")


if __name__ == "__main__":
    main()
