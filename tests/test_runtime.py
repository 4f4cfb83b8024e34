"""ISA selection, thread settings, environment variables, fork safety, packaging."""
import importlib.machinery
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import kernels as K


def run_python(code, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full_env, timeout=120)


def test_cpu_info_shape():
    info = sf.cpu_info()
    assert info["isa"] in info["supported_isas"]
    assert info["supported_isas"][0] == "scalar"
    assert info["best_isa"] == info["supported_isas"][-1]
    assert info["num_threads"] >= 1
    assert set(info["features"]) >= {"avx2", "fma", "avx512f", "avx512bf16", "avx512vnni"}
    if info["features"]["avx2"] and info["features"]["fma"]:
        assert "avx2" in info["supported_isas"]


def test_set_cpu_isa_errors():
    with pytest.raises(ValueError, match="unknown instruction set 'sse9'.*'scalar', 'avx2', 'avx512'"):
        sf.set_cpu_isa("sse9")
    with pytest.raises(TypeError):
        sf.set_cpu_isa(2)
    if "avx512" not in sf.cpu_info()["supported_isas"]:
        with pytest.raises(ValueError, match="not available on this CPU"):
            sf.set_cpu_isa("avx512")


def test_set_num_threads_errors_and_roundtrip():
    before = sf.get_num_threads()
    try:
        sf.set_num_threads(3)
        assert sf.get_num_threads() == 3
        assert sf.cpu_info()["num_threads"] == 3
    finally:
        sf.set_num_threads(before)
    for bad in (0, -2):
        with pytest.raises(ValueError, match="must be >= 1"):
            sf.set_num_threads(bad)
    for bad in (1.5, "2", True):
        with pytest.raises(TypeError):
            sf.set_num_threads(bad)


@pytest.mark.parametrize("level", sf.cpu_info()["supported_isas"])
def test_env_forces_isa(level):
    r = run_python("import sutra_fast as sf; print(sf.cpu_info()['isa'])", SUTRA_CPU_ISA=level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == level


def test_env_bad_values_fail_clearly():
    r = run_python("import sutra_fast", SUTRA_CPU_ISA="avx9000")
    assert r.returncode != 0
    assert "SUTRA_CPU_ISA='avx9000': unknown instruction set" in r.stderr
    r = run_python("import sutra_fast", SUTRA_NUM_THREADS="many")
    assert r.returncode != 0
    assert "SUTRA_NUM_THREADS='many': expected a whole number >= 1" in r.stderr
    r = run_python("import sutra_fast as sf; print(sf.get_num_threads())", SUTRA_NUM_THREADS="1")
    assert r.returncode == 0 and r.stdout.strip() == "1", r.stderr


def test_default_threads_follow_cpu_affinity():
    r = run_python("import os, sutra_fast as sf; "
                   "print(sf.cpu_info()['default_num_threads'], len(os.sched_getaffinity(0)))")
    assert r.returncode == 0, r.stderr
    ours, available = r.stdout.split()
    assert ours == available


def test_fork_after_use_recreates_pool():
    h = np.random.default_rng(0).standard_normal((64, 64, 384)).astype(np.float32)
    m = np.ones((64, 64), np.int64)
    before = sf.get_num_threads()
    sf.set_num_threads(2)
    try:
        expected = K.mean_pool(h, m)  # the pool's threads now exist in the parent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
        if pid == 0:  # child: the parent's workers are gone; the pool must be rebuilt
            ok = np.array_equal(K.mean_pool(h, m), expected)
            os._exit(0 if ok else 3)
        deadline = time.monotonic() + 60  # a pool that deadlocks in the child fails, not hangs
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in mean_pool (thread pool not rebuilt)")
        status = done[1]
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        np.testing.assert_array_equal(K.mean_pool(h, m), expected)
    finally:
        sf.set_num_threads(before)


def test_concurrent_callers_get_correct_results():
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((16, 64, 384)).astype(np.float32) for _ in range(6)]
    m = np.ones((16, 64), np.int64)
    expected = [K.mean_pool(h, m) for h in inputs]
    results = [None] * len(inputs)

    def work(i):
        for _ in range(5):
            results[i] = K.mean_pool(inputs[i], m)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)


def test_extensions_are_compiled_modules():
    from sutra_fast import _core, _kernels

    for mod in (_core, _kernels):
        assert isinstance(mod.__loader__, importlib.machinery.ExtensionFileLoader), mod
        assert mod.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert _core.__version__ == sf.__version__
