"""Shared benchmark settings.

Benchmarks compare in one process, one run, same machine. Under
``--benchmark-disable`` (the CI smoke run) they use tiny sizes, so the run
checks that every contender still runs. Only some modules also check that the
contenders agree: bench_kernels.py (every row against the pure-Python twin),
bench_world_tokenizer.py (encode ids against the twin, decode back to the
text) and bench_wordpiece.py (ids against HF tokenizers). bench_rwkv.py,
bench_generate.py, bench_sampler.py, bench_embed.py and bench_server.py check
little more than that a result comes back (shapes, norms, ranges, status
codes); parity of those paths is tested in tests/.
"""
import os

import pytest
from threadpoolctl import threadpool_limits

import sutra_fast as sf


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: slow contender, fewer rounds")


@pytest.fixture(scope="session")
def quick(request):
    cfg = request.config
    disabled = cfg.getoption("benchmark_disable") and not cfg.getoption("benchmark_enable")
    return bool(disabled or os.environ.get("SUTRA_BENCH_QUICK"))


@pytest.fixture(scope="session", autouse=True)
def single_thread():
    """Single thread for every contender: our pool and numpy's BLAS alike.
    SUTRA_BENCH_THREADS overrides."""
    n = int(os.environ.get("SUTRA_BENCH_THREADS", "1"))
    before = sf.get_num_threads()
    sf.set_num_threads(n)
    with threadpool_limits(limits=n):
        yield n
    sf.set_num_threads(before)
