"""Shared fixtures and helpers for the server tests.

Every test runs a real server (aiohttp's TestServer on a free loopback port,
handler cancellation on, as in ``sutra-fast serve``) around already-loaded
models, so each test gets a fresh app (metrics, cache, limits) without paying
for model loading again.
"""
from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from aiohttp.test_utils import TestClient, TestServer

import rwkv_checkpoints as rc
import sutra_fast as sf
from sutra_fast.server import ServerConfig, create_app

WORLD_TINY = rc.WORLD_TINY


@pytest.fixture(scope="session")
def embedder(converted):
    return sf.Embedder.load(converted)


@pytest.fixture(scope="session")
def world_ckpt(tmp_path_factory):
    return rc.make_checkpoint(tmp_path_factory.mktemp("srv_world"), WORLD_TINY, seed=5, fmt="pth")


@pytest.fixture(scope="session")
def generator(world_ckpt):
    return sf.Generator.load(world_ckpt)


class GatedGenerator(sf.Generator):
    """The real model, but every forward call after the first ``free`` ones waits
    for ``gate``: the test decides when the generation may go on."""

    def __init__(self, base: sf.Generator, free: int):
        super().__init__(base._model, base._config, base.path)
        self.free = free
        self.calls = 0
        self.gate = threading.Event()
        self.lock = threading.Lock()

    def forward(self, token_ids, state):
        with self.lock:
            self.calls += 1
            n = self.calls
        if n > self.free:
            assert self.gate.wait(30), "test never opened the gate"
        return super().forward(token_ids, state)


def run(fn, config: ServerConfig | None = None, *, embedder=None, generator=None,
        app=None, timeout: float = 60):
    """Start a server, run ``await fn(client)``, stop the server; return fn's result."""
    async def main():
        the_app = app if app is not None else create_app(
            config or ServerConfig(embeddings=embedder is not None),
            embedder=embedder, generator=generator)
        async with TestClient(TestServer(the_app)) as client:
            return await asyncio.wait_for(fn(client), timeout)
    return asyncio.run(main())


def assert_error(resp_status: int, body: dict, status: int, code: str | None = None) -> dict:
    """The one error envelope: {"error": {"message", "type", "code"}}."""
    assert resp_status == status, body
    assert set(body) == {"error"}, body
    err = body["error"]
    assert {"message", "type", "code"} <= set(err), err
    assert isinstance(err["message"], str) and err["message"]
    assert "Traceback" not in err["message"]
    if code is not None:
        assert err["code"] == code, err
    return err


async def post_error(client, path: str, status: int, code: str | None = None, **kw) -> dict:
    resp = await client.post(path, **kw)
    body = await resp.json()
    assert resp.headers.get("X-Request-ID")
    err = assert_error(resp.status, body, status, code)
    if status in (429, 503) and code not in ("model_not_loaded", "model_unavailable"):
        assert int(resp.headers["Retry-After"]) >= 1
    return err


def metric(text: str, name: str, **labels) -> float:
    """One sample from Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == str(v) for k, v in labels.items()):
            return float(m.group(3))
    return 0.0


async def sse_events(resp):
    """Parsed `data:` payloads of an SSE response, as they arrive."""
    buf = b""
    async for chunk in resp.content.iter_any():
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            for line in event.decode().splitlines():
                if line.startswith("data: "):
                    data = line[6:]
                    yield data if data == "[DONE]" else json.loads(data)
