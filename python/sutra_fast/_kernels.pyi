"""Type stubs for sutra_fast._kernels, the Cython module (bindings/_kernels.pyx).

Written by hand from the .pyx; tests/test_stubs.py checks the names and
parameters against the compiled module. Public entry point: sutra_fast.kernels.
Arrays must be C-contiguous; a wrong dtype, shape or layout is a ValueError.
"""
from typing import Any

import numpy as np
import numpy.typing as npt

# hidden: float32 [B, T, H]; mask: int32 or int64 [B, T] of 0/1 -> float32 [B, H]
def mean_pool(hidden: npt.NDArray[np.float32],
              mask: npt.NDArray[np.int32] | npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...
def cls_pool(hidden: npt.NDArray[np.float32],
             mask: npt.NDArray[np.int32] | npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...
def max_pool(hidden: npt.NDArray[np.float32],
             mask: npt.NDArray[np.int32] | npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...

# x: float32 [N, D] -> float32 [N, D] (x itself with inplace=True)
def l2_normalize(x: npt.NDArray[np.float32], eps: float = 1e-12, *,
                 inplace: bool = False) -> npt.NDArray[np.float32]: ...

# x: float32 [N, D] -> float32 [N, dim]
def matryoshka(x: npt.NDArray[np.float32], dim: int | np.integer[Any],
               layer_norm: bool = False) -> npt.NDArray[np.float32]: ...
