"""Compiled kernels vs their pure-Python twins vs the numpy formula.

Tolerances (measured maxima over these inputs, at every ISA level, in brackets):
- mean_pool sums in float32 (as torch does): rtol 1e-5 / atol 1e-6 against
  float64 truth and the twin.
- l2_normalize, and matryoshka without layer norm, sum the norm in double and
  scale in float32: every element within 2 float32 ulps of the double-precision
  twin and of the float64 numpy formula, i.e. |got - want| <= 2 * spacing(want)
  (measured: 1 ulp; vs float64 numpy 1.2 ulps).
- matryoshka with layer_norm=True centres and scales in double, then rounds to
  float32 and L2-normalises: every element within 3 ulps (measured 2; until
  session 6 it centred on a float32-rounded mean, 46 ulps on small elements
  near the mean). The fuzzed bound for any row is in test_fuzz_kernels.py.
- cls/max pooling are exact copies.
"""
import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import kernels as K
from sutra_fast import reference as R

SHAPES = [(1, 1, 1), (2, 1, 384), (3, 7, 1), (4, 16, 17), (5, 33, 383), (2, 128, 768)]


def assert_ulps(got, want, n):
    """Every element of got within n float32 ulps of want: |got - want| <= n * spacing(want)."""
    want32 = np.asarray(want, np.float32)
    err = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    ulps = np.spacing(np.abs(want32)).astype(np.float64)
    assert got.shape == want32.shape
    bad = ~(err <= n * ulps)
    worst = np.max(err / ulps) if err.size else 0.0
    assert not bad.any(), f"{bad.sum()} elements beyond {n} ulps; worst {worst:.3g} ulps"


def make(shape, seed, mask_dtype=np.int64, scale=1.0):
    rng = np.random.default_rng(seed)
    B, T, H = shape
    hidden = (rng.standard_normal(shape) * scale).astype(np.float32)
    mask = (rng.random((B, T)) < 0.7).astype(mask_dtype)
    if B >= 2:
        mask[0, :] = 0  # one fully masked row
        mask[-1, :] = 1
    return hidden, mask


def numpy_mean_pool(h, m):
    m64 = m.astype(np.float64)[:, :, None]
    return (h.astype(np.float64) * m64).sum(1) / np.maximum(m64.sum(1), 1.0)


def numpy_max_pool(h, m):
    masked = np.where(m[:, :, None] != 0, h, -np.inf)
    out = masked.max(1) if h.shape[1] else np.zeros((h.shape[0], h.shape[2]), np.float32)
    out[~(m != 0).any(1)] = 0.0
    return out.astype(np.float32)


def numpy_cls_pool(h, m):
    out = np.zeros((h.shape[0], h.shape[2]), np.float32)
    for b in range(h.shape[0]):
        idx = np.flatnonzero(m[b])
        if idx.size:
            out[b] = h[b, idx[0]]
    return out


def numpy_l2(x, eps=1e-12):
    x64 = x.astype(np.float64)
    return (x64 / np.maximum(np.linalg.norm(x64, axis=1, keepdims=True), eps)).astype(np.float32)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_dtype", [np.int32, np.int64])
def test_mean_pool(isa, threads, shape, mask_dtype):
    h, m = make(shape, 1, mask_dtype)
    out = K.mean_pool(h, m)
    assert out.dtype == np.float32 and out.shape == (shape[0], shape[2])
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, numpy_mean_pool(h, m), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, R.mean_pool(h, m), rtol=1e-5, atol=1e-6)
    if shape[0] >= 2:
        assert np.all(out[0] == 0.0)  # fully masked row: zeros, never NaN


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_dtype", [np.int32, np.int64])
def test_cls_and_max_pool_are_exact(isa, threads, shape, mask_dtype):
    h, m = make(shape, 2, mask_dtype)
    np.testing.assert_array_equal(K.cls_pool(h, m), numpy_cls_pool(h, m))
    np.testing.assert_array_equal(K.cls_pool(h, m), R.cls_pool(h, m))
    np.testing.assert_array_equal(K.max_pool(h, m), numpy_max_pool(h, m))
    np.testing.assert_array_equal(K.max_pool(h, m), R.max_pool(h, m))


def test_cls_pool_follows_left_padding(isa):
    h, _ = make((2, 5, 8), 3)
    m = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.int64)
    out = K.cls_pool(h, m)
    np.testing.assert_array_equal(out[0], h[0, 2])
    np.testing.assert_array_equal(out[1], h[1, 0])


def test_padding_values_never_leak(isa):
    h, m = make((3, 9, 16), 4)
    h[m == 0] = np.nan  # garbage under the padding
    for fn in (K.mean_pool, K.max_pool, K.cls_pool):
        assert np.isfinite(fn(h, m)).all()


@pytest.mark.parametrize("B,T,H", [(0, 4, 8), (3, 0, 8), (3, 4, 0), (0, 0, 0)])
def test_pool_empty_dimensions(isa, B, T, H):
    h = np.zeros((B, T, H), np.float32)
    m = np.ones((B, T), np.int64)
    for fn in (K.mean_pool, K.cls_pool, K.max_pool):
        out = fn(h, m)
        assert out.shape == (B, H) and out.dtype == np.float32
        assert np.all(out == 0.0)


def test_pool_huge_values(isa):
    h, m = make((4, 16, 40), 5, scale=1e30)
    np.testing.assert_allclose(K.mean_pool(h, m), numpy_mean_pool(h, m), rtol=1e-5, atol=0)
    np.testing.assert_array_equal(K.max_pool(h, m), numpy_max_pool(h, m))


