"""RWKV generation: load a checkpoint into the compiled core and step it.

    gen = Generator.load("model.pth", dtype="fp32")    # or .safetensors; "bf16" | "int8"
    state = gen.new_state()
    logits = gen.forward([1, 2, 3], state)              # float32 [vocab]; state updated in place

Text generation (tokenizer, sampler, generate/stream) builds on this.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from sutra_fast import _core
from sutra_fast.rwkv_loader import RwkvConfig, detect_config, read_checkpoint

__all__ = ["Generator", "RwkvState"]

_DTYPES = ("fp32", "bf16", "int8")


class RwkvState:
    """Recurrent state of one sequence: three float32 arrays, owned by Python.

    ``att_x_prev`` [L, C], ``att_kv`` [L, H, N, N], ``ffn_x_prev`` [L, C] — the
    layout of the ``rwkv`` package's state. Copy it to branch a sequence (prompt
    caching); serialise with :meth:`to_numpy` / :meth:`from_numpy`.
    """

    __slots__ = ("att_x_prev", "att_kv", "ffn_x_prev")
    _FIELDS = ("att_x_prev", "att_kv", "ffn_x_prev")

    def __init__(self, att_x_prev: np.ndarray, att_kv: np.ndarray, ffn_x_prev: np.ndarray):
        self.att_x_prev = att_x_prev
        self.att_kv = att_kv
        self.ffn_x_prev = ffn_x_prev

    def copy(self) -> "RwkvState":
        return RwkvState(self.att_x_prev.copy(), self.att_kv.copy(), self.ffn_x_prev.copy())

    __copy__ = copy

    def __deepcopy__(self, memo) -> "RwkvState":
        return self.copy()

    def to_numpy(self) -> dict[str, np.ndarray]:
        """Copies of the three arrays, by name (e.g. for ``np.savez``)."""
        return {name: getattr(self, name).copy() for name in self._FIELDS}

    @classmethod
    def from_numpy(cls, arrays) -> "RwkvState":
        """Build a state from a mapping with the three arrays (copied to float32)."""
        try:
            parts = [np.array(arrays[name], dtype=np.float32, order="C", copy=True)
                     for name in cls._FIELDS]
        except KeyError as e:
            raise ValueError(f"state arrays must include {e.args[0]!r}") from None
        return cls(*parts)

    def __repr__(self) -> str:
        L, H, N, _ = self.att_kv.shape
        return f"RwkvState(layers={L}, heads={H}, head_size={N})"


class Generator:
    """An RWKV model loaded into the compiled core (RWKV-7 "x070")."""

    def __init__(self, model: "_core.Rwkv7Model", config: RwkvConfig, path: Path):
        self._model = model
        self._config = config
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike, dtype: str = "fp32", threads: int | None = None) -> "Generator":
        """Load a ``.pth`` (torch zip) or ``.safetensors`` RWKV-7 checkpoint, without torch.

        Arguments:
            path: the checkpoint file.
            dtype: weight precision, ``"fp32"``, ``"bf16"`` or ``"int8"`` (state,
                decay and the recurrence stay float32 in every mode).
            threads: at most this many threads per call (None = all of the pool).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not an RWKV-7 checkpoint, corrupt/truncated file, bad dtype.
        """
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be None or an int >= 1, got {threads!r}")
        path = Path(path)
        ckpt = read_checkpoint(path)
        config = detect_config(ckpt.tensors, source=str(path))
        arrays = {}
        for name, t in ckpt.tensors.items():
            data = t.data if t.dtype != "fp16" else t.data.astype(np.float32)
            arrays[name] = np.ascontiguousarray(data)
        model = _core.Rwkv7Model(arrays, dtype, 0 if threads is None else threads)
        del arrays, ckpt  # the core holds its own copy; drop the file mapping
        return cls(model, config, path)

    # ---- sizes
    @property
    def version(self) -> str:
        return self._config.version

    @property
    def n_layer(self) -> int:
        return self._model.n_layer

    @property
    def n_embd(self) -> int:
        return self._model.n_embd

    @property
    def n_head(self) -> int:
        return self._model.n_head

    @property
    def head_size(self) -> int:
        return self._model.head_size

    @property
    def vocab_size(self) -> int:
        return self._model.vocab_size

    @property
    def dtype(self) -> str:
        return self._model.dtype

    @property
    def config(self) -> RwkvConfig:
        return self._config

    @property
    def decode_bytes(self) -> int:
        """Bytes of weights read per decoded token (for GB/s figures)."""
        return self._model.decode_bytes

    # ---- stepping
    def new_state(self) -> RwkvState:
        """A zero state (the start of a sequence)."""
        L, C, H, N = self.n_layer, self.n_embd, self.n_head, self.head_size
        return RwkvState(np.zeros((L, C), np.float32), np.zeros((L, H, N, N), np.float32),
                         np.zeros((L, C), np.float32))

    def forward(self, token_ids: int | Iterable[int] | np.ndarray, state: RwkvState) -> np.ndarray:
        """Feed tokens (one id or a sequence; more than one is a batched prefill),
        update ``state`` in place and return the float32 [vocab] logits after the last.

        Raises:
            ValueError: no tokens, non-integer ids, ids outside [0, vocab_size),
                or a state of another model's shape.
        """
        if not isinstance(state, RwkvState):
            raise TypeError(f"state must be an RwkvState (from new_state()), got {type(state).__name__}")
        ids = np.asarray([token_ids] if np.isscalar(token_ids) else token_ids)
        if ids.ndim != 1:
            raise ValueError(f"token_ids must be an int or a 1-D sequence of ints, got shape {ids.shape}")
        if ids.size == 0:
            raise ValueError("token_ids must hold at least one token")
        if ids.dtype.kind not in "iu":
            raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
        if ids.dtype.kind == "u" and ids.max() > np.iinfo(np.int64).max:
            raise ValueError(f"token id {ids.max()} is outside the vocabulary [0, {self.vocab_size})")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        return self._model.forward(ids, state.att_x_prev, state.att_kv, state.ffn_x_prev)

    def __repr__(self) -> str:
        return (f"Generator(version={self.version!r}, n_layer={self.n_layer}, n_embd={self.n_embd}, "
                f"n_head={self.n_head}, vocab_size={self.vocab_size}, dtype={self.dtype!r})")
