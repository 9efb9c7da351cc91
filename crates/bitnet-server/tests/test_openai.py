"""The server against the official `openai` Python client (and raw HTTP for what it hides).

Run by .ci/server.sh: BITNET_BIN is the `bitnet` tool (run as `bitnet serve`), BITNET_SERVER_MODEL
a GGUF file.
Each fixture starts its own server on a free port and stops it with SIGTERM.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

BIN = os.environ.get("BITNET_BIN", "target/release/bitnet")
MODEL = os.environ.get("BITNET_SERVER_MODEL", "../shared/models/tiny-b158-i2_s-q6k.gguf")
KEY = "test-key-123"


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", MODEL, "--port", "0", "-t", "2", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stderr.readline()
        m = re.search(r"listening on (http://[0-9.:]+)", line)
        assert m, f"server did not start: {line!r}"
        self.url = m.group(1)
        # Keep draining stderr so the server never blocks on it.
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)

    def raw(self, method, path, body=None, key=KEY, headers=None):
        """(status, parsed JSON or text) of one request."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except json.JSONDecodeError:
            return status, text


@pytest.fixture(scope="module")
def server():
    s = Server("--api-key", KEY, "-np", "4", "-c", "2048", "--max-queue", "32")
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)


def chat(client, content, seed, max_tokens=24, **kw):
    return client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}],
        seed=seed, max_tokens=max_tokens, temperature=0.9, **kw)


def chat_stream(client, content, seed, max_tokens=24):
    text, finish = "", None
    for ch in client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": content}],
            seed=seed, max_tokens=max_tokens, temperature=0.9, stream=True):
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            finish = ch.choices[0].finish_reason or finish
    return text, finish


