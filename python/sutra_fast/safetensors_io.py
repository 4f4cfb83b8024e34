"""Read `.safetensors` files with numpy alone.

The format is an 8-byte little-endian header length, a JSON header mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the end of the header), then the raw little-endian tensor bytes.
The file is memory-mapped, so opening a large checkpoint costs nothing until a
tensor is read.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
    "BF16": np.dtype("<u2"),  # read as raw bits, widened to float32 on request
}
_MAX_HEADER = 100 * 1024 * 1024
_MAX_DIMS = 32      # numpy's limit is 32 (1.x) or 64 (2.x)
_MAX_SPAN = 2**62   # numpy refuses shapes whose nonzero dims multiply past ~2**63 bytes


def is_uint(x) -> bool:
    """A non-negative JSON integer (bool is an int subclass in Python; not here)."""
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def check_entry(path, name: str, info, itemsizes: dict, supported: str | None = None
                ) -> tuple[str, list[int], int, int]:
    """(dtype, shape, lo, hi) of one safetensors header entry, or a ValueError
    naming the file and the tensor. ``itemsizes``: bytes per element of the
    dtypes the caller reads; with ``supported`` (their names, for the message)
    any other dtype is refused here, without it the caller decides when reading."""
    where = f"{path}: safetensors entry {name!r}"
    if not isinstance(info, dict):
        raise ValueError(f"{where} is malformed: expected an object with dtype, shape and "
                         f"data_offsets, got {type(info).__name__}")
    for key in ("dtype", "shape", "data_offsets"):
        if key not in info:
            raise ValueError(f"{where} is malformed: it has no {key}")
    dt, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dt, str):
        raise ValueError(f"{where}: dtype must be a string, got {dt!r:.80}")
    if supported is not None and dt not in itemsizes:
        raise ValueError(f"{where} has dtype {dt!r:.40}; only {supported} are supported")
    if not isinstance(shape, list) or not all(is_uint(d) for d in shape):
        raise ValueError(f"{where}: shape must be a list of non-negative integers, got {shape!r:.80}")
    if len(shape) > _MAX_DIMS:
        raise ValueError(f"{where}: shape has {len(shape)} dimensions (at most {_MAX_DIMS} "
                         "supported)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(is_uint(o) for o in offsets)):
        raise ValueError(f"{where}: data_offsets must be two non-negative integers, "
                         f"got {offsets!r:.80}")
    if math.prod(max(d, 1) for d in shape) * itemsizes.get(dt, 1) > _MAX_SPAN:
        raise ValueError(f"{where}: shape {shape!s:.80} is too large")
    return dt, shape, offsets[0], offsets[1]


class SafetensorsFile:
    """A read-only view of one ``.safetensors`` file.

    ``names()`` lists the tensors; ``get(name)`` returns a numpy array (a view
    into the memory map for native dtypes; BF16 is widened to float32).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise ValueError(f"{self.path}: not a safetensors file (too short)")
            (n,) = struct.unpack("<Q", f.read(8))
            if n > min(_MAX_HEADER, size - 8):
                raise ValueError(f"{self.path}: not a safetensors file (bad header length {n})")
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ValueError(f"{self.path}: not a safetensors file ({e})") from None
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self._data_start = 8 + n
        self._size = size
        if not isinstance(header, dict):
            raise ValueError(f"{self.path}: not a safetensors file (its header is not a JSON object)")
        self.metadata = header.pop("__metadata__", None) or {}
        sizes = {k: v.itemsize for k, v in _DTYPES.items()}
        self._entries = {name: check_entry(self.path, name, info, sizes)
                         for name, info in header.items()}

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> np.ndarray:
        try:
            e = self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None
        dtype, shape, begin, end = e
        try:
            dt = _DTYPES[dtype]
        except KeyError:
            raise ValueError(f"{self.path}: tensor {name!r} has unsupported dtype {dtype}") from None
        count = math.prod(shape)  # Python ints: no int64 overflow
        if end - begin != count * dt.itemsize or self._data_start + end > self._size:
            raise ValueError(f"{self.path}: tensor {name!r} has inconsistent offsets")
        arr = np.frombuffer(self._map, dtype=dt, count=count,
                            offset=self._data_start + begin).reshape(shape)
        if dtype == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(dt.newbyteorder("="), copy=False)

    def close(self) -> None:
        # Views handed out keep the map alive; only drop our reference.
        self._map = None

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
