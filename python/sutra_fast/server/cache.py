"""Per-text LRU cache of finished vectors, keyed by (model, text, normalize, dimensions)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Hashable, Optional

import numpy as np


class VectorCache:
    """Plain LRU; only touched from the event loop, so it needs no lock."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._d: "OrderedDict[Hashable, np.ndarray]" = OrderedDict()

    def get(self, key: Hashable) -> Optional[np.ndarray]:
        if self.max_entries == 0:
            return None
        v = self._d.get(key)
        if v is not None:
            self._d.move_to_end(key)
        return v

    def put(self, key: Hashable, vec: np.ndarray) -> None:
        if self.max_entries == 0:
            return
        vec = np.array(vec, dtype=np.float32, copy=True)  # own row, not a view of a batch
        vec.flags.writeable = False
        self._d[key] = vec
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def __len__(self) -> int:
        return len(self._d)
