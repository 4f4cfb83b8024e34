"""Argument checks shared by the Python API: a wrong type is a TypeError, a
value out of range a ValueError, and both name the argument and what it got.

numpy integers count as ints (a batch size or a token id often comes out of an
array); bools do not, though Python makes them ints (``dimensions=True`` is a
mistake, not 1).
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def is_int(v) -> bool:
    """True for int and numpy integers (and other __index__ types), not bool."""
    return not isinstance(v, (bool, np.bool_)) and hasattr(v, "__index__")


def check_int(name: str, v, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``v`` as a Python int, if it is an int in [lo, hi] (either bound may be None)."""
    if not is_int(v):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = v.__index__()
    if lo is not None and hi is not None and not lo <= v <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {v}")
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def check_flag(name: str, v) -> bool:
    """``v`` as a bool, if it is True or False (numpy's too): ``normalize=None``
    or ``normalize="no"`` would otherwise mean something silently."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(v).__name__}")
    return bool(v)
