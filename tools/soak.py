#!/usr/bin/env python
"""Bounded loopback soak test of `sutra-fast serve`.

Starts the server as a real process, then at once:
  * sends --requests embedding requests (1-4 texts each, both routes, float and
    base64) from --concurrency clients, checking every vector against the
    in-process Embedder;
  * runs --generations streamed generations (SSE /v1/completions and NDJSON
    /generate, seeded) from --gen-concurrency clients, checking every completed
    text against in-process Generator.generate, and dropping a --disconnect
    fraction of the connections mid-stream (their received prefix must match);
  * samples the server's resident memory (VmRSS) every 0.5 s.

Passes (exit 0) when: every request got an answer (zero lost), no 5xx, every
answer equals the in-process result, RSS after warm-up (the first 25% of the
embedding requests) grows by at most --rss-bound-mb, the server is healthy
afterwards and exits 0 on SIGTERM. Bounded: stops after the counts or
--max-seconds, whichever comes first (a time-out is a failure).

    python tools/soak.py                       # 20 000 requests, 200 generations
    python tools/soak.py --short               # the CI size (~60 s)
    python tools/soak.py --json result.json    # also write the summary

Models: --embed-model (a converted folder; default the embedded default model)
and --rwkv-model (default: a random-weight RWKV-7 checkpoint with the World
vocabulary written to a temp dir; tests/rwkv_checkpoints.py makes it).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if list((ROOT / "python" / "sutra_fast").glob("_core*.so")):  # built in place (tools/dev_build.sh)
    sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))

import aiohttp  # noqa: E402

import sutra_fast as sf  # noqa: E402

ATOL = 2e-5  # server and in-process run the same model; micro-batching changes padding only
PROMPTS = ["Hello", "The quick brown fox", "Once upon a time", "1 2 3 4", "RWKV is a",
           "Über alles", "日本語のテキスト", "A longer prompt about nothing in particular."]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="CI size: 1500 requests, 16 generations, 120 s cap")
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--generations", type=int, default=200)
    p.add_argument("--gen-concurrency", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--disconnect", type=float, default=0.3, help="fraction of streams dropped early")
    p.add_argument("--distinct-texts", type=int, default=3000)
    p.add_argument("--rss-bound-mb", type=float, default=64.0)
    p.add_argument("--max-seconds", type=float, default=1500.0)
    p.add_argument("--embed-model", default=None)
    p.add_argument("--rwkv-model", default=None)
    p.add_argument("--json", default=None, help="write the summary here too")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.short:
        a.requests, a.generations, a.max_seconds = 1500, 16, 120.0
        a.distinct_texts, a.max_tokens = 300, 16
    return a


# ------------------------------------------------------------------ workload
def make_texts(n: int, rng: random.Random) -> list[str]:
    from real_corpus import real_sentences

    base = list(real_sentences(min(n, 500)))
    words = " ".join(base).split()
    out = list(base)
    while len(out) < n:  # distinct texts of varied length, some non-ASCII
        k = rng.randint(1, 60)
        out.append(" ".join(rng.choice(words) for _ in range(k)) + rng.choice(["", " é", " 中文", "!"]))
    return out[:n]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self):
        self.sent = self.answered = self.ok = self.http_5xx = self.http_4xx = 0
        self.mismatches: list[str] = []
        self.errors: list[str] = []
        self.gen_done = self.gen_dropped = self.gen_retries = 0

    def fail(self, msg: str):
        if len(self.errors) < 20:
            self.errors.append(msg)


# ------------------------------------------------------------------ clients
async def embed_client(session, base, jobs, texts, want, stats, progress):
    while jobs:
        i, idx, route, fmt, dims = jobs.pop()
        batch = [texts[j] for j in idx]
        if route == "/v1/embeddings":
            body = {"input": batch, "encoding_format": fmt}
            if dims:
                body["dimensions"] = dims
        else:
            body = {"texts": batch, "normalize": True}
            if dims:
                body["target_dimension"] = dims
        stats.sent += 1
        try:
            async with session.post(base + route, json=body) as r:
                raw = await r.read()
                status = r.status
        except aiohttp.ClientError as e:
            stats.fail(f"request {i}: {type(e).__name__}: {e}")
            continue
        stats.answered += 1
        progress[0] += 1
        if status >= 500:
            stats.http_5xx += 1
            stats.fail(f"request {i}: {status} {raw[:200]!r}")
            continue
        if status != 200:
            stats.http_4xx += 1
            stats.fail(f"request {i}: {status} {raw[:200]!r}")
            continue
        doc = json.loads(raw)
        if route == "/v1/embeddings":
            rows = [np.frombuffer(base64.b64decode(d["embedding"]), "<f4") if fmt == "base64"
                    else np.asarray(d["embedding"], np.float32) for d in doc["data"]]
        else:
            rows = [np.asarray(e, np.float32) for e in doc["embeddings"]]
        exp = want(idx, dims)
        if len(rows) != len(idx) or not np.allclose(np.stack(rows), exp, atol=ATOL, rtol=0):
            stats.mismatches.append(f"request {i} {route}: vectors differ from in-process")
        else:
            stats.ok += 1


async def gen_client(session, base, jobs, expected, stats, max_tokens):
    while jobs:
        i, prompt, seed, route, drop_after = jobs.pop()
        body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.9, "top_p": 0.9,
                "seed": seed, "stream": True}
        full = expected[(prompt, seed)]
        for attempt in range(60):  # 429: the generation slots are full; honour Retry-After
            stats.sent += 1
            try:
                async with session.post(base + route, json=body) as r:
                    if r.status == 429:
                        stats.answered += 1
                        stats.gen_retries += 1
                        await r.read()
                        await asyncio.sleep(0.2)
                        continue
                    stats.answered += 1
                    if r.status != 200:
                        (stats.__setattr__("http_5xx", stats.http_5xx + 1) if r.status >= 500
                         else stats.__setattr__("http_4xx", stats.http_4xx + 1))
                        stats.fail(f"generation {i}: {r.status} {(await r.read())[:200]!r}")
                        break
                    text, events, finished = "", 0, False
                    async for line in r.content:
                        line = line.decode().strip()
                        if not line:
                            continue
                        if route == "/v1/completions":
                            if not line.startswith("data: "):
                                continue
                            data = line[6:]
                            if data == "[DONE]":
                                finished = True
                                break
                            ev = json.loads(data)
                            if "error" in ev:
                                stats.fail(f"generation {i}: error event {ev}")
                                break
                            text += ev["choices"][0]["text"]
                        else:
                            ev = json.loads(line)
                            if "error" in ev:
                                stats.fail(f"generation {i}: error event {ev}")
                                break
                            if ev.get("done"):
                                finished = True
                                if ev["text"] != text:
                                    stats.mismatches.append(f"generation {i}: final text != pieces")
                                break
                            text += ev["token"]
                        events += 1
                        if drop_after is not None and events >= drop_after:
                            break  # leaving the block closes the connection mid-stream
                    if drop_after is not None and not finished:
                        stats.gen_dropped += 1
                        if not full.startswith(text):
                            stats.mismatches.append(f"generation {i}: dropped prefix differs")
                        else:
                            stats.ok += 1
                        r.close()
                    elif finished:
                        stats.gen_done += 1
                        if text != full:
                            stats.mismatches.append(
                                f"generation {i} {route}: {text[:60]!r} != {full[:60]!r}")
                        else:
                            stats.ok += 1
                    else:
                        stats.fail(f"generation {i}: stream ended without its end marker")
            except aiohttp.ClientError as e:
                stats.fail(f"generation {i}: {type(e).__name__}: {e}")
            break


# ------------------------------------------------------------------ main
async def load(args, port, pid, texts, want, expected, gen_jobs, emb_jobs, stats, rss_log):
    base = f"http://127.0.0.1:{port}"
    conn = aiohttp.TCPConnector(limit=args.concurrency + args.gen_concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    progress = [0]
    warm_at = max(1, len(emb_jobs) // 4)
    state = {"warm_rss": None, "warm_t": None}

    async def sample():
        while True:
            r = rss_mb(pid)
            rss_log.append((round(time.monotonic(), 2), progress[0], round(r, 1)))
            if state["warm_rss"] is None and progress[0] >= warm_at:
                state["warm_rss"], state["warm_t"] = r, time.monotonic()
            await asyncio.sleep(0.5)

    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        sampler = asyncio.create_task(sample())
        tasks = [embed_client(session, base, emb_jobs, texts, want, stats, progress)
                 for _ in range(args.concurrency)]
        tasks += [gen_client(session, base, gen_jobs, expected, stats, args.max_tokens)
                  for _ in range(args.gen_concurrency)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), args.max_seconds)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        sampler.cancel()
        async with session.get(base + "/health") as r:
            healthy = r.status == 200
    return timed_out, healthy, state["warm_rss"]


def main(argv=None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    t_start = time.monotonic()
    tmp = tempfile.TemporaryDirectory(prefix="sutra_soak_")
    env = dict(os.environ)
    # The server process imports the same sutra_fast as this one (installed or in place).
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])

    emb = sf.Embedder.load(args.embed_model)
    embed_model = args.embed_model  # None: the server loads the same default model
    rwkv = args.rwkv_model
    if rwkv is None:
        import rwkv_checkpoints as rc
        shape = rc.Shape(n_layer=2, n_embd=64, head_size=16, vocab=65536, d_w=8, d_a=8, d_v=4, d_g=16)
        rwkv = str(rc.make_checkpoint(tmp.name, shape, seed=11, fmt="safetensors"))
    gen = sf.Generator.load(rwkv)

    # expected results, computed in-process before the load starts
    texts = make_texts(args.distinct_texts, rng)
    dims_choices = [None, None, None, 128, 64]
    vecs = {d: emb.embed(texts, dimensions=d) for d in set(dims_choices)}

    def want(idx, dims):
        return vecs[dims][list(idx)]

    emb_jobs = []
    for i in range(args.requests):
        idx = [rng.randrange(len(texts)) for _ in range(rng.randint(1, 4))]
        emb_jobs.append((i, idx, rng.choice(["/v1/embeddings", "/embed"]),
                         rng.choice(["float", "base64"]), rng.choice(dims_choices)))
    emb_jobs.reverse()
    gen_jobs, expected = [], {}
    for i in range(args.generations):
        prompt, seed = rng.choice(PROMPTS), rng.randrange(8)
        if (prompt, seed) not in expected:
            expected[(prompt, seed)] = gen.generate(prompt, max_tokens=args.max_tokens, temperature=0.9,
                                                    top_p=0.9, seed=seed).text
        drop = rng.randint(1, 6) if rng.random() < args.disconnect else None
        gen_jobs.append((i, prompt, seed, rng.choice(["/v1/completions", "/generate"]), drop))
    gen_jobs.reverse()
    n_emb, n_gen = len(emb_jobs), len(gen_jobs)

    port = free_port()
    log = open(Path(tmp.name) / "server.log", "w+")
    cmd = [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port), "--rwkv-model", rwkv,
           "--max-concurrent-generations", str(args.gen_concurrency), "--log-level", "warning",
           "--max-tokens-limit", str(max(args.max_tokens, 16))]
    if embed_model:
        cmd += ["--embed-model", embed_model]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    stats, rss_log = Stats(), []
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                log.seek(0)
                print(log.read()[-3000:], file=sys.stderr)
                raise SystemExit("server died at start")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                import urllib.request
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                print(log.read()[-3000:], file=sys.stderr)
                raise SystemExit("server not healthy within 300 s")
            time.sleep(0.2)
        t_load = time.monotonic()
        timed_out, healthy, warm_rss = asyncio.run(
            load(args, port, proc.pid, texts, want, expected, gen_jobs, emb_jobs, stats, rss_log))
        load_s = time.monotonic() - t_load
        final_rss = rss_mb(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = "killed after 60 s"
    after_warm = [r for _, n, r in rss_log if warm_rss is not None and n >= n_emb // 4]
    growth = (max(after_warm) - warm_rss) if after_warm and warm_rss is not None else float("nan")
    log.seek(0)
    tracebacks = log.read().count("Traceback")
    summary = {
        "embedding_requests": n_emb, "generations": n_gen, "concurrency": args.concurrency,
        "requests_sent": stats.sent, "answered": stats.answered, "correct": stats.ok,
        "lost": stats.sent - stats.answered, "http_5xx": stats.http_5xx, "http_4xx": stats.http_4xx,
        "mismatches": len(stats.mismatches), "generations_completed": stats.gen_done,
        "generations_dropped_mid_stream": stats.gen_dropped, "generation_429_retries": stats.gen_retries,
        "timed_out": timed_out, "healthy_after": healthy, "server_exit_code": exit_code,
        "server_tracebacks": tracebacks,
        "load_seconds": round(load_s, 1), "requests_per_second": round(n_emb / load_s, 1),
        "rss_warm_mb": warm_rss and round(warm_rss, 1), "rss_final_mb": round(final_rss, 1),
        "rss_growth_after_warmup_mb": round(growth, 1), "rss_bound_mb": args.rss_bound_mb,
        "total_seconds": round(time.monotonic() - t_start, 1),
        "errors": stats.errors[:10], "mismatch_examples": stats.mismatches[:10],
    }
    passed = (not timed_out and healthy and exit_code == 0 and stats.sent == stats.answered
              and stats.http_5xx == 0 and stats.http_4xx == 0 and not stats.mismatches
              and not stats.errors and stats.ok == n_emb + n_gen and tracebacks == 0
              and growth == growth and growth <= args.rss_bound_mb)
    summary["passed"] = passed
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    tmp.cleanup()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
