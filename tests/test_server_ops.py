"""Server: /health, /info, /v1/models, /metrics, request ids, API key, routing errors,
the loading state, and config from flags/env."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import threading

import aiohttp
import pytest
from yarl import URL
from aiohttp.test_utils import TestServer

import sutra_fast as sf
from server_helpers import (GatedGenerator, embedder, generator, metric, post_error,  # noqa: F401
                            run, world_ckpt)
from sutra_fast.server import ServerConfig, create_app
from sutra_fast.server import keys as K
from sutra_fast.embedder import MAX_THREADS
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
    # the choices are case-insensitive, as --log-level is
    upper = from_args(p.parse_args(["--rwkv-dtype", "BF16"]), {"SUTRA_EMBED_QUANTIZE": "INT8"})
    assert (upper.rwkv_dtype, upper.embed_quantize) == ("bf16", "int8")
    # an empty variable is unset: defaults, not False / an int() error
    empty = from_args(p.parse_args([]), {"SUTRA_MICRO_BATCHING": "", "SUTRA_EMBEDDINGS": " ",
                                         "SUTRA_PORT": "", "SUTRA_API_KEY": ""})
    assert empty.micro_batching is True and empty.embeddings is True
    assert empty.port == 8000 and empty.api_key is None
    with pytest.raises(SystemExit):  # an empty flag value is not a boolean
        p.parse_args(["--micro-batching", ""])
    # every bad setting is refused at startup, named by its flag and env var
    bad = [
        (["--max-texts", "0"], "--max-texts (env SUTRA_MAX_TEXTS) must be >= 1, got 0"),
        (["--rwkv-dtype", "fp8"], "--rwkv-dtype (env SUTRA_RWKV_DTYPE) must be fp32, bf16 or int8"),
        (["--port", "70000"], "--port (env SUTRA_PORT) must be from 0 to 65535, got 70000"),
        (["--port", "-1"], "--port (env SUTRA_PORT) must be from 0 to 65535, got -1"),
        (["--embed-threads", "0"], f"--embed-threads (env SUTRA_EMBED_THREADS) must be from 1 "
                                   f"to {MAX_THREADS}, got 0"),
        (["--embed-threads", str(MAX_THREADS + 1)], "--embed-threads (env SUTRA_EMBED_THREADS)"),
        (["--threads", "0"], f"--threads (env SUTRA_THREADS) must be from 1 to "
                             f"{sf._core.MAX_NUM_THREADS}, got 0"),
        (["--shutdown-timeout", "-1"],
         "--shutdown-timeout (env SUTRA_SHUTDOWN_TIMEOUT) must be a finite number >= 0, got -1.0"),
        (["--shutdown-timeout", "nan"], "--shutdown-timeout (env SUTRA_SHUTDOWN_TIMEOUT)"),
        (["--batch-wait-ms", "inf"], "--batch-wait-ms (env SUTRA_BATCH_WAIT_MS) must be a finite"),
        (["--default-max-tokens", "100", "--max-tokens-limit", "10"],
         "--default-max-tokens (env SUTRA_DEFAULT_MAX_TOKENS) must be <= --max-tokens-limit (10)"),
        (["--max-input-tokens", "1"],
         "--max-input-tokens (env SUTRA_MAX_INPUT_TOKENS) must be >= 2"),
        (["--embed-quantize", "int4"], "--embed-quantize (env SUTRA_EMBED_QUANTIZE)"),
        (["--log-level", "loud"], "--log-level (env SUTRA_LOG_LEVEL)"),
        (["--retry-after", "-1"], "--retry-after (env SUTRA_RETRY_AFTER) must be >= 0"),
    ]
    for argv, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            from_args(p.parse_args(argv), {})
    with pytest.raises(ValueError, match=re.escape("--port (env SUTRA_PORT)")):
        from_args(p.parse_args([]), {"SUTRA_PORT": "65536"})
    edge = from_args(p.parse_args(["--port", "65535", "--embed-threads", str(MAX_THREADS),
                                   "--threads", "1", "--shutdown-timeout", "0",
                                   "--default-max-tokens", "10", "--max-tokens-limit", "10"]), {})
    assert (edge.port, edge.embed_threads, edge.threads) == (65535, MAX_THREADS, 1)
    # an unset --default-max-tokens is 256, or the limit when that is lower
    assert cfg.default_max_tokens == 256
    assert from_args(p.parse_args(["--max-tokens-limit", "16"]), {}).default_max_tokens == 16


def test_serve_refuses_bad_settings_before_loading_anything(capsys, monkeypatch):
    """A one-line `sutra-fast: error:` naming the flag, exit 2, and no model loads
    (the server would otherwise start and fail later, or overflow at bind)."""
    from sutra_fast import cli

    def no_load(*a, **k):
        raise AssertionError("a model was loaded or the server started")
    monkeypatch.setattr(sf.Embedder, "load", staticmethod(no_load))
    monkeypatch.setattr(sf, "set_num_threads", no_load)
    monkeypatch.setattr(aiohttp.web, "run_app", no_load)
    for argv, flag in ((["--port", "70000"], "--port"),
                       (["--embed-threads", "0"], "--embed-threads"),
                       (["--threads", "0"], "--threads"),
                       (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
                       (["--default-max-tokens", "100", "--max-tokens-limit", "10"],
                        "--default-max-tokens")):
        assert cli.main(["serve", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sutra-fast: error: {flag} (env SUTRA_"), err
        assert err.count("\n") == 1, err


def test_shutdown_deadline_answers_a_non_streamed_generation_with_its_text_so_far(
        generator, caplog):
    """At --shutdown-timeout a running generation is cancelled and its request still
    gets a whole answer (finish_reason "length"), not a cut connection."""
    caplog.set_level(logging.INFO, logger="sutra_fast.server")
    app = create_app(ServerConfig(embeddings=False, shutdown_timeout=0.3,
                                  max_tokens_limit=10**7), generator=generator)

    async def main():
        server = TestServer(app)
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            answer = asyncio.ensure_future(session.post(
                server.make_url("/v1/chat/completions"),
                json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 10**7,
                      "temperature": 0}))
            while not app[K.DRAIN].generations:  # decoding has started
                await asyncio.sleep(0.01)
            await server.close()
            resp = await answer
            return resp.status, await resp.json()
    status, body = asyncio.run(asyncio.wait_for(main(), 30))
    assert status == 200, body
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["message"]["content"] and body["usage"]["completion_tokens"] > 0
    assert "shutting down: 1 request(s) in flight (1 generating)" in caplog.text
    assert "(1 generation(s) cancelled at the deadline)" in caplog.text


# --- operations: API key hygiene, open-file limit, accept-error flood, banner, bind errors


def test_api_key_is_stripped_and_blank_means_no_auth(caplog):
    """A key made with echo ends in a newline; the client's header is stripped, so
    the configured key must be too, or every request is a 401."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = from_args(parser.parse_args([]), environ={"SUTRA_API_KEY": "s3cret\n"})
    assert cfg.api_key == "s3cret"
    assert ServerConfig(api_key=" \t\n").api_key is None

    async def go(client):
        resp = await client.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        return resp.status
    with caplog.at_level(logging.INFO, logger="sutra_fast.server"):
        assert run(go, ServerConfig(api_key="s3cret\n", embeddings=False)) == 200
        run(go, ServerConfig(api_key="  ", embeddings=False))
    lines = [r.getMessage() for r in caplog.records if "API-key auth" in r.getMessage()]
    assert lines[0] == "API-key auth: on" and lines[1].startswith("API-key auth: off"), lines
    assert "s3cret" not in caplog.text