def test_models(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [os.path.basename(MODEL)]


def test_chat_plain_equals_stream_for_the_same_seed(client):
    plain = chat(client, "Tell me a story.", seed=42)
    assert plain.choices[0].finish_reason == "length"
    assert plain.usage.completion_tokens == 24
    assert plain.usage.total_tokens == plain.usage.prompt_tokens + 24
    text = plain.choices[0].message.content
    assert text
    streamed, finish = chat_stream(client, "Tell me a story.", seed=42)
    assert streamed == text
    assert finish == "length"
    # Another seed gives another text (a random-weight model, but a 128k vocabulary).
    assert chat(client, "Tell me a story.", seed=43).choices[0].message.content != text


def test_stream_usage_chunk(client):
    chunks = list(client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=5, seed=1,
        stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].choices == []


def test_completions_with_stop(client):
    free = client.completions.create(model="m", prompt="The quick brown fox", max_tokens=16, temperature=0)
    text = free.choices[0].text
    assert free.choices[0].finish_reason == "length"
    # A stop string from the middle of the free text: the output ends right before it.
    stop = text[len(text) // 2: len(text) // 2 + 3]
    assert stop.strip(), text
    cut = client.completions.create(model="m", prompt="The quick brown fox", max_tokens=16, temperature=0,
                                    stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == text[: text.index(stop)]


def test_logprobs(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=4,
                                       temperature=0, logprobs=True, top_logprobs=3)
    lp = r.choices[0].logprobs.content
    assert len(lp) == 4
    for t in lp:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob)


def test_json_object_output_parses(client):
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Give JSON."}],
                                       max_tokens=200, seed=3, response_format={"type": "json_object"})
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_gbnf_grammar(server):
    status, body = server.raw("POST", "/v1/completions", {"prompt": "Answer:", "max_tokens": 20, "seed": 3,
                                                          "grammar": 'root ::= ("yes" | "no") "."'})
    assert status == 200 and body["choices"][0]["text"] in ("yes.", "no.")
    status, body = server.raw("POST", "/v1/completions", {"prompt": "Answer:", "grammar": "root ::= foo"})
    assert status == 400 and body["error"]["param"] == "grammar"


def test_embeddings_not_available_yet(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.embeddings.create(model="m", input="hello")
    assert e.value.status_code == 501
    assert e.value.body["type"] == "not_implemented_error"


def test_auth(server):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    status, body = server.raw("GET", "/v1/models", key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, body = server.raw("GET", "/health", key=None)
    assert status == 200 and body["status"] == "ok"


def test_bad_requests(server, client):
    status, body = server.raw("POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = server.raw("POST", "/v1/chat/completions", {"messages": "nope"})
    assert status == 400
    for bad in ({"temperature": 3}, {"max_tokens": 0}, {"top_logprobs": 50, "logprobs": True},
                {"logit_bias": {"999999999": 1}}, {"n": 2}, {"seed": -5}):
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                           **{"max_tokens": 4, **bad})
    status, body = server.raw("GET", "/nope")
    assert status == 404 and "error" in body


def test_tokenize_detokenize_props_slots_metrics(server):
    status, body = server.raw("POST", "/tokenize", {"content": "Hello world"})
    assert status == 200 and len(body["tokens"]) >= 2
    status, back = server.raw("POST", "/detokenize", {"tokens": body["tokens"]})
    assert status == 200 and back["content"] == "Hello world"
    status, props = server.raw("GET", "/props")
    assert props["total_slots"] == 4 and props["batch_invariant"] is True
    status, slots = server.raw("GET", "/slots")
    assert len(slots) == 4
    status, text = server.raw("GET", "/metrics")
    assert status == 200 and "bitnet_tokens_predicted_total" in text


def test_16_concurrent_streams_equal_their_solo_runs(client):
    prompts = [(f"Request number {i}: write about topic {i * 7}.", 100 + i) for i in range(16)]
    solo = [chat(client, p, seed=s, max_tokens=16).choices[0].message.content for p, s in prompts]
    results = [None] * 16

    def run(i):
        results[i] = chat_stream(client, prompts[i][0], prompts[i][1], max_tokens=16)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    for i in range(16):
        assert results[i] is not None, f"client {i} did not finish"
        assert results[i] == (solo[i], "length"), f"client {i} differs from its solo run"


def test_disconnect_frees_the_slot(server):
    req = urllib.request.Request(server.url + "/v1/completions", method="POST", data=json.dumps(
        {"prompt": "Once upon a time", "max_tokens": 400, "stream": True, "temperature": 0}).encode())
    req.add_header("Authorization", f"Bearer {KEY}")
    r = urllib.request.urlopen(req, timeout=30)
    got = 0
    while got < 3:
        if r.readline().startswith(b"data: "):
            got += 1
    r.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        _, slots = server.raw("GET", "/slots")
        if not any(s["is_processing"] for s in slots):
            break
        time.sleep(0.05)
    assert not any(s["is_processing"] for s in slots), slots
    _, text = server.raw("GET", "/metrics")
    assert re.search(r"^bitnet_requests_cancelled_total [1-9]", text, re.M), text


def test_limits_and_clean_exit():
    s = Server("-np", "1", "--max-queue", "1", "--max-body", "4096", "--max-prompt", "40",
               "--max-tokens-limit", "300")
    try:
        status, body = s.raw("POST", "/v1/completions", {"prompt": "x" * 5000}, key=None)
        assert status == 413 and body["error"]["code"] == "request_too_large"
        status, body = s.raw("POST", "/v1/completions", {"prompt": "word " * 100}, key=None)
        assert status == 400 and body["error"]["code"] == "context_length_exceeded"
        status, body = s.raw("POST", "/v1/completions", {"prompt": "a", "max_tokens": 301}, key=None)
        assert status == 400 and body["error"]["param"] == "max_tokens"
        # One request in the slot, one waiting: the next is refused with 429.
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="none", max_retries=0)
        streams = [c.completions.create(model="m", prompt="a", max_tokens=300, stream=True, temperature=0)]
        next(iter(streams[0]))
        streams.append(c.completions.create(model="m", prompt="a", max_tokens=300, stream=True, temperature=0))
        with pytest.raises(openai.RateLimitError):
            c.completions.create(model="m", prompt="a", max_tokens=5)
        # SIGTERM with requests in flight: the server ends them and exits cleanly.
        assert s.stop() == 0
        for st in streams:
            try:
                for _ in st:
                    pass
            except openai.APIError:
                pass
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
