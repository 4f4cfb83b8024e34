"""Compiled embedding kernels (Cython over the C++ core).

Every function takes C-contiguous float32 numpy arrays (masks: int32/int64 of
0/1) and returns new float32 arrays; nothing is copied behind your back: a
wrong dtype or a strided view is a ValueError that says how to convert it.
Pure-Python twins with the same names live in :mod:`sutra_fast.reference`.
"""
from sutra_fast._kernels import cls_pool, l2_normalize, matryoshka, max_pool, mean_pool

__all__ = ["mean_pool", "cls_pool", "max_pool", "l2_normalize", "matryoshka"]
