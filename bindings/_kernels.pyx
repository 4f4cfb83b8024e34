# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Stateless numpy-array kernels (Cython glue over src/core/embed).

Arguments are checked here, at the boundary, with messages that say the fix;
the C++ kernels then run without the GIL.
"""
from libc.stdint cimport int32_t, int64_t, uintptr_t

cimport core_kernels as ck

import numpy as np

_POOL_KINDS = ("mean", "cls", "max")


cdef object _require_array(object x, str name):
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray, got {type(x).__name__}; "
            f"pass np.asarray({name}, dtype=np.float32)")
    return x


cdef object _check_float32(object x, str name, int ndim, str shape_doc):
    _require_array(x, name)
    if x.dtype != np.float32:
        raise ValueError(
            f"{name} must have dtype float32, got {x.dtype}; pass {name}.astype(np.float32)")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {shape_doc}, got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{name} must be C-contiguous (it is a strided view); pass np.ascontiguousarray({name})")
    if not x.dtype.isnative:
        raise ValueError(f"{name} must be in native byte order; pass {name}.astype(np.float32)")
    return x


cdef object _check_mask(object mask, tuple shape):
    _require_array(mask, "mask")
    if mask.dtype != np.int64 and mask.dtype != np.int32:
        raise ValueError(
            f"mask must have dtype int32 or int64, got {mask.dtype}; pass mask.astype(np.int64)")
    if mask.shape != shape:
        raise ValueError(f"mask must have shape [B, T] = {list(shape)}, got shape {mask.shape}")
    if not mask.flags.c_contiguous:
        raise ValueError("mask must be C-contiguous; pass np.ascontiguousarray(mask)")
    if not mask.dtype.isnative:
        raise ValueError("mask must be in native byte order; pass mask.astype(np.int64)")
    return mask


cdef inline const float* _fptr(object a):
    return <const float*><uintptr_t>a.ctypes.data


cdef object _pool(str kind, object hidden, object mask):
    _check_float32(hidden, "hidden", 3, "[B, T, H]")
    cdef int64_t B = hidden.shape[0], T = hidden.shape[1], H = hidden.shape[2]
    _check_mask(mask, (B, T))
    out = np.empty((B, H), dtype=np.float32)
    if out.size == 0:
        return out
    cdef const float* h = _fptr(hidden)
    cdef float* o = <float*><uintptr_t>out.ctypes.data
    cdef uintptr_t m = mask.ctypes.data
    cdef bint wide = mask.dtype == np.int64
    cdef int k = _POOL_KINDS.index(kind)
    with nogil:
        if wide:
            ck.check_mask(<const int64_t*>m, B * T)
            if k == 0:
                ck.mean_pool(h, <const int64_t*>m, B, T, H, o)
            elif k == 1:
                ck.cls_pool(h, <const int64_t*>m, B, T, H, o)
            else:
                ck.max_pool(h, <const int64_t*>m, B, T, H, o)
        else:
            ck.check_mask(<const int32_t*>m, B * T)
            if k == 0:
                ck.mean_pool(h, <const int32_t*>m, B, T, H, o)
            elif k == 1:
                ck.cls_pool(h, <const int32_t*>m, B, T, H, o)
            else:
                ck.max_pool(h, <const int32_t*>m, B, T, H, o)
    return out


def mean_pool(hidden, mask):
    """Mean of the token vectors where ``mask`` is 1.

    Arguments:
        hidden: float32 array [B, T, H], C-contiguous.
        mask: int32 or int64 array [B, T] of 0/1.

    Returns:
        float32 array [B, H]; a row with no unmasked token is all zeros.
    """
    return _pool("mean", hidden, mask)


def cls_pool(hidden, mask):
    """The first unmasked token vector of each row ([CLS] under either padding side).

    Returns float32 [B, H]; a fully masked row gives zeros.
    """
    return _pool("cls", hidden, mask)


def max_pool(hidden, mask):
    """Element-wise maximum over the unmasked tokens of each row.

    Returns float32 [B, H]; a fully masked row gives zeros.
    """
    return _pool("max", hidden, mask)


def l2_normalize(x, eps=1e-12, *, inplace=False):
    """Divide each row by ``max(||row||, eps)``; zero rows stay zero.

    Arguments:
        x: float32 array [N, D], C-contiguous.
        eps: floor for the norm (finite, >= 0).
        inplace: write into ``x`` (must be writeable) and return it.

    Returns:
        float32 array [N, D].
    """
    _check_float32(x, "x", 2, "[N, D]")
    cdef double e = float(eps)
    if not (e >= 0.0) or e == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if inplace and not x.flags.writeable:
        raise ValueError("inplace=True needs a writeable array; pass a copy or inplace=False")
    out = x if inplace else np.empty_like(x)
    if x.size == 0:
        return out
    cdef int64_t N = x.shape[0], D = x.shape[1]
    cdef const float* src = _fptr(x)
    cdef float* dst = <float*><uintptr_t>out.ctypes.data
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
    _check_float32(x, "x", 2, "[N, D]")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    cdef int64_t N = x.shape[0], D = x.shape[1]
    if not (1 <= dim <= D):
        raise ValueError(f"dim must be between 1 and {D} (the input width), got {dim}")
    cdef int64_t d = dim
    out = np.empty((N, d), dtype=np.float32)
    if out.size == 0:
        return out
    cdef const float* src = _fptr(x)
    cdef float* dst = <float*><uintptr_t>out.ctypes.data
    cdef bint ln = bool(layer_norm)
    with nogil:
        ck.matryoshka(src, N, D, d, ln, dst)
    return out
