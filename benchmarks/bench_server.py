"""Loopback load test of ``sutra-fast serve`` (the aiohttp app on a real socket).

Embeddings: ``POST /v1/embeddings`` with one short text per request at
concurrency 1, 8 and 64, micro-batching on and off, against the in-process
``Embedder.embed`` throughput on the same texts (the issue's target: at
concurrency 64, >= 80% of in-process). Cache off, every text distinct.
Generation: ``POST /generate`` streamed, time to first token and tokens/s per
stream with 1 and 4 concurrent streams (random-weight RWKV-7 0.1B layout;
tiny under ``--benchmark-disable``).

    python -m pytest benchmarks/bench_server.py --benchmark-enable -s
"""
from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rwkv_checkpoints as rc  # noqa: E402

import aiohttp  # noqa: E402  (the server extra; a test dependency)
from aiohttp import web  # noqa: E402

import sutra_fast as sf  # noqa: E402
from sutra_fast.server import ServerConfig, create_app  # noqa: E402

WORLD_TINY = rc.Shape(n_layer=2, n_embd=64, head_size=16, vocab=65536, d_w=8, d_a=8, d_v=4, d_g=16)


class BackgroundServer:
    """The app on 127.0.0.1:<free port>, served by its own event loop in a thread."""

    def __init__(self, app):
        self.app, self.port = app, None
        self._ready = threading.Event()
        self._stop = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        async def main():
            runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            await self._stop.wait()
            await runner.cleanup()
        asyncio.run(main())

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(60)
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)


@pytest.fixture(scope="module")
def embedder():
    return sf.Embedder.load()


@pytest.fixture(scope="module")
def n_requests(quick):
    return 32 if quick else 1024


def texts_for(n, salt):
    return [f"request {salt}-{i}: a short sentence about servers" for i in range(n)]


async def load(port, texts, concurrency):
    latencies = []
    queue = list(texts)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            while queue:
                t = queue.pop()
                t0 = time.perf_counter()
                async with s.post(f"http://127.0.0.1:{port}/v1/embeddings", json={"input": t}) as r:
                    assert r.status == 200
                    await r.read()
                latencies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, np.array(latencies)


@pytest.mark.parametrize("batching", [True, False], ids=["batching", "no-batching"])
@pytest.mark.parametrize("concurrency", [1, 8, 64])
def test_embeddings_load(benchmark, embedder, n_requests, concurrency, batching):
    cfg = ServerConfig(micro_batching=batching, embed_cache_size=0, batch_wait_ms=2)
    texts = texts_for(n_requests, f"{concurrency}{batching}")
    with BackgroundServer(create_app(cfg, embedder=embedder)) as srv:
        asyncio.run(load(srv.port, texts_for(8, "warm"), 1))
        wall, lat = benchmark.pedantic(lambda: asyncio.run(load(srv.port, texts, concurrency)),
                                       rounds=1, iterations=1)
    t0 = time.perf_counter()
    embedder.embed(texts, batch_size=64)
    inproc = len(texts) / (time.perf_counter() - t0)
    benchmark.group = "server: POST /v1/embeddings, one short text per request"
    rps = len(texts) / wall
    benchmark.extra_info.update(
        contender=f"c={concurrency} {'batching' if batching else 'no batching'}",
        req_per_s=round(rps, 1), p50_ms=round(float(np.percentile(lat, 50)) * 1e3, 2),
        p99_ms=round(float(np.percentile(lat, 99)) * 1e3, 2),
        in_process_texts_per_s=round(inproc, 1), ratio_to_in_process=round(rps / inproc, 3))
    print(f"\nc={concurrency:<3} batching={batching!s:<5} {rps:8.1f} req/s  "
          f"p50 {np.percentile(lat, 50) * 1e3:7.2f} ms  p99 {np.percentile(lat, 99) * 1e3:7.2f} ms  "
          f"in-process {inproc:8.1f} texts/s  ratio {rps / inproc:.2f}")


@pytest.fixture(scope="module")
def generator(quick, tmp_path_factory):
    shape = WORLD_TINY if quick else rc.WORLD_0B1
    path = rc.make_checkpoint(tmp_path_factory.mktemp("bench_srv"), shape, seed=0, fmt="pth")
    return sf.Generator.load(path)


async def streams(port, n, max_tokens):
    async with aiohttp.ClientSession() as s:
        async def one(i):
            t0 = time.perf_counter()
            first = None
            async with s.post(f"http://127.0.0.1:{port}/generate", json={
                    "prompt": "The server streams tokens", "max_tokens": max_tokens,
                    "temperature": 1.0, "seed": i, "stream": True}) as r:
                async for line in r.content:
                    first = first or time.perf_counter() - t0
                    last = json.loads(line)
            total = time.perf_counter() - t0
            return first, last["tokens_used"] / max(total - first, 1e-9), last["tokens_used"]
        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.parametrize("n_streams", [1, 4])
def test_generation_streams(benchmark, generator, quick, n_streams):
    max_tokens = 8 if quick else 64
    cfg = ServerConfig(embeddings=False, max_concurrent_generations=4)
    with BackgroundServer(create_app(cfg, generator=generator)) as srv:
        out = benchmark.pedantic(lambda: asyncio.run(streams(srv.port, n_streams, max_tokens)),
                                 rounds=1, iterations=1)
    ttft = [o[0] for o in out]
    rate = [o[1] for o in out]
    benchmark.group = "server: POST /generate streamed"
    benchmark.extra_info.update(contender=f"{n_streams} stream(s)",
                                ttft_ms=round(float(np.mean(ttft)) * 1e3, 2),
                                tokens_per_s_per_stream=round(float(np.mean(rate)), 1))
    print(f"\n{n_streams} streams: ttft {np.mean(ttft) * 1e3:.1f} ms, "
          f"{np.mean(rate):.1f} tok/s per stream")
