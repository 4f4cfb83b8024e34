"""Loopback load test of ``sutra-fast serve`` (the aiohttp app on a real socket).

Embeddings: ``POST /v1/embeddings`` with one short text per request at
concurrency 1, 8 and 64, micro-batching on and off, against the in-process
``Embedder.embed`` throughput on the same texts (the issue's target: at
concurrency 64, >= 80% of in-process). Cache off, every text distinct.
The server runs as a separate process, like in production.
Generation: ``POST /generate`` streamed, time to first token and tokens/s per
stream with 1 and 4 concurrent streams (random-weight RWKV-7 0.1B layout;
tiny under ``--benchmark-disable``).

    python -m pytest benchmarks/bench_server.py --benchmark-enable -s
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rwkv_checkpoints as rc  # noqa: E402

import aiohttp  # noqa: E402  (the server extra; a test dependency)

import sutra_fast as sf  # noqa: E402

WORLD_TINY = rc.Shape(n_layer=2, n_embd=64, head_size=16, vocab=65536, d_w=8, d_a=8, d_v=4, d_g=16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``sutra-fast serve`` in its own process (its own GIL, as in production),
    on a free loopback port; the load generator runs in this process."""

    def __init__(self, *flags: str):
        self.port = _free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                             env.get("PYTHONPATH", "")])
        self._cmd = [sys.executable, "-m", "sutra_fast", "serve", "--port", str(self.port),
                     "--log-level", "warning", *flags]
        self._env = env

    def __enter__(self):
        self.proc = subprocess.Popen(self._cmd, env=self._env)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, "server exited at start"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            assert time.monotonic() < deadline, "server not healthy in 120 s"
            time.sleep(0.1)

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0


@pytest.fixture(scope="module")
def embedder():
    return sf.Embedder.load()  # also converts the default model into the cache the server reads


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


@pytest.fixture(scope="module", params=[True, False], ids=["batching", "no-batching"])
def embed_server(request, embedder):
    with ServerProcess("--micro-batching", str(int(request.param)), "--embed-cache-size", "0") as srv:
        asyncio.run(load(srv.port, texts_for(8, "warm"), 1))
        yield srv, request.param


@pytest.mark.parametrize("concurrency", [1, 8, 64])
def test_embeddings_load(benchmark, embedder, embed_server, n_requests, concurrency):
    srv, batching = embed_server
    texts = texts_for(n_requests, f"{concurrency}{batching}")
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
def checkpoint(quick, tmp_path_factory):
    shape = WORLD_TINY if quick else rc.WORLD_0B1
    return rc.make_checkpoint(tmp_path_factory.mktemp("bench_srv"), shape, seed=0, fmt="pth")


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


@pytest.fixture(scope="module")
def gen_server(checkpoint):
    with ServerProcess("--embeddings", "0", "--rwkv-model", str(checkpoint),
                       "--max-concurrent-generations", "4", "--threads", "1") as srv:
        asyncio.run(streams(srv.port, 1, 2))  # warm-up
        yield srv


@pytest.mark.parametrize("n_streams", [1, 4])
def test_generation_streams(benchmark, gen_server, quick, n_streams):
    max_tokens = 8 if quick else 64
    srv = gen_server
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
