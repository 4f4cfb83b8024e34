"""Fuzzing the compiled kernels: random shapes, masks, values, dtypes and
strides. Valid input must match the pure-Python twin; invalid input must be a
ValueError/TypeError and must not touch the arrays passed in.

Tolerances against the twin: each test states its own. l2_normalize over any
finite eps >= 0 (test_l2_eps_matches_twin), and for accepted arbitrary arrays
(test_*_any_arrays, standard-normal values): pools rtol 2e-5 / atol 2e-3;
l2_normalize and matryoshka without layer norm 2 float32 ulps per element
(measured 1); matryoshka with layer norm the bound of ``assert_layer_norm_close``
(measured at most 3.0 of its 8).
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sutra_fast import kernels as K
from sutra_fast import reference as R

POOLS = ["mean_pool", "cls_pool", "max_pool"]
U = 2.0**-24  # float32 unit roundoff
finite = st.floats(-1e4, 1e4, width=32)
dims = st.tuples(st.integers(0, 5), st.integers(0, 9), st.integers(1, 40))


def assert_ulps(got, want, n):
    """Every element of got within n float32 ulps of want: |got - want| <= n * spacing(want)."""
    want32 = np.asarray(want, np.float32)
    assert got.shape == want32.shape
    err = np.abs(got.astype(np.float64) - want32.astype(np.float64))
    ulps = np.spacing(np.abs(want32)).astype(np.float64)
    bad = ~(err <= n * ulps)
    worst = np.max(err / ulps) if err.size else 0.0
    assert not bad.any(), f"{bad.sum()} elements beyond {n} ulps; worst {worst:.3g} ulps"


def assert_layer_norm_close(got, x, dim, want):
    """matryoshka(x, dim, layer_norm=True) vs the twin's ``want``, per element:

        |got - want| <= 8 * U * (max|want_row| + sqrt(dim) * |mean| / ||c[:dim]|| * ||want_row||)

    with mean and c = x - mean the row's mean and centred values in float64. The
    kernel centres in double, so the error is a few roundings of each element
    (U * its size); the mean term (U * |mean|, scaled by 1 / ||c[:dim]|| by the L2
    normalisation) covers rows whose kept values sit within rounding of their mean,
    where kernel and twin each normalise their own rounding noise. A row whose kept
    values equal its mean exactly (||c[:dim]|| = 0) is unbounded."""
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    x64 = x.astype(np.float64)
    mean = x64.mean(1, keepdims=True)
    cn = np.linalg.norm((x64 - mean)[:, :dim], axis=1, keepdims=True)
    shift = np.divide(np.sqrt(dim) * np.abs(mean), cn, out=np.full_like(cn, np.inf), where=cn > 0)
    wn = np.linalg.norm(want, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf * 0 for an all-zero twin row
        bound = 8 * U * (np.abs(want).max(1, keepdims=True) + np.nan_to_num(shift * wn, nan=0.0))
    err = np.abs(got.astype(np.float64) - want)
    bad = ~(err <= bound)
    if bad.any():
        with np.errstate(divide="ignore", invalid="ignore"):  # a bound of 0 on a zero row
            worst = np.nanmax(err / bound)
        raise AssertionError(f"{bad.sum()} elements beyond the bound; worst {worst:.3g} of it")


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
    """Valid pooling inputs (values up to 1e4) equal the twin, rtol 2e-5 / atol 2e-3."""
    h, m = hm
    got = getattr(K, fn)(h, m)
    want = getattr(R, fn)(h, m)
    assert got.dtype == np.float32 and got.shape == (h.shape[0], h.shape[2])
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-3)


@settings(max_examples=150, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 6), st.integers(1, 50)), elements=finite),
       layer_norm=st.booleans(), data=st.data())
def test_l2_and_matryoshka_match_twin(x, layer_norm, data):
    """Valid inputs (values up to 1e4, denormals included) equal the twin: l2_normalize
    rtol 2e-5 / atol 1e-6, matryoshka rtol 1e-4 / atol 1e-5."""
    np.testing.assert_allclose(K.l2_normalize(x), R.l2_normalize(x), rtol=2e-5, atol=1e-6)
    dim = data.draw(st.integers(1, x.shape[1]))
    np.testing.assert_allclose(K.matryoshka(x, dim, layer_norm=layer_norm),
                               R.matryoshka(x, dim, layer_norm=layer_norm), rtol=1e-4, atol=1e-5)


@settings(max_examples=150, deadline=None)
@given(x=hnp.arrays(np.float32, st.tuples(st.integers(0, 6), st.integers(0, 50)), elements=finite),
       eps=st.one_of(st.sampled_from([0.0, 1e-300, 1e-12, 1.0]), st.floats(0, 1e4, width=32)))
def test_l2_eps_matches_twin(x, eps):
    """l2_normalize(x, eps) for any finite eps >= 0 (0.0 included) equals the twin
    within 2 ulps per element. eps is taken as a float32 (1e-300 is 0). With eps 0
    a zero row is 0 / 0: NaN in the kernel and the twin, as numpy's
    x / max(||x||, eps) gives."""
    got = K.l2_normalize(x, eps)
    want = R.l2_normalize(x, eps)
    assert got.dtype == np.float32 and got.shape == x.shape
    zero = ~(x != 0).any(1) if x.shape[1] else np.zeros(x.shape[0], bool)
    if np.float32(eps) == 0 and zero.any():
        assert np.isnan(got[zero]).all() and np.isnan(want[zero]).all()
        assert_ulps(got[~zero], want[~zero], 2)
    else:
        assert_ulps(got, want, 2)


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
    """Any arrays: a ValueError/TypeError that leaves them alone, or a float32 result
    equal to the twin (rtol 2e-5 / atol 2e-3)."""
    out = clean_or_result(getattr(K, fn), h, m)
    if out is not None:  # accepted: then it was valid, and agrees with the twin
        np.testing.assert_allclose(out, getattr(R, fn)(h, m), rtol=2e-5, atol=2e-3)


@settings(max_examples=200, deadline=None)
@given(x=any_array(), dim=st.one_of(st.integers(-3, 70), st.sampled_from([2**31, 2**63, 2**64])),
       eps=st.sampled_from([1e-12, 0.0, -1.0, float("nan"), float("inf")]))
def test_l2_matryoshka_any_arrays(x, dim, eps):
    """Any array, dim and eps: a ValueError/TypeError that leaves x alone, or a float32
    result equal to the twin: l2_normalize (default eps and the drawn one, 0.0
    included) and matryoshka within 2 ulps per element, matryoshka with layer
    norm within the bound of assert_layer_norm_close."""
    out = clean_or_result(K.l2_normalize, x)
    if out is not None:
        assert_ulps(out, R.l2_normalize(x), 2)
    out = clean_or_result(K.l2_normalize, x, eps)
    if out is not None:  # only finite eps >= 0 is accepted
        assert eps >= 0.0 and np.isfinite(eps)
        assert_ulps(out, R.l2_normalize(x, eps), 2)
    out = clean_or_result(K.matryoshka, x, dim)
    if out is not None:
        assert_ulps(out, R.matryoshka(x, dim), 2)
    out = clean_or_result(K.matryoshka, x, dim, layer_norm=True)
    if out is not None:
        assert_layer_norm_close(out, x, dim, R.matryoshka(x, dim, layer_norm=True))
