"""Embedding kernels: compiled vs the best numpy formulation vs the pure-Python twin.

Run:  python -m pytest benchmarks/bench_kernels.py --benchmark-only
The headline is group "mean_pool+l2": B=32, T=128, H=384 (a MiniLM batch).

Every contender's result is checked against the pure-Python twin
(sutra_fast.reference), computed once per input; the twin's own row against the
numpy formulation. Tolerance rtol 1e-5 / atol 1e-6, as tests/test_kernels.py
uses for mean_pool (measured, both sizes: at most 1.2e-7 absolute; relative
error only above 1e-5 on means near zero, from float32 summation).
"""
import numpy as np
import pytest

from sutra_fast import kernels as K
from sutra_fast import reference as R


@pytest.fixture(scope="module")
def batch(quick):
    B, T, H = (2, 8, 16) if quick else (32, 128, 384)
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((B, T, H)).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, size=B)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    return hidden, mask


# numpy formulations of mean_pool + l2_normalize; the fastest is "numpy best".
def np_mul_sum(h, m):
    s = (h * m[:, :, None]).sum(1) / np.maximum(m.sum(1, keepdims=True), 1)
    return s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)


def np_einsum(h, m):
    mf = m.astype(np.float32)
    s = np.einsum("bth,bt->bh", h, mf, optimize=True) / np.maximum(mf.sum(1, keepdims=True), 1)
    return s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)


def np_matmul(h, m):
    mf = m.astype(np.float32)
    s = np.matmul(mf[:, None, :], h)[:, 0, :] / np.maximum(mf.sum(1, keepdims=True), 1)
    return s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)


def compiled(h, m):
    return K.l2_normalize(K.mean_pool(h, m), inplace=True)


def twin(h, m):
    return R.l2_normalize(R.mean_pool(h, m))


RTOL, ATOL = 1e-5, 1e-6

CONTENDERS = {"sutra_fast": compiled, "numpy mul+sum": np_mul_sum, "numpy einsum": np_einsum,
              "numpy matmul": np_matmul, "Python twin": twin}


@pytest.fixture(scope="module")
def twin_results(batch):
    """The twin's result for each benchmark, computed once (seconds at full size)."""
    cache = {}

    def get(key, fn):
        if key not in cache:
            cache[key] = fn()
        return cache[key]
    return get


@pytest.mark.benchmark(group="mean_pool+l2")
@pytest.mark.parametrize("name", list(CONTENDERS))
def test_mean_pool_l2(benchmark, batch, twin_results, name):
    h, m = batch
    fn = CONTENDERS[name]
    benchmark.extra_info["contender"] = name
    if name == "Python twin":
        out = benchmark.pedantic(fn, args=(h, m), rounds=3, iterations=1)
    else:
        out = benchmark(fn, h, m)
    # against an independent result: the twin, or for the twin's own row numpy
    if name == "Python twin":
        want = np_matmul(h, m)
    else:
        want = twin_results("mean_pool+l2", lambda: twin(h, m))
    np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL)


KERNELS = {
    "mean_pool": (lambda h, m, x: K.mean_pool(h, m), lambda h, m, x: R.mean_pool(h, m),
                  lambda h, m, x: (lambda mf: np.matmul(mf[:, None, :], h)[:, 0, :] / np.maximum(
                      mf.sum(1, keepdims=True), 1))(m.astype(np.float32))),
    "max_pool": (lambda h, m, x: K.max_pool(h, m), lambda h, m, x: R.max_pool(h, m),
                 lambda h, m, x: np.where(m[:, :, None] != 0, h, -np.inf).max(1)),
    "l2_normalize": (lambda h, m, x: K.l2_normalize(x), lambda h, m, x: R.l2_normalize(x),
                     lambda h, m, x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)),
    "matryoshka(128)": (lambda h, m, x: K.matryoshka(x, x.shape[1] // 3),
                        lambda h, m, x: R.matryoshka(x, x.shape[1] // 3),
                        lambda h, m, x: (lambda t: t / np.linalg.norm(t, axis=1, keepdims=True))(
                            x[:, : x.shape[1] // 3])),
}


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("who", ["sutra_fast", "numpy", "Python twin"])
def test_kernel(benchmark, batch, twin_results, kernel, who):
    h, m = batch
    x = np.ascontiguousarray(h[:, 0, :]) if kernel == "max_pool" else h.reshape(-1, h.shape[2])[:1024]
    ours, ref, numpy_fn = KERNELS[kernel]
    benchmark.group = kernel
    benchmark.extra_info["contender"] = who
    if who == "Python twin":
        out = benchmark.pedantic(ref, args=(h, m, x), rounds=2, iterations=1)
    else:
        out = benchmark(ours if who == "sutra_fast" else numpy_fn, h, m, x)
    # against an independent result: the twin, or for the twin's own row numpy
    want = numpy_fn(h, m, x) if who == "Python twin" else twin_results(kernel, lambda: ref(h, m, x))
    np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL)