def _accept_record() -> logging.LogRecord:
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        exc_info = sys.exc_info()
    msg = "socket.accept() out of system resource\nsocket: <socket fd=5>"
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, (), exc_info)


def test_accept_error_filter_lets_one_through_per_window():
    from sutra_fast.server.ops import AcceptErrorFilter

    now = [100.0]
    f = AcceptErrorFilter(window=10.0, clock=lambda: now[0])
    first = _accept_record()
    passed = [r for r in [first] + [_accept_record() for _ in range(99)] if f.filter(r)]
    assert passed == [first] and first.exc_info is not None  # the first keeps its traceback
    assert "ulimit -n" in first.getMessage() and "LimitNOFILE" in first.getMessage()
    now[0] += 10.0
    later = _accept_record()
    assert f.filter(later)
    assert "99 more suppressed" in later.getMessage() and later.exc_info is None
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "something else", (), None)
    assert f.filter(other)  # other asyncio errors are not touched


def test_raise_nofile_limit(monkeypatch):
    from sutra_fast.server.ops import raise_nofile_limit

    import resource

    limits = {"now": (64, 4096)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits["now"])
    monkeypatch.setattr(resource, "setrlimit", lambda which, v: limits.update(now=v))
    assert raise_nofile_limit() == 4096 and limits["now"] == (4096, 4096)

    def refuse(which, v):
        raise ValueError("not allowed")
    limits["now"] = (64, 4096)
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_nofile_limit() == 64  # never fails, reports the limit in force


