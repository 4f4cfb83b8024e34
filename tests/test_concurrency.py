"""Concurrency safety: one Embedder / Generator shared by many Python threads
gives the same results as sequential use, and fork() after use works (the
child re-creates the thread pool; the compiled objects keep working)."""
from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import rwkv_checkpoints as rc
import sutra_fast as sf
from real_corpus import real_sentences

N_THREADS = 8
WORLD_TINY = rc.WORLD_TINY


@pytest.fixture(scope="module")
def emb(converted):
    return sf.Embedder.load(converted)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    path = rc.make_checkpoint(tmp_path_factory.mktemp("conc"), WORLD_TINY, seed=9, fmt="safetensors")
    return sf.Generator.load(path)


@pytest.fixture(scope="module")
def batches():
    s = list(real_sentences(96))
    return [s[i: i + 12] for i in range(0, 96, 12)]


def in_threads(fn, jobs, rounds=3):
    """Run fn(job) for every job, ``rounds`` times over, from N_THREADS threads at once."""
    start = threading.Barrier(N_THREADS)

    def work(i):
        start.wait()
        return [fn(jobs[(i + k) % len(jobs)]) for k in range(rounds * len(jobs) // N_THREADS + 1)], i

    with ThreadPoolExecutor(N_THREADS) as ex:
        out = list(ex.map(work, range(N_THREADS)))
    return [(jobs[(i + k) % len(jobs)], r) for rs, i in out for k, r in enumerate(rs)]


def test_embedder_threads_match_sequential(emb, batches):
    want = {tuple(b): emb.embed(b) for b in batches}
    for job, got in in_threads(lambda b: emb.embed(b), batches, rounds=2):
        np.testing.assert_allclose(got, want[tuple(job)], atol=1e-6, rtol=0)
    dims = {tuple(b): emb.embed(b, dimensions=64) for b in batches}
    for job, got in in_threads(lambda b: emb.embed(b, dimensions=64), batches, rounds=1):
        np.testing.assert_allclose(got, dims[tuple(job)], atol=1e-6, rtol=0)


def test_tokenizer_threads_match_sequential(emb, batches):
    tok = emb.tokenizer
    want = {tuple(b): tok.encode_batch(b, max_length=64)["input_ids"] for b in batches}
    for job, got in in_threads(lambda b: tok.encode_batch(b, max_length=64)["input_ids"], batches):
        np.testing.assert_array_equal(got, want[tuple(job)])


PROMPTS = ["Hello", "The quick brown fox", "Once upon a time", "1 2 3 4", "RWKV is", "Über",
           "日本語のテキスト", "A longer prompt about nothing in particular, to prefill more tokens."]


def test_generator_threads_match_sequential(gen):
    def run(p):
        r = gen.generate(p, max_tokens=12, temperature=0.8, top_p=0.9, seed=len(p))
        return r.tokens, r.text
    want = {p: run(p) for p in PROMPTS}
    for p, got in in_threads(run, PROMPTS, rounds=2):
        assert got == want[p], p


def test_generator_forward_threads_match_sequential(gen):
    seqs = [list(range(1 + i, 40 + 7 * i, 3)) for i in range(N_THREADS)]

    def run(seq):
        return gen.forward(seq, gen.new_state())
    want = {tuple(s): run(s) for s in seqs}
    for s, got in in_threads(run, seqs):
        np.testing.assert_array_equal(got, want[tuple(s)])


def test_streams_interleaved_in_one_thread(gen):
    """Several open streams advanced in turn: each equals its own generate()."""
    want = [gen.generate(p, max_tokens=8, seed=3, temperature=1.0).text for p in PROMPTS[:4]]
    streams = [gen.stream(p, max_tokens=8, seed=3, temperature=1.0) for p in PROMPTS[:4]]
    texts = ["" for _ in streams]
    alive = set(range(len(streams)))
    while alive:
        for i in sorted(alive):
            try:
                texts[i] += next(streams[i])
            except StopIteration:
                alive.discard(i)
    assert texts == want


def fork_and_check(child_fn, timeout=120):
    """fork(); in the child run child_fn() -> bool; exit 0 if True. Fails on a hang."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = 0 if child_fn() else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"forked child hung for {timeout}s")


def test_fork_after_embedder_use(emb, batches):
    want = emb.embed(batches[0])
    fork_and_check(lambda: np.allclose(emb.embed(batches[0]), want, atol=1e-6, rtol=0))
    np.testing.assert_allclose(emb.embed(batches[0]), want, atol=1e-6, rtol=0)


def test_fork_after_generator_use(gen):
    want = gen.generate("Hello", max_tokens=10, seed=1).tokens
    logits = gen.forward(list(range(1, 64)), gen.new_state())  # batched prefill uses the pool
    fork_and_check(lambda: gen.generate("Hello", max_tokens=10, seed=1).tokens == want
                   and np.array_equal(gen.forward(list(range(1, 64)), gen.new_state()), logits))
    assert gen.generate("Hello", max_tokens=10, seed=1).tokens == want
