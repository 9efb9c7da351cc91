"""The server against the official `openai` Python client (and raw HTTP for what it hides).

Run by .ci/server.sh: BITNET_BIN is the `bitnet` tool (run as `bitnet serve`), BITNET_SERVER_MODEL
a GGUF file.
Each fixture starts its own server on a free port and stops it with SIGTERM.
"""

import base64
import ctypes
import json
import math
import os
import re
import signal
import struct
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
        # Notices (such as the I2_S layout one) may come before the listening line.
        lines = []
        for _ in range(20):
            line = self.proc.stderr.readline()
            lines.append(line)
            m = re.search(r"listening on (http://[0-9.:]+)", line)
            if m or not line:
                break
        assert m, f"server did not start: {lines!r}"
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


def test_json_schema_output_parses_and_matches(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"},
                                               "tag": {"enum": ["red", "green"]}},
              "required": ["ok", "n", "tag"], "additionalProperties": False}
    r = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Give JSON."}], max_tokens=200, seed=5,
        response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": schema}})
    assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
    v = json.loads(r.choices[0].message.content)
    assert set(v) == {"ok", "n", "tag"}
    assert isinstance(v["ok"], bool) and isinstance(v["n"], int) and v["tag"] in ("red", "green")
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], max_tokens=5,
            response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "nope"}}})


def test_gbnf_grammar(server):
    status, body = server.raw("POST", "/v1/completions", {"prompt": "Answer:", "max_tokens": 20, "seed": 3,
                                                          "grammar": 'root ::= ("yes" | "no") "."'})
    assert status == 200 and body["choices"][0]["text"] in ("yes.", "no.")
    status, body = server.raw("POST", "/v1/completions", {"prompt": "Answer:", "grammar": "root ::= foo"})
    assert status == 400 and body["error"]["param"] == "grammar"


# ---- /v1/embeddings ------------------------------------------------------------------------

LIB = os.environ.get("BITNET_LIB", "target/release/libbitnet.so")
HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "include", "bitnet.h")


def _f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _normalize(v):
    """llama.cpp's common_embd_normalize(.., 2) in float32 steps: float squares summed in a double,
    sqrt, norm = (float)(1.0 / sum), (float)(x * norm)."""
    total = 0.0
    for x in v:
        total += _f32(x * x)
    total = math.sqrt(total)
    norm = _f32(1.0 / total) if total > 0 else 0.0
    return [_f32(x * norm) for x in v]


def _c_struct(name):
    """A ctypes Structure for `struct NAME` as include/bitnet.h declares it (read from the header,
    so it follows the header's fields)."""
    text = re.sub(r"/\*.*?\*/", "", open(HEADER).read(), flags=re.S)
    body = re.search(r"struct %s \{(.*?)\};" % name, text, re.S).group(1)
    simple = {"uint32_t": ctypes.c_uint32, "int32_t": ctypes.c_int32, "bool": ctypes.c_bool,
              "float": ctypes.c_float, "size_t": ctypes.c_size_t, "int8_t": ctypes.c_int8,
              "uint64_t": ctypes.c_uint64, "int64_t": ctypes.c_int64, "double": ctypes.c_double}
    fields = []
    for decl in body.split(";"):
        decl = " ".join(decl.split())
        if not decl:
            continue
        m = re.match(r"(.*?)(\w+)(\[(\d+)\])?$", decl)
        ctype, field = m.group(1).strip(), m.group(2)
        if "*" in ctype or ctype.endswith("_callback") or ctype.endswith("_fn"):
            t = ctypes.c_void_p
        elif ctype.startswith("enum "):
            t = ctypes.c_int
        else:
            t = simple[ctype.replace("const ", "")]
        if m.group(4):
            t = t * int(m.group(4))
        fields.append((field, t))
    return type(name, (ctypes.Structure,), {"_fields_": fields})


def library_embedding(text, pooling=1, n_tokens=512):
    """The library's pooled embedding of `text` through the C API, in the context the server uses
    (docs/embeddings.md: n_ctx = n_batch = n_ubatch = --batch-size, one sequence), normalized as
    the server does."""
    lib = ctypes.CDLL(LIB)
    MP, CP, B = _c_struct("bitnet_model_params"), _c_struct("bitnet_context_params"), _c_struct("bitnet_batch")
    lib.bitnet_model_default_params.restype = MP
    lib.bitnet_context_default_params.restype = CP
    lib.bitnet_model_load_from_file.restype = ctypes.c_void_p
    lib.bitnet_model_load_from_file.argtypes = [ctypes.c_char_p, MP]
    lib.bitnet_model_get_vocab.restype = ctypes.c_void_p
    lib.bitnet_model_get_vocab.argtypes = [ctypes.c_void_p]
    lib.bitnet_model_n_embd.argtypes = [ctypes.c_void_p]
    lib.bitnet_init_from_model.restype = ctypes.c_void_p
    lib.bitnet_init_from_model.argtypes = [ctypes.c_void_p, CP]
    lib.bitnet_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_bool, ctypes.c_bool]
    lib.bitnet_batch_get_one.restype = B
    lib.bitnet_batch_get_one.argtypes = [ctypes.POINTER(ctypes.c_int32), ctypes.c_int32]
    lib.bitnet_decode.argtypes = [ctypes.c_void_p, B]
    lib.bitnet_pooling_type.argtypes = [ctypes.c_void_p]
    lib.bitnet_get_embeddings_seq.restype = ctypes.POINTER(ctypes.c_float)
    lib.bitnet_get_embeddings_seq.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.bitnet_free.argtypes = [ctypes.c_void_p]
    lib.bitnet_model_free.argtypes = [ctypes.c_void_p]

    model = lib.bitnet_model_load_from_file(MODEL.encode(), lib.bitnet_model_default_params())
    assert model
    cp = lib.bitnet_context_default_params()
    cp.n_ctx = cp.n_batch = cp.n_ubatch = n_tokens
    cp.n_seq_max = 1
    cp.embeddings = True
    cp.pooling_type = pooling
    ctx = lib.bitnet_init_from_model(model, cp)
    assert ctx
    try:
        assert lib.bitnet_pooling_type(ctx) == pooling
        raw = text.encode()
        toks = (ctypes.c_int32 * 1024)()
        n = lib.bitnet_tokenize(lib.bitnet_model_get_vocab(model), raw, len(raw), toks, 1024, True, True)
        assert n > 0
        assert lib.bitnet_decode(ctx, lib.bitnet_batch_get_one(toks, n)) == 0
        e = lib.bitnet_get_embeddings_seq(ctx, 0)
        assert e
        return n, _normalize([e[i] for i in range(lib.bitnet_model_n_embd(model))])
    finally:
        lib.bitnet_free(ctx)
        lib.bitnet_model_free(model)


