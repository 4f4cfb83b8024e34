"""Shared benchmark settings.

Benchmarks compare in one process, one run, same machine. Under
``--benchmark-disable`` (the CI smoke run) they use tiny sizes so that they
only check that every contender still runs and agrees.
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