@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (32, 384), (7, 1024), (1000, 64)])
def test_l2_normalize(isa, threads, shape):
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    x[0] = 0.0  # zero rows stay zero
    out = K.l2_normalize(x)
    assert_ulps(out, numpy_l2(x), 2)
    assert_ulps(out, R.l2_normalize(x), 2)
    assert np.all(out[0] == 0.0)
    norms = np.linalg.norm(out[1:].astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)


def test_l2_normalize_huge_and_tiny_values(isa):
    x = np.array([[3e38, 3e38, -3e38], [1e-10, 2e-10, 2e-10], [1e-45, 0, 0]], np.float32)
    out = K.l2_normalize(x)
    assert_ulps(out, R.l2_normalize(x), 2)
    assert_ulps(out[0], np.array([3**-0.5, 3**-0.5, -(3**-0.5)]), 2)
    assert_ulps(out[1], np.array([1 / 3, 2 / 3, 2 / 3]), 2)
    assert out[2, 0] == np.float32(float(x[2, 0]) / 1e-12)  # norm under eps: divided by eps


def test_l2_normalize_eps_and_inplace(isa):
    x = np.full((2, 4), 1e-3, np.float32)
    out = K.l2_normalize(x, eps=1.0)  # the norm (2e-3) is under eps: divide by eps
    assert_ulps(out, x / 1.0, 2)
    assert_ulps(out, R.l2_normalize(x, eps=1.0), 2)
    y = x.copy()
    res = K.l2_normalize(y, inplace=True)
    assert res is y
    assert_ulps(y, numpy_l2(x), 2)
    assert K.l2_normalize(np.zeros((0, 5), np.float32)).shape == (0, 5)


def test_l2_normalize_eps_zero(isa):
    """eps=0.0 is no floor at all: every nonzero row is divided by its own norm,
    also norms far under the default 1e-12 and under 1.0, within 2 ulps of the
    twin and of the exact values. A zero row is 0 / max(0, 0) = NaN, as numpy's
    x / max(||x||, eps) gives (torch.nn.functional.normalize too), and the twin."""
    x = np.array([[1e-3, 1e-3, 1e-3, 1e-3],   # norm 2e-3: under 1.0
                  [3e-20, 4e-20, 0, 0],       # norm 5e-20: under the default eps
                  [1e-45, 0, 0, 0]], np.float32)  # the smallest denormal
    out = K.l2_normalize(x, eps=0.0)
    exact = np.array([[0.5, 0.5, 0.5, 0.5], [0.6, 0.8, 0, 0], [1, 0, 0, 0]])
    assert_ulps(out, exact, 2)
    assert_ulps(out, R.l2_normalize(x, eps=0.0), 2)
    z = np.zeros((1, 3), np.float32)
    with np.errstate(invalid="ignore"):
        want = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 0.0)
    got = K.l2_normalize(z, eps=0.0)
    assert np.isnan(want).all()
    np.testing.assert_array_equal(got, want)  # NaN where numpy is NaN
    np.testing.assert_array_equal(got, R.l2_normalize(z, eps=0.0))


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("dim", [1, 64, 255, 384])
def test_matryoshka(isa, threads, layer_norm, dim):
    """matryoshka vs the twin and vs float64 numpy: every element within 2 ulps
    without layer norm, within 3 with it (see the module docstring)."""
    x = (np.random.default_rng(7).standard_normal((9, 384)) * 3 + 0.5).astype(np.float32)
    out = K.matryoshka(x, dim, layer_norm=layer_norm)
    assert out.shape == (9, dim) and out.dtype == np.float32
    x64 = x.astype(np.float64)
    if layer_norm:
        x64 = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5)
    expected = x64[:, :dim] / np.linalg.norm(x64[:, :dim], axis=1, keepdims=True)
    twin = R.matryoshka(x, dim, layer_norm)
    n = 3 if layer_norm else 2
    assert_ulps(out, expected, n)
    assert_ulps(out, twin, n)


def test_threads_give_identical_results(isa):
    h, m = make((64, 128, 384), 8)
    x = h.reshape(-1, 384)
    before = sf.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            sf.set_num_threads(n)
            results.append((K.mean_pool(h, m), K.max_pool(h, m), K.l2_normalize(x)))
    finally:
        sf.set_num_threads(before)
    for r in results[1:]:
        for a, b in zip(results[0], r):
            np.testing.assert_array_equal(a, b)


def test_isa_levels_give_identical_bits():
    """Every reduction sums in a fixed order and nothing is FMA-contracted, so the
    instruction set changes speed, never results."""
    h, m = make((8, 40, 383), 9)
    x = np.ascontiguousarray(h[:, 0, :]) * 1e3
    before = sf.cpu_info()["isa"]
    try:
        outs = {}
        for level in sf.cpu_info()["supported_isas"]:
            sf.set_cpu_isa(level)
            assert sf.cpu_info()["isa"] == level
            outs[level] = (K.mean_pool(h, m), K.max_pool(h, m), K.l2_normalize(x),
                           K.matryoshka(x, 100), K.matryoshka(x, 100, layer_norm=True))
    finally:
        sf.set_cpu_isa(before)
    for level, results in outs.items():
        for got, want in zip(results, outs["scalar"]):
            np.testing.assert_array_equal(got, want, err_msg=level)