def test_embeddings_string_list_and_base64(client):
    one = client.embeddings.create(model="m", input="The quick brown fox")
    assert one.object == "list" and len(one.data) == 1 and one.data[0].index == 0
    v = one.data[0].embedding
    assert len(v) == 256  # the model's n_embd
    assert abs(math.sqrt(sum(x * x for x in v)) - 1.0) < 1e-5  # normalized as llama-server's
    assert one.usage.prompt_tokens == one.usage.total_tokens > 1

    many = client.embeddings.create(model="m", input=["The quick brown fox", "jumps over", "the lazy dog"])
    assert [d.index for d in many.data] == [0, 1, 2]
    assert many.data[0].embedding == v  # each input alone: the same vector whatever the request
    assert many.data[1].embedding != v
    assert many.usage.prompt_tokens > one.usage.prompt_tokens

    # base64 asked for explicitly: the client hands the string over; the same float32 values, bit
    # for bit, little-endian. (Without encoding_format the client asks for base64 itself and
    # decodes it: `v` above came that way; the JSON float list must give the same values.)
    b64 = client.embeddings.create(model="m", input="The quick brown fox", encoding_format="base64")
    raw = base64.b64decode(b64.data[0].embedding)
    assert list(struct.unpack("<%df" % (len(raw) // 4), raw)) == v
    status, body = client_raw(client, {"input": "The quick brown fox", "encoding_format": "float"})
    assert status == 200 and body["data"][0]["embedding"] == v and body["model"]

    # Token ids, and lists of them, are accepted as OpenAI's API allows.
    toks = client.embeddings.create(model="m", input=[[128000, 791, 4062], [128000, 791]])
    assert len(toks.data) == 2 and toks.usage.prompt_tokens == 5
    single = client.embeddings.create(model="m", input=[128000, 791, 4062])
    assert single.data[0].embedding == toks.data[0].embedding

    # dimensions: only the model's own width.
    assert len(client.embeddings.create(model="m", input="x", dimensions=256).data[0].embedding) == 256
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="m", input="x", dimensions=64)
    assert e.value.body["param"] == "dimensions"


def client_raw(client, body):
    url = str(client.base_url).rstrip("/") + "/embeddings"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {KEY}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_embedding_equals_the_librarys(client):
    text = "BitNet b1.58 is a ternary model."
    n, want = library_embedding(text)
    got = client.embeddings.create(model="m", input=text)
    assert got.usage.prompt_tokens == n
    assert got.data[0].embedding == want  # bit for bit (float32 values)


def test_embeddings_bad_requests(server):
    for body, param in [({"input": []}, "input"), ({"input": ""}, "input"), ({"input": [[]]}, "input"),
                        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
                        ({"input": "x", "dimensions": 0}, "dimensions")]:
        status, resp = server.raw("POST", "/v1/embeddings", body)
        assert status == 400 and resp["error"]["param"] == param, (body, resp)
    status, resp = server.raw("POST", "/v1/embeddings", {"input": [[999999999]]})
    assert status == 400 and "vocabulary" in resp["error"]["message"]
    status, resp = server.raw("POST", "/v1/embeddings", {"input": ["a"] * 2049})
    assert status == 400 and resp["error"]["param"] == "input"
    status, resp = server.raw("POST", "/v1/embeddings", {"inputs": "typo"})
    assert status == 400
    status, resp = server.raw("POST", "/v1/embeddings", {"input": "x"}, key=None)
    assert status == 401


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
        status, body = s.raw("POST", "/v1/embeddings", {"input": "word " * 100}, key=None)
        assert status == 400 and body["error"]["code"] == "context_length_exceeded"
        status, body = s.raw("POST", "/v1/embeddings", {"input": "x" * 5000}, key=None)
        assert status == 413 and body["error"]["code"] == "request_too_large"
        status, body = s.raw("POST", "/v1/embeddings", {"input": "word " * 30}, key=None)
        assert status == 200 and len(body["data"][0]["embedding"]) == 256
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
