"""Fuzzing the HTTP routes: random and malformed bodies never give a 5xx.

Every response must be a 2xx or a 4xx in the one error envelope. One server
(real models: all-MiniLM and a tiny random-weight RWKV-7 World model) serves all
examples of a test; hypothesis draws the bodies.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_helpers import assert_error, embedder, generator, world_ckpt  # noqa: F401
from sutra_fast.server import ServerConfig, create_app

ROUTES = ["/v1/embeddings", "/embed", "/v1/completions", "/generate"]
FIELDS = ["input", "texts", "prompt", "model", "dimensions", "encoding_format", "normalize",
          "target_dimension", "max_tokens", "temperature", "top_p", "top_k", "stop", "seed",
          "stream", "stop_sequences", "user", "n", "presence_penalty", "frequency_penalty"]
HUGE = st.sampled_from([2**31, 2**63, 2**64, 10**100, -2**63, 1e308, -1e308, 1e-320])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 50), HUGE,
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=30), st.sampled_from(["float", "base64", "", "x"]))
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), kids,
                                                                            max_size=4)),
                           max_leaves=12)
bodies = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=7)


class Server:
    """One server on its own event loop thread; ``post`` is synchronous."""

    def __init__(self, app):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        async def start():
            client = TestClient(TestServer(app))
            await client.start_server()
            return client
        self.client = self._call(start())

    def _call(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def post(self, path, **kw):
        async def go():
            resp = await self.client.post(path, **kw)
            return resp.status, await resp.read()
        return self._call(go())

    def close(self):
        self._call(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(embedder, generator):  # noqa: F811
    cfg = ServerConfig(embeddings=True, max_tokens_limit=16, default_max_tokens=8,
                       max_body_bytes=256 * 1024)
    s = Server(create_app(cfg, embedder=embedder, generator=generator))
    yield s
    s.close()


def check(status: int, raw: bytes) -> None:
    assert status < 500, (status, raw[:500])
    if status >= 400:
        assert_error(status, json.loads(raw), status)


FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies)
def test_random_json_objects(server, route, body):
    if isinstance(body.get("stream"), bool) or body.get("stream"):
        body["stream"] = False  # streams are fuzzed below; a 200 stream's status comes first
    check(*server.post(route, json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), body=json_values)
def test_random_json_documents(server, route, body):
    check(*server.post(route, json=body))


@FUZZ
@given(route=st.sampled_from(ROUTES), raw=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"{", b"}", b"[", b"null", b"{\"input\": ", b"\xff\xfe", b"{\"prompt\": NaN}",
                     b"{\"input\": \"a\", \"input\": 3}", b"{\"texts\": [\"\\ud800\"]}",
                     b"{\"prompt\": \"\\udc80\", \"max_tokens\": 2}", b"1e999"])))
def test_malformed_bodies(server, route, raw):
    check(*server.post(route, data=raw, headers={"Content-Type": "application/json"}))


@pytest.mark.parametrize("depth", [10, 900, 1000, 100_000])
@pytest.mark.parametrize("route", ROUTES)
def test_deep_nesting(server, route, depth):
    key = {"/v1/embeddings": "input", "/embed": "texts"}.get(route, "prompt")
    raw = b'{"' + key.encode() + b'": ' + b"[" * depth + b"]" * depth + b"}"
    check(*server.post(route, data=raw, headers={"Content-Type": "application/json"}))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/v1/completions", "/generate"]),
       body=st.dictionaries(st.sampled_from(["max_tokens", "temperature", "top_p", "top_k", "seed",
                                             "stop", "stop_sequences"]), json_values, max_size=4))
def test_streamed_generation_bodies(server, route, body):
    body.update(prompt="Hello", stream=True)
    status, raw = server.post(route, json=body)
    check(status, raw if status >= 400 else b"{}")
    if status == 200:  # the stream ends properly, with no error event in it
        text = raw.decode()
        assert "Traceback" not in text
        if route == "/v1/completions":
            assert text.rstrip().endswith("data: [DONE]"), text[-300:]


def test_huge_values_in_valid_bodies(server):
    big = "word " * 200_000                       # 1 MB: over the 256 KB body limit -> 413
    for route, body in [("/v1/embeddings", {"input": big}), ("/embed", {"texts": [big]}),
                        ("/v1/completions", {"prompt": big}), ("/generate", {"prompt": big}),
                        ("/v1/embeddings", {"input": ["a"] * 100_000}),
                        ("/v1/embeddings", {"input": "a", "dimensions": 2**64}),
                        ("/embed", {"texts": ["a"], "target_dimension": -1}),
                        ("/v1/completions", {"prompt": "a", "max_tokens": 10**18}),
                        ("/v1/completions", {"prompt": "a", "seed": 2**64}),
                        ("/v1/completions", {"prompt": "a", "top_k": 2**63}),
                        ("/generate", {"prompt": [2**70], "max_tokens": 1})]:
        status, raw = server.post(route, json=body)
        check(status, raw)
        assert status >= 400, (route, str(body)[:80])
