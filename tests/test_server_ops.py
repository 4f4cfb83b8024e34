"""Server: /health, /info, /v1/models, /metrics, request ids, API key, routing errors,
the loading state, and config from flags/env."""
from __future__ import annotations

import argparse
import asyncio
import json
import threading

import pytest

import sutra_fast as sf
from server_helpers import embedder, generator, metric, post_error, run, world_ckpt  # noqa: F401
from sutra_fast.server import ServerConfig, create_app
from sutra_fast.server.config import add_arguments, from_args


def test_health_info_models(embedder, generator):
    async def go(client):
        out = {}
        for path in ("/health", "/info", "/v1/models"):
            resp = await client.get(path)
            assert resp.status == 200, path
            out[path] = await resp.json()
        return out
    out = run(go, ServerConfig(max_texts=100), embedder=embedder, generator=generator)
    h = out["/health"]
    assert h["status"] == "healthy" and h["model_loaded"] is True
    assert h["embedding"]["model_id"] == embedder.model_id
    info = out["/info"]
    assert info["version"] == sf.__version__
    assert info["embedding"]["dimension"] == embedder.dimension
    assert info["embedding"]["max_input_tokens"] == embedder.max_length
    assert info["limits"]["max_texts_per_request"] == 100
    assert info["generation"]["vocab_size"] == generator.vocab_size
    models = out["/v1/models"]
    assert models["object"] == "list"
    assert {m["id"] for m in models["data"]} == {embedder.model_id, generator.path.stem}
    assert all(m["object"] == "model" and "created" in m and "owned_by" in m for m in models["data"])


def test_metrics_text_and_request_ids(embedder):
    async def go(client):
        r1 = await client.post("/embed", json={"texts": ["a"]}, headers={"X-Request-ID": "abc-123"})
        r2 = await client.get("/nope")
        r3 = await client.get("/metrics")
        return r1.headers, r2.headers, r3.headers, await r3.text()
    h1, h2, h3, text = run(go, embedder=embedder)
    assert h1["X-Request-ID"] == "abc-123"  # a client's id is kept
    assert len(h2["X-Request-ID"]) == 32 and h2["X-Request-ID"] != h3["X-Request-ID"]
    assert h3["Content-Type"].startswith("text/plain")
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    assert names and all(n.startswith("sutra_") for n in names)
    assert metric(text, "sutra_requests_total", route="/embed", method="POST", status="200") == 1
    assert metric(text, "sutra_requests_total", route="unmatched", method="GET", status="404") == 1
    assert metric(text, "sutra_request_duration_seconds_count", route="/embed") == 1
    assert metric(text, "sutra_model_loaded", kind="embedding") == 1


def test_unknown_route_and_method():
    async def go(client):
        resp = await client.get("/v2/whatever")
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
        resp = await client.get("/v1/embeddings")
        assert resp.status == 405
        assert (await resp.json())["error"]["code"] == "method_not_allowed"
    run(go, ServerConfig(embeddings=False))


def test_api_key(embedder):
    async def go(client):
        assert (await client.get("/health")).status == 200  # stays open
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "nope"}):
            await post_error(client, "/embed", 401, "invalid_api_key", json={"texts": ["a"]},
                             headers=headers)
        resp = await client.get("/metrics")
        assert resp.status == 401
        for headers in ({"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}):
            resp = await client.post("/embed", json={"texts": ["a"]}, headers=headers)
            assert resp.status == 200
    run(go, ServerConfig(api_key="s3cret"), embedder=embedder)


async def _raw_request(client, head: bytes, body: bytes = b"") -> tuple[int, dict]:
    """One request written byte for byte (header values a client library would
    refuse to send), on a connection the server closes after answering."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_api_key_with_bytes_that_are_not_utf8(embedder):
    """A key header with non-UTF-8 bytes is a wrong key (401), not a 500."""
    async def go(client):
        for header in (b"X-API-Key: \xff", b"Authorization: Bearer s\xe9"):
            status, body = await _raw_request(
                client, b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + header + b"\r\n", b'{"texts": ["a"]}')
            assert status == 401 and body["error"]["code"] == "invalid_api_key", body
    run(go, ServerConfig(api_key="s3cret"), embedder=embedder)


def test_body_that_does_not_decode_is_a_400(embedder):
    async def go(client):
        err = await post_error(client, "/embed", 400, "invalid_json", data=b"not gzip at all",
                               headers={"Content-Encoding": "gzip",
                                        "Content-Type": "application/json"})
        assert "could not be read" in err["message"]
        resp = await client.post("/embed", json={"texts": ["a"]})  # the server is fine
        assert resp.status == 200
    run(go, embedder=embedder)


def test_503_while_loading_then_ready(monkeypatch, embedder):
    release = threading.Event()

    def slow_load(path=None, quantize=None, threads=None):
        assert release.wait(30)
        return embedder
    monkeypatch.setattr(sf.Embedder, "load", staticmethod(slow_load))

    async def go(client):
        resp = await client.get("/health")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "loading" and body["model_loaded"] is False
        await post_error(client, "/v1/embeddings", 503, "model_loading", json={"input": "a"})
        release.set()
        for _ in range(500):
            if (await client.get("/health")).status == 200:
                break
            await asyncio.sleep(0.01)
        resp = await client.post("/v1/embeddings", json={"input": "a"})
        assert resp.status == 200
    run(go, app=create_app(ServerConfig()))


def test_failed_load_is_reported(tmp_path):
    async def go(client):
        for _ in range(500):
            body = await (await client.get("/health")).json()
            if body["embedding"]["state"] != "loading":
                break
            await asyncio.sleep(0.01)
        assert body["status"] == "unhealthy" and body["embedding"]["state"] == "failed"
        err = await post_error(client, "/embed", 503, "model_unavailable", json={"texts": ["a"]})
        assert "not found" in err["message"]
    run(go, app=create_app(ServerConfig(embed_model=str(tmp_path / "missing"))))


def test_config_flags_env_and_defaults():
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = from_args(p.parse_args(["--port", "9001", "--auto-truncate", "0"]),
                    {"SUTRA_PORT": "9999", "SUTRA_MAX_TEXTS": "7", "SUTRA_API_KEY": "k",
                     "SUTRA_MICRO_BATCHING": "false"})
    assert cfg.port == 9001  # the flag wins over the env
    assert cfg.max_texts == 7 and cfg.api_key == "k" and cfg.micro_batching is False
    assert cfg.auto_truncate is False
    assert cfg.host == "127.0.0.1" and cfg.rwkv_model is None  # defaults
    with pytest.raises(ValueError, match="SUTRA_PORT"):
        from_args(p.parse_args([]), {"SUTRA_PORT": "eighty"})
    # an empty variable is unset: defaults, not False / an int() error
    empty = from_args(p.parse_args([]), {"SUTRA_MICRO_BATCHING": "", "SUTRA_EMBEDDINGS": " ",
                                         "SUTRA_PORT": "", "SUTRA_API_KEY": ""})
    assert empty.micro_batching is True and empty.embeddings is True
    assert empty.port == 8000 and empty.api_key is None
    with pytest.raises(SystemExit):  # an empty flag value is not a boolean
        p.parse_args(["--micro-batching", ""])
    with pytest.raises(ValueError, match="max_texts"):
        from_args(p.parse_args(["--max-texts", "0"]), {})
    with pytest.raises(ValueError, match="rwkv_dtype"):
        from_args(p.parse_args(["--rwkv-dtype", "fp8"]), {})
