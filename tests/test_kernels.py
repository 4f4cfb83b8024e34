"""Compiled kernels vs their pure-Python twins vs the numpy formula.

Tolerances: pooling sums run in float32 (as torch does), so mean_pool is
checked at rtol 1e-5 / atol 1e-6 against float64 truth; l2_normalize and
matryoshka accumulate in double and differ from the double-precision twin by
at most 2 float32 ulps (rtol 2.4e-7); cls/max pooling are exact copies.
"""
import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import kernels as K
from sutra_fast import reference as R

F32_2ULP = 2.4e-7
SHAPES = [(1, 1, 1), (2, 1, 384), (3, 7, 1), (4, 16, 17), (5, 33, 383), (2, 128, 768)]


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
    np.testing.assert_allclose(out, numpy_l2(x), rtol=F32_2ULP, atol=0)
    np.testing.assert_allclose(out, R.l2_normalize(x), rtol=F32_2ULP, atol=0)
    assert np.all(out[0] == 0.0)
    norms = np.linalg.norm(out[1:].astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-6)


def test_l2_normalize_huge_and_tiny_values(isa):
    x = np.array([[3e38, 3e38, -3e38], [1e-10, 2e-10, 2e-10], [1e-45, 0, 0]], np.float32)
    out = K.l2_normalize(x)
    np.testing.assert_allclose(out, R.l2_normalize(x), rtol=F32_2ULP, atol=0)
    np.testing.assert_allclose(out[0], [3**-0.5, 3**-0.5, -(3**-0.5)], rtol=F32_2ULP)
    np.testing.assert_allclose(out[1], [1 / 3, 2 / 3, 2 / 3], rtol=F32_2ULP)
    assert out[2, 0] == np.float32(float(x[2, 0]) / 1e-12)  # norm under eps: divided by eps


def test_l2_normalize_eps_and_inplace(isa):
    x = np.full((2, 4), 1e-3, np.float32)
    out = K.l2_normalize(x, eps=1.0)  # the norm (2e-3) is under eps: divide by eps
    np.testing.assert_allclose(out, x / 1.0, rtol=F32_2ULP)
    y = x.copy()
    res = K.l2_normalize(y, inplace=True)
    assert res is y
    np.testing.assert_allclose(y, numpy_l2(x), rtol=F32_2ULP)
    assert K.l2_normalize(np.zeros((0, 5), np.float32)).shape == (0, 5)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("dim", [1, 64, 255, 384])
def test_matryoshka(isa, threads, layer_norm, dim):
    x = (np.random.default_rng(7).standard_normal((9, 384)) * 3 + 0.5).astype(np.float32)
    out = K.matryoshka(x, dim, layer_norm=layer_norm)
    assert out.shape == (9, dim)
    x64 = x.astype(np.float64)
    if layer_norm:
        x64 = (x64 - x64.mean(1, keepdims=True)) / np.sqrt(x64.var(1, keepdims=True) + 1e-5)
    expected = numpy_l2(x64[:, :dim].astype(np.float32)) if not layer_norm else (
        x64[:, :dim] / np.linalg.norm(x64[:, :dim], axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out, R.matryoshka(x, dim, layer_norm), rtol=1e-6, atol=1e-7)


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
