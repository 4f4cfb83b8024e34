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


DEFAULTS = "import sutra_fast as sf; print(sf.cpu_info()['isa'], sf.get_num_threads())"


def test_env_bad_values_are_ignored_with_a_warning():
    """A typo in a variable does not take the host application down: the import
    warns (pointing at the importing line) and keeps the default."""
    default = run_python(DEFAULTS, SUTRA_CPU_ISA="", SUTRA_NUM_THREADS="")
    assert default.returncode == 0, default.stderr
    r = run_python(DEFAULTS, SUTRA_CPU_ISA="avx9000", SUTRA_NUM_THREADS="")
    assert r.returncode == 0 and r.stdout == default.stdout, r.stderr
    assert r.stderr.startswith("<string>:1: RuntimeWarning: SUTRA_CPU_ISA='avx9000': unknown "
                               "instruction set"), r.stderr
    assert r.stderr.splitlines()[0].endswith("; the variable is ignored")
    r = run_python(DEFAULTS, SUTRA_NUM_THREADS="many", SUTRA_CPU_ISA="")
    assert r.returncode == 0 and r.stdout == default.stdout, r.stderr
    assert ("RuntimeWarning: SUTRA_NUM_THREADS='many': expected a whole number >= 1 and <= 1024; "
            "the variable is ignored") in r.stderr
    r = run_python("import warnings; warnings.simplefilter('error'); import sutra_fast",
                   SUTRA_NUM_THREADS="many")   # an application may still make it fatal
    assert r.returncode != 0 and "RuntimeWarning: SUTRA_NUM_THREADS='many'" in r.stderr
    r = run_python("import sutra_fast as sf; print(sf.get_num_threads())", SUTRA_NUM_THREADS="1")
    assert r.returncode == 0 and r.stdout.strip() == "1" and r.stderr == "", r.stderr


@pytest.mark.parametrize("how", ["python -m", "console script"])
def test_env_bad_values_are_a_one_line_cli_error(tmp_path, how):
    if how == "python -m":
        argv = [sys.executable, "-m", "sutra_fast"]
    else:   # what pip writes for [project.scripts]
        script = tmp_path / "sutra-fast"
        script.write_text("import sys\nfrom sutra_fast.cli import main\nsys.exit(main())\n")
        argv = [sys.executable, str(script)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "SUTRA_NUM_THREADS": "0"}
    r = subprocess.run([*argv, "info"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("sutra-fast: error: SUTRA_NUM_THREADS='0': expected a whole number >= 1 "
                        "and <= 1024\n")
    env = {**env, "SUTRA_NUM_THREADS": "", "SUTRA_CPU_ISA": "avx9"}
    r = subprocess.run([*argv, "embed", "x"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.startswith("sutra-fast: error: SUTRA_CPU_ISA='avx9': unknown instruction set")
    assert len(r.stderr.splitlines()) == 1
    r = subprocess.run([*argv, "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: sutra-fast") and r.stderr == ""


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


# A child that asks for many pool threads under an address-space limit low enough
# that creating them fails partway (each thread stack reserves 8 MB). RLIMIT_AS,
# not RLIMIT_NPROC: the latter is not enforced for root. The limit is set by the
# child itself after its imports (its VmSize + 160 MB), so it does not depend on
# how big Python + numpy + sutra_fast happen to be here.
_THREAD_LIMIT_CHILD = r"""
import resource, sys
import numpy as np
import sutra_fast as sf
from sutra_fast import kernels as K

rng = np.random.default_rng(0)
h = rng.standard_normal((64, 64, 384)).astype(np.float32)
m = (rng.random((64, 64)) < 0.8).astype(np.int64)
m[:, 0] = 1
sf.set_num_threads(1)
expected = K.mean_pool(h, m)  # one thread: runs inline, no pool
vm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:"))
limit = (vm_kb + 160 * 1024) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sf.set_num_threads(int(sys.argv[1]))
got = K.mean_pool(h, m)  # the pool is created here; most of its threads cannot start
again = K.mean_pool(h, m)  # the reduced pool is reused, not rebuilt
print("equal", np.array_equal(got, expected) and np.array_equal(again, expected))
print("threads", sf.get_num_threads())
"""


def _under_asan():
    return "asan" in os.environ.get("LD_PRELOAD", "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
@pytest.mark.skipif(_under_asan(), reason="ASan reserves terabytes of shadow memory: no RLIMIT_AS")
def test_pool_falls_back_when_threads_cannot_start():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("SUTRA_NUM_THREADS", None)
    try:
        r = subprocess.run([sys.executable, "-c", _THREAD_LIMIT_CHILD, "400"], capture_output=True,
                           text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the pool hung when worker threads could not be started")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    assert lines["equal"] == "True"
    threads = int(lines["threads"])
    assert 1 <= threads < 400, r.stdout  # the fallback is visible in get_num_threads()
    # one warning, saying what happened and what to do
    assert r.stderr.count("worker threads") == 1, r.stderr
    assert "could start only" in r.stderr and "of 399 worker threads" in r.stderr, r.stderr
    assert f"using {threads} threads" in r.stderr, r.stderr
    assert "SUTRA_NUM_THREADS" in r.stderr and "set_num_threads" in r.stderr, r.stderr


def test_set_num_threads_bounds_and_types():
    before = sf.get_num_threads()
    try:
        sf.set_num_threads(1024)
        assert sf.get_num_threads() == 1024
        sf.set_num_threads(1)
        assert sf.get_num_threads() == 1
    finally:
        sf.set_num_threads(before)
    for bad in (1025, 100_000, 2**31, 2**70):
        with pytest.raises(ValueError, match=r"n must be >= 1 and <= 1024 .*got \d+"):
            sf.set_num_threads(bad)
    for bad in (0, -1, -2**70):
        with pytest.raises(ValueError, match="must be >= 1"):
            sf.set_num_threads(bad)
    for bad in (None, 2.0, np.int64(4), "8", False):
        with pytest.raises(TypeError, match="n must be an int"):
            sf.set_num_threads(bad)
    assert sf.get_num_threads() == before
    from sutra_fast import _core
    with pytest.raises(ValueError, match="1024"):
        _core.set_num_threads(1025)  # the compiled core enforces the same cap


def test_env_thread_count_out_of_range_is_ignored_with_a_warning():
    for value in ("0", "1025", "99999999999999999999"):
        r = run_python("import sutra_fast as sf; print(sf.get_num_threads())",
                       SUTRA_NUM_THREADS=value)
        assert r.returncode == 0 and int(r.stdout) == len(os.sched_getaffinity(0)), r.stderr
        assert (f"RuntimeWarning: SUTRA_NUM_THREADS={value!r}: expected a whole number >= 1 and "
                "<= 1024; the variable is ignored") in r.stderr
    r = run_python("import sutra_fast as sf; print(sf.get_num_threads())", SUTRA_NUM_THREADS="1024")
    assert r.returncode == 0 and r.stdout.strip() == "1024", r.stderr
