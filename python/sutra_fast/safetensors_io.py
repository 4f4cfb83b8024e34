"""Read `.safetensors` files with numpy alone.

The format is an 8-byte little-endian header length, a JSON header mapping
each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets
relative to the end of the header), then the raw little-endian tensor bytes.
The file is memory-mapped, so opening a large checkpoint costs nothing until a
tensor is read.
"""
from __future__ import annotations

import json
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
        self.metadata = header.pop("__metadata__", None) or {}
        self._entries = header

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> np.ndarray:
        try:
            e = self._entries[name]
        except KeyError:
            raise KeyError(f"{self.path}: no tensor named {name!r}") from None
        try:
            dt = _DTYPES[e["dtype"]]
        except KeyError:
            raise ValueError(f"{self.path}: tensor {name!r} has unsupported dtype {e['dtype']}") from None
        shape = tuple(int(s) for s in e["shape"])
        begin, end = (int(x) for x in e["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dt.itemsize or self._data_start + end > self._size or begin < 0:
            raise ValueError(f"{self.path}: tensor {name!r} has inconsistent offsets")
        arr = np.frombuffer(self._map, dtype=dt, count=count,
                            offset=self._data_start + begin).reshape(shape)
        if e["dtype"] == "BF16":
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr.astype(dt.newbyteorder("="), copy=False)

    def close(self) -> None:
        # Views handed out keep the map alive; only drop our reference.
        self._map = None

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
