"""Fuzzing the compiled kernels: random shapes, masks, values, dtypes and
strides. Valid input must match the pure-Python twin; invalid input must be a
ValueError/TypeError and must not touch the arrays passed in.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sutra_fast import kernels as K
from sutra_fast import reference as R

POOLS = ["mean_pool", "cls_pool", "max_pool"]
finite = st.floats(-1e4, 1e4, width=32)
dims = st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(1, 40))


@st.composite
def pool_inputs(draw):
    B, T, H = draw(dims)
    h = draw(hnp.arrays(np.float32, (B, T, H), elements=finite))
    m = draw(hnp.arrays(draw(st.sampled_from([np.int32, np.int64])), (B, T),
                        elements=st.sampled_from([0, 1])))
    return h, m


@settings(max_examples=150, deadline=None)
@given(fn=st.sampled_from(POOLS), hm=pool_inputs())
def test_pools_match_twin(fn, hm):
    h, m = hm
    got = getattr(K, fn)(h, m)
    want = getattr(R, fn)(h, m)
    assert got.dtype == np.float32 and got.shape == (h.shape[0], h.shape[2])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-3)


@settings(max_examples=150, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 6), st.integers(1, 50)), elements=finite),
       layer_norm=st.booleans(), data=st.data())
def test_l2_and_matryoshka_match_twin(x, layer_norm, data):
    np.testing.assert_allclose(K.l2_normalize(x), R.l2_normalize(x), rtol=2e-5, atol=1e-6)
    dim = data.draw(st.integers(1, x.shape[1]))
    np.testing.assert_allclose(K.matryoshka(x, dim, layer_norm=layer_norm),
                               R.matryoshka(x, dim, layer_norm=layer_norm), rtol=1e-4, atol=1e-5)


any_dtype = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8,
                             np.bool_, np.complex64, np.dtype(">f4"), np.dtype(">i8")])
any_shape = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)


@st.composite
def any_array(draw):
    a = np.asarray(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(draw(any_shape)))
    a = a.astype(draw(any_dtype))
    view = draw(st.sampled_from(["plain", "step", "reverse", "transpose", "fortran"]))
    if a.ndim and view == "step":
        a = a[..., ::2]
    elif a.ndim and view == "reverse":
        a = a[::-1]
    elif view == "transpose":
        a = a.T
    elif view == "fortran":
        a = np.asfortranarray(a)
    return a


def clean_or_result(fn, *args, **kw):
    before = [a.copy() for a in args if isinstance(a, np.ndarray)]
    try:
        out = fn(*args, **kw)
    except (ValueError, TypeError):
        after = [a for a in args if isinstance(a, np.ndarray)]
        for b, a in zip(before, after):  # a rejected call leaves its inputs alone
            np.testing.assert_array_equal(a, b)
        return None
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    return out


@settings(max_examples=200, deadline=None)
@given(fn=st.sampled_from(POOLS), h=any_array(), m=any_array())
def test_pools_any_arrays(fn, h, m):
    out = clean_or_result(getattr(K, fn), h, m)
    if out is not None:  # accepted: then it was valid, and agrees with the twin
        np.testing.assert_allclose(out, getattr(R, fn)(h, m), rtol=2e-5, atol=2e-3)


@settings(max_examples=200, deadline=None)
@given(x=any_array(), dim=st.one_of(st.integers(-3, 70), st.sampled_from([2**31, 2**63, 2**64])),
       eps=st.sampled_from([1e-12, 0.0, -1.0, float("nan"), float("inf")]))
def test_l2_matryoshka_any_arrays(x, dim, eps):
    clean_or_result(K.l2_normalize, x)
    clean_or_result(K.l2_normalize, x, eps)
    clean_or_result(K.matryoshka, x, dim)
    clean_or_result(K.matryoshka, x, dim, layer_norm=True)
