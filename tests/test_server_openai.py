"""The official `openai` Python client against a real `sutra-fast serve` process.

Embeddings (float, base64, dimensions) are compared with the in-process
Embedder; completions and chat, plain and streamed, with the in-process
Generator (greedy, so the text is deterministic).
"""
from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

import sutra_fast as sf
from server_helpers import embedder, generator, world_ckpt  # noqa: F401

MODEL = "tiny-world"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, converted, world_ckpt):  # noqa: F811
    port = _free_port()
    tmp = tmp_path_factory.mktemp("openai_server")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                         env.get("PYTHONPATH", "")])
    env["SUTRA_CACHE_DIR"] = str(tmp / "cache")
    log = open(tmp / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
         "--embed-model", str(converted), "--rwkv-model", str(world_ckpt),
         "--rwkv-model-id", MODEL, "--api-key", "s3cret"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, "server died at start: " + (tmp / "server.log").read_text()
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "server not healthy in 90 s"
        time.sleep(0.2)
    yield base
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    log.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="s3cret", max_retries=0)


def test_embeddings_float_base64_and_dimensions(client, embedder):  # noqa: F811
    texts = ["The quick brown fox.", "Sutra embeds text in-process.", "ünïcödé ✓"]
    want = embedder.embed(texts)
    got = client.embeddings.create(model="default", input=texts)
    assert [d.index for d in got.data] == [0, 1, 2]
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-6)
    assert got.usage.prompt_tokens > 0 and got.model

    # Asked for explicitly, base64 comes back as the raw little-endian float32 bytes.
    b64 = client.embeddings.create(model="default", input=texts, encoding_format="base64")
    decoded = np.array([np.frombuffer(base64.b64decode(d.embedding), "<f4") for d in b64.data])
    np.testing.assert_allclose(decoded, want, atol=1e-6)
    short = client.embeddings.create(model="default", input=texts[0], dimensions=64)
    np.testing.assert_allclose(np.array(short.data[0].embedding),
                               embedder.embed(texts[:1], dimensions=64)[0], atol=1e-6)


def test_completions_plain_and_streamed(client, generator):  # noqa: F811
    want = generator.generate("Hello", max_tokens=12, temperature=0.0)
    got = client.completions.create(model=MODEL, prompt="Hello", max_tokens=12, temperature=0)
    assert got.choices[0].text == want.text
    assert got.choices[0].finish_reason == want.finish_reason
    assert got.usage.completion_tokens == len(want.tokens)

    stream = client.completions.create(model=MODEL, prompt="Hello", max_tokens=12, temperature=0,
                                       stream=True)
    pieces = [c.choices[0].text for c in stream if c.choices]
    assert "".join(pieces) == want.text


def test_chat_plain_and_streamed(client, generator):  # noqa: F811
    messages = [{"role": "user", "content": "Say hi"}]
    want = generator.chat(messages, max_tokens=10, temperature=0.0)
    got = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10,
                                         temperature=0)
    assert got.choices[0].message.role == "assistant"
    assert got.choices[0].message.content == want.text

    stream = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10,
                                            temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == want.text


def test_errors_reach_the_client_as_api_errors(client, server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server + "/v1", api_key="wrong", max_retries=0).embeddings.create(
            model="default", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="default", input=[])
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model=MODEL, prompt="x", max_tokens=-5)
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    models = client.models.list()
    assert MODEL in [m.id for m in models.data]