def test_banner_never_raises(monkeypatch):
    from sutra_fast.server.ops import banner

    class Full:
        def write(self, s):
            raise OSError(28, "No space left on device")

        def flush(self):
            raise OSError(28, "No space left on device")
    monkeypatch.setattr("sys.stderr", Full())
    banner("======== Running on http://127.0.0.1:8000 ========")


@pytest.mark.parametrize("error, translated", [
    (OSError(98, "Address already in use"), True),
    (OSError(28, "No space left on device"), False),  # e.g. from writing to stderr
])
def test_serve_startup_and_bind_errors(monkeypatch, error, translated):
    """serve raises the open-file limit, filters the accept-error flood, handles
    SIGHUP, and names --port only for errors from binding."""
    from aiohttp import web
    from sutra_fast.server import ops, run as run_mod

    raised, seen = [], {}
    monkeypatch.setattr(ops, "raise_nofile_limit", lambda: raised.append(1) or 1024)
    monkeypatch.setattr(logging.getLogger("asyncio"), "filters", [])

    def fake_run_app(app, **kw):
        seen["app"], seen["print"] = app, kw["print"]
        raise error
    monkeypatch.setattr(web, "run_app", fake_run_app)
    cfg = ServerConfig(embeddings=False, port=8123)
    if translated:
        with pytest.raises(RuntimeError, match="cannot listen on 127.0.0.1:8123"):
            run_mod.serve(cfg)
    else:
        with pytest.raises(OSError) as info:
            run_mod.serve(cfg)
        assert info.value is error
    assert raised == [1]
    assert any(isinstance(f, ops.AcceptErrorFilter) for f in logging.getLogger("asyncio").filters)
    assert ops.handle_signals in seen["app"].on_startup and seen["print"] is ops.banner


# --- shutdown drain, access log, load errors (operator-facing)


def test_responses_during_the_drain_close_their_connection(generator, caplog):
    """Once shutdown began, a response says Connection: close: a keep-alive client
    then opens a new connection (to another replica) instead of sending its next
    request on one the server is about to close (ServerDisconnectedError)."""
    caplog.set_level(logging.INFO, logger="sutra_fast.server")
    gated = GatedGenerator(generator, free=1)  # the prompt is read, then decoding waits
    app = create_app(ServerConfig(embeddings=False), generator=gated)

    async def main():
        server = TestServer(app)
        await server.start_server()
        async with aiohttp.ClientSession() as session:
            before = await session.get(server.make_url("/health"))
            await before.read()
            answer = asyncio.ensure_future(session.post(
                server.make_url("/generate"), json={"prompt": "Hi", "max_tokens": 3,
                                                    "temperature": 0}))
            while not app[K.DRAIN].generations:
                await asyncio.sleep(0.01)
            closing = asyncio.ensure_future(server.close())
            while "shutting down:" not in caplog.text:  # the drain waits for our request
                await asyncio.sleep(0.01)
            gated.gate.set()
            resp = await answer
            body = await resp.json()
            await closing
            return before.headers.get("Connection"), resp, body
    before, resp, body = asyncio.run(asyncio.wait_for(main(), 30))
    assert before is None  # kept alive while the server runs
    assert resp.status == 200 and body["finish_reason"] in ("length", "stop"), body
    assert resp.headers.get("Connection") == "close"


