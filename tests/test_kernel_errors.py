"""Bad input to the compiled kernels: a clear ValueError/TypeError, never a crash."""
import numpy as np
import pytest

from sutra_fast import kernels as K

POOLS = [K.mean_pool, K.cls_pool, K.max_pool]


@pytest.fixture
def hm():
    return np.ones((2, 3, 4), np.float32), np.ones((2, 3), np.int64)


@pytest.mark.parametrize("fn", POOLS)
def test_pool_rejects_non_arrays(fn, hm):
    h, m = hm
    with pytest.raises(TypeError, match=r"numpy.ndarray.*np.asarray"):
        fn(h.tolist(), m)
    with pytest.raises(TypeError, match="mask must be a numpy.ndarray"):
        fn(h, m.tolist())


@pytest.mark.parametrize("fn", POOLS)
def test_pool_rejects_wrong_dtype(fn, hm):
    h, m = hm
    with pytest.raises(ValueError, match=r"float32, got float64.*astype\(np.float32\)"):
        fn(h.astype(np.float64), m)
    with pytest.raises(ValueError, match=r"int32 or int64, got float32.*astype\(np.int64\)"):
        fn(h, m.astype(np.float32))
    with pytest.raises(ValueError, match="int32 or int64, got bool"):
        fn(h, m.astype(bool))
    with pytest.raises(ValueError, match=r"float32, got >f4"):  # non-native byte order
        fn(h.astype(">f4"), m)
    with pytest.raises(ValueError, match=r"int32 or int64, got >i8"):
        fn(h, m.astype(">i8"))


@pytest.mark.parametrize("fn", POOLS)
def test_pool_rejects_wrong_shape(fn, hm):
    h, m = hm
    with pytest.raises(ValueError, match=r"shape \[B, T, H\], got shape \(2, 12\)"):
        fn(h.reshape(2, 12), m)
    with pytest.raises(ValueError, match=r"mask must have shape \[B, T\] = \[2, 3\]"):
        fn(h, np.ones((2, 4), np.int64))


@pytest.mark.parametrize("fn", POOLS)
def test_pool_rejects_strided_views(fn):
    h = np.ones((2, 3, 8), np.float32)
    m = np.ones((2, 3), np.int64)
    with pytest.raises(ValueError, match=r"C-contiguous.*np.ascontiguousarray\(hidden\)"):
        fn(h[:, :, ::2], m)
    with pytest.raises(ValueError, match="C-contiguous"):
        fn(np.asfortranarray(h), m)
    with pytest.raises(ValueError, match=r"np.ascontiguousarray\(mask\)"):
        fn(h, np.ones((2, 6), np.int64)[:, ::2])


@pytest.mark.parametrize("fn", POOLS)
@pytest.mark.parametrize("bad", [2, -1, 7])
def test_pool_rejects_mask_values_other_than_0_1(fn, hm, bad):
    h, m = hm
    m = m.copy()
    m[1, 2] = bad
    with pytest.raises(ValueError, match=rf"only 0 and 1; found {bad} at flat index 5"):
        fn(h, m)


def test_l2_normalize_errors():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        K.l2_normalize([[1.0, 2.0]])
    with pytest.raises(ValueError, match="float32, got int64"):
        K.l2_normalize(np.ones((3, 4), np.int64))
    with pytest.raises(ValueError, match=r"shape \[N, D\]"):
        K.l2_normalize(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="ascontiguousarray"):
        K.l2_normalize(x.T)
    for eps in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
            K.l2_normalize(x, eps=eps)
    ro = x.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        K.l2_normalize(ro, inplace=True)
    assert K.l2_normalize(ro).shape == (3, 4)  # read-only input is fine otherwise


def test_matryoshka_errors():
    x = np.ones((3, 8), np.float32)
    for dim in (0, -1, 9):
        with pytest.raises(ValueError, match=r"between 1 and 8 \(the input width\)"):
            K.matryoshka(x, dim)
    for dim in (4.0, "4", None, True):
        with pytest.raises(TypeError, match="dim must be an int"):
            K.matryoshka(x, dim)
    with pytest.raises(ValueError, match="float32"):
        K.matryoshka(x.astype(np.float16), 4)
    assert K.matryoshka(x, np.int64(4)).shape == (3, 4)
