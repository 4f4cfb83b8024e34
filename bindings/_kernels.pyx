# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Stateless numpy-array kernels (Cython glue over src/core/embed).

Arguments are checked here, at the boundary, with messages that say the fix;
the C++ kernels then run without the GIL.
"""
from libc.stdint cimport int32_t, int64_t

cimport numpy as cnp

cimport core_kernels as ck

import numpy as np

cnp.import_array()


cdef int _require_array(object x, str name) except -1:
    if not cnp.PyArray_Check(x):
        raise TypeError(
            f"{name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"pass np.asarray({name}, dtype=np.float32)")
    return 0


cdef int _check_layout(cnp.ndarray a, str name) except -1:
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(
            f"{name} must be C-contiguous (it is a strided view); pass np.ascontiguousarray({name})")
    return 0


cdef cnp.ndarray _check_float32(object x, str name, int ndim, str shape_doc):
    _require_array(x, name)
    cdef cnp.ndarray a = <cnp.ndarray>x
    if cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError(
            f"{name} must have dtype float32, got {a.dtype}; pass {name}.astype(np.float32)")
    if cnp.PyArray_NDIM(a) != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {x.shape}")
    _check_layout(a, name)
    return a


# Returns 8 for an int64 mask, 4 for int32.
cdef int _check_mask(object mask, int64_t B, int64_t T) except -1:
    _require_array(mask, "mask")
    cdef cnp.ndarray m = <cnp.ndarray>mask
    cdef int t = cnp.PyArray_TYPE(m)
    if (t != cnp.NPY_INT64 and t != cnp.NPY_INT32) or not cnp.PyArray_ISNOTSWAPPED(m):
        raise ValueError(
            f"mask must have dtype int32 or int64, got {m.dtype}; pass mask.astype(np.int64)")
    if cnp.PyArray_NDIM(m) != 2 or m.shape[0] != B or m.shape[1] != T:
        raise ValueError(f"mask must have shape [B, T] = [{B}, {T}], got shape {mask.shape}")
    _check_layout(m, "mask")
    return 8 if t == cnp.NPY_INT64 else 4


cdef inline cnp.ndarray _empty(int64_t rows, int64_t cols):
    cdef cnp.npy_intp dims[2]
    dims[0] = rows
    dims[1] = cols
    return cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32, 0)


cdef enum PoolKind:
    MEAN, CLS, MAX


cdef object _pool(PoolKind kind, object hidden, object mask):
    cdef cnp.ndarray h = _check_float32(hidden, "hidden", 3, "[B, T, H]")
    cdef int64_t B = h.shape[0], T = h.shape[1], H = h.shape[2]
    cdef int width = _check_mask(mask, B, T)
    cdef cnp.ndarray out = _empty(B, H)
    if B == 0 or H == 0:
        return out
    cdef const float* hp = <const float*>cnp.PyArray_DATA(h)
    cdef float* o = <float*>cnp.PyArray_DATA(out)
    cdef void* m = cnp.PyArray_DATA(<cnp.ndarray>mask)
    with nogil:
        if width == 8:
            ck.check_mask(<const int64_t*>m, B * T)
            if kind == MEAN:
                ck.mean_pool(hp, <const int64_t*>m, B, T, H, o)
            elif kind == CLS:
                ck.cls_pool(hp, <const int64_t*>m, B, T, H, o)
            else:
                ck.max_pool(hp, <const int64_t*>m, B, T, H, o)
        else:
            ck.check_mask(<const int32_t*>m, B * T)
            if kind == MEAN:
                ck.mean_pool(hp, <const int32_t*>m, B, T, H, o)
            elif kind == CLS:
                ck.cls_pool(hp, <const int32_t*>m, B, T, H, o)
            else:
                ck.max_pool(hp, <const int32_t*>m, B, T, H, o)
    return out


def mean_pool(hidden, mask):
    """Mean of the token vectors where ``mask`` is 1.

    Arguments:
        hidden: float32 array [B, T, H], C-contiguous.
        mask: int32 or int64 array [B, T] of 0/1.

    Returns:
        float32 array [B, H]; a row with no unmasked token is all zeros.
    """
    return _pool(MEAN, hidden, mask)


def cls_pool(hidden, mask):
    """The first unmasked token vector of each row ([CLS] under either padding side).

    Returns float32 [B, H]; a fully masked row gives zeros.
    """
    return _pool(CLS, hidden, mask)


def max_pool(hidden, mask):
    """Element-wise maximum over the unmasked tokens of each row.

    Returns float32 [B, H]; a fully masked row gives zeros.
    """
    return _pool(MAX, hidden, mask)


def l2_normalize(x, eps=1e-12, *, inplace=False):
    """Divide each row by ``max(||row||, eps)``; zero rows stay zero.

    Arguments:
        x: float32 array [N, D], C-contiguous.
        eps: floor for the norm (finite, >= 0).
        inplace: write into ``x`` (must be writeable) and return it.

    Returns:
        float32 array [N, D].
    """
    cdef cnp.ndarray a = _check_float32(x, "x", 2, "[N, D]")
    cdef double e = float(eps)
    if not (e >= 0.0) or e == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if inplace and not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError("inplace=True needs a writeable array; pass a copy or inplace=False")
    cdef int64_t N = a.shape[0], D = a.shape[1]
    cdef cnp.ndarray out = a if inplace else _empty(N, D)
    if N == 0 or D == 0:
        return out
    cdef const float* src = <const float*>cnp.PyArray_DATA(a)
    cdef float* dst = <float*>cnp.PyArray_DATA(out)
    cdef float fe = <float>e
    with nogil:
        ck.l2_normalize(src, N, D, fe, dst)
    return out


def matryoshka(x, dim, layer_norm=False):
    """Matryoshka truncation: optional layer norm (no affine), keep ``dim`` values, L2-normalise.

    Arguments:
        x: float32 array [N, D], C-contiguous.
        dim: kept width, 1 <= dim <= D.
        layer_norm: apply layer norm over all D first (the nomic-embed recipe).

    Returns:
        float32 array [N, dim].
    """
    cdef cnp.ndarray a = _check_float32(x, "x", 2, "[N, D]")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    cdef int64_t N = a.shape[0], D = a.shape[1]
    if not (1 <= dim <= D):
        raise ValueError(f"dim must be between 1 and {D} (the input width), got {dim}")
    cdef int64_t d = dim
    cdef cnp.ndarray out = _empty(N, d)
    if N == 0:
        return out
    cdef const float* src = <const float*>cnp.PyArray_DATA(a)
    cdef float* dst = <float*>cnp.PyArray_DATA(out)
    cdef bint ln = bool(layer_norm)
    with nogil:
        ck.matryoshka(src, N, D, d, ln, dst)
    return out