def test_the_shutdown_signal_closes_idle_keep_alive_connections(generator):
    """At the signal, a keep-alive connection waiting for its next request is closed
    at once, while generations are still in flight (left to aiohttp it was no longer
    read and closed only after the drain: a request sent on it hung, then failed);
    a busy one is closed right after its response, while the drain goes on."""
    from aiohttp import web
    from sutra_fast.server import ops

    gated = GatedGenerator(generator, free=1)  # every generation waits for the gate
    app = create_app(ServerConfig(embeddings=False, max_tokens_limit=100_000), generator=gated)

    def post(max_tokens, stream):
        body = json.dumps({"prompt": "Hi", "max_tokens": max_tokens, "temperature": 0,
                           "stream": stream}).encode()
        return (b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def main():
        server = TestServer(app)
        await server.start_server()
        conns = [await asyncio.open_connection(server.host, server.port) for _ in range(3)]
        (idle_r, idle_w), (busy_r, busy_w), (long_r, long_w) = conns
        idle_w.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await idle_r.readuntil(b"\r\n\r\n")
        await idle_r.readexactly(int(re.search(rb"Content-Length: (\d+)", head).group(1)))
        long_w.write(post(100_000, True))  # keeps the drain open until it is closed
        busy_w.write(post(3, False))  # in progress at the signal, answered after it
        closing = None
        try:
            while app[K.DRAIN].requests < 2:
                await asyncio.sleep(0.01)
            with pytest.raises(web.GracefulExit):
                ops._graceful_exit(app[K.DRAIN])  # what the SIGTERM handler runs
            closing = asyncio.ensure_future(server.close())  # run_app's shutdown
            # the generations wait for the gate, so the drain cannot end before this
            idle_rest = await asyncio.wait_for(idle_r.read(), 10)  # b"": closed
            gated.gate.set()
            busy_answer = await asyncio.wait_for(busy_r.read(), 30)  # to the server's close
            long_in_flight = app[K.DRAIN].requests == 1  # the drain goes on meanwhile
        finally:
            gated.gate.set()
            for _, w in conns:
                w.close()  # the long stream's client leaves: the drain ends
            if closing is not None:
                await asyncio.wait_for(closing, 30)
        return idle_rest, busy_answer, long_in_flight
    idle_rest, busy_answer, long_in_flight = asyncio.run(asyncio.wait_for(main(), 60))
    assert idle_rest == b""
    head, _, body = busy_answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head, busy_answer
    assert json.loads(body)["finish_reason"] in ("length", "stop")
    assert long_in_flight


def test_shutdown_signals_mark_the_drain_at_once(monkeypatch):
    """SIGTERM/SIGINT/SIGHUP mark the Drain in the signal handler itself: run_app
    closes the listener a few loop turns later, and responses sent in between
    must already say Connection: close."""
    from aiohttp import web
    from sutra_fast.server import ops
    import signal

    app = create_app(ServerConfig(embeddings=False))
    registered = {}

    async def main():
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(loop, "add_signal_handler",
                            lambda sig, cb, *args: registered.__setitem__(sig, (cb, args)))
        await ops.handle_signals(app)
        for cb, args in registered.values():  # the loop runs them, as it runs signal handlers
            app[K.DRAIN].closing = False
            with pytest.raises(web.GracefulExit):
                cb(*args)
            assert app[K.DRAIN].closing
    asyncio.run(main())
    assert set(registered) == {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def test_access_log_one_line_per_request_without_secrets(embedder, caplog):
    """--access-log: method, path, status, bytes, ms, client address and request id;
    never the API key nor the body."""
    from aiohttp.test_utils import TestClient
    from sutra_fast.server import access_log

    cfg = ServerConfig(api_key="s3cret-key", access_log=True)
    app = create_app(cfg, embedder=embedder)

    async def main():
        server = TestServer(app)
        await server.start_server(**access_log.options(cfg))  # as run.py passes them
        async with TestClient(server) as client:
            resp = await client.post("/embed", json={"texts": ["private body text"]},
                                     headers={"Authorization": "Bearer s3cret-key",
                                              "X-Request-ID": "req-42"})
            assert resp.status == 200
            await resp.read()
            resp = await client.get("/nope", headers={"X-API-Key": "s3cret-key"})
            assert resp.status == 404
            await resp.read()
            # an encoded newline must not forge a second line; a query string may hold a key
            resp = await client.get(URL("/x%0Afake%20200%20line?key=s3cret-q", encoded=True),
                                    headers={"X-API-Key": "s3cret-key"})
            assert resp.status == 404
            await resp.read()
    with caplog.at_level(logging.INFO, logger=access_log.LOGGER):
        asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if r.name == access_log.LOGGER]
    assert len(lines) == 3, lines
    assert re.fullmatch(r"127\.0\.0\.1 POST /embed 200 \d+ B \d+\.\d ms request req-42",
                        lines[0]), lines
    assert re.fullmatch(r"127\.0\.0\.1 GET /nope 404 \d+ B \d+\.\d ms request \w+", lines[1])
    assert re.fullmatch(r"127\.0\.0\.1 GET /x%0Afake%20200%20line 404 \d+ B \d+\.\d ms "
                        r"request \w+", lines[2]), lines
    assert "s3cret" not in caplog.text and "private body" not in caplog.text


@pytest.mark.parametrize("on", [False, True])
def test_serve_passes_the_access_logger_to_aiohttp(monkeypatch, on):
    from aiohttp import web
    from sutra_fast.server import access_log, ops, run as run_mod

    monkeypatch.setattr(ops, "raise_nofile_limit", lambda: 1024)
    monkeypatch.setattr(logging.getLogger("asyncio"), "filters", [])
    seen = {}
    monkeypatch.setattr(web, "run_app", lambda app, **kw: seen.update(kw))
    assert run_mod.serve(ServerConfig(embeddings=False, access_log=on)) == 0
    if on:
        assert seen["access_log_class"] is access_log.AccessLogger
        assert seen["access_log"].name == "sutra_fast.access"
    else:
        assert seen["access_log"] is None


def test_health_shows_a_load_error_only_with_the_api_key(tmp_path):
    """/health is open; a load error names files, so without the key it only says
    that the model failed (status and codes as ever)."""
    from sutra_fast.server.routes_ops import HIDDEN_ERROR

    missing = tmp_path / "private-folder"

    async def go(client):
        for _ in range(500):
            resp = await client.get("/health")
            body = await resp.json()
            if body["embedding"]["state"] != "loading":
                break
            await asyncio.sleep(0.01)
        bodies = [(resp.status, body)]
        for headers in ({"Authorization": "Bearer wrong"}, {"X-API-Key": "k"}):
            resp = await client.get("/health", headers=headers)
            bodies.append((resp.status, await resp.json()))
        return bodies
    (s_anon, anon), (s_wrong, wrong), (s_key, keyed) = run(go, app=create_app(
        ServerConfig(embed_model=str(missing), api_key="k")))
    assert s_anon == s_wrong == s_key == 503
    for body in (anon, wrong):
        assert body["status"] == "unhealthy" and body["embedding"]["state"] == "failed"
        assert body["embedding"]["error"] == HIDDEN_ERROR
        assert "private-folder" not in json.dumps(body)
    assert "private-folder" in keyed["embedding"]["error"]
    # no API key configured: everyone sees the error
    (_, open_body), *_ = run(go, app=create_app(ServerConfig(embed_model=str(missing))))
    assert "private-folder" in open_body["embedding"]["error"]


def test_boolean_env_mistake_names_the_flag_and_the_variable(capsys, monkeypatch):
    from sutra_fast import cli

    monkeypatch.setenv("SUTRA_EXIT_ON_LOAD_ERROR", "maybe")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sutra-fast: error: SUTRA_EXIT_ON_LOAD_ERROR='maybe' "
                          "(the variable of --exit-on-load-error): expected a boolean"), err
    assert err.count("\n") == 1
