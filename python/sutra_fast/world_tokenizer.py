"""RWKV World tokenizer (compiled).

Greedy longest match over UTF-8 bytes with the RWKV World vocabulary
(``rwkv_vocab_v20230424.txt``, shipped in ``sutra_fast/data``): the ids are
identical to the ``rwkv`` package's ``TRIE_TOKENIZER``. Id 0 is end-of-text; it
is not in the vocabulary file and decodes to ``b""``.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from sutra_fast import _core

DEFAULT_VOCAB = Path(__file__).resolve().parent / "data" / "rwkv_vocab_v20230424.txt"

_default_lock = threading.Lock()
_default: "WorldTokenizer | None" = None


class WorldTokenizer:
    """RWKV World tokenizer. Thread-safe; encode/encode_batch release the GIL.

    Build with :meth:`default` (the shipped World vocabulary, loaded once per
    process) or :meth:`from_file`.
    """

    __slots__ = ("_impl", "path")

    def __init__(self, impl, path: str | None = None):
        if not isinstance(impl, _core.WorldTokenizer):
            raise TypeError("use WorldTokenizer.default() or WorldTokenizer.from_file(path)")
        self._impl = impl
        self.path = path

    @classmethod
    def default(cls) -> "WorldTokenizer":
        """The RWKV World vocabulary (65529 tokens), cached after the first call."""
        global _default
        with _default_lock:
            if _default is None:
                _default = cls.from_file(DEFAULT_VOCAB)
            return _default

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "WorldTokenizer":
        """Load a vocabulary in the ``rwkv_vocab_v20230424.txt`` format
        (``id repr(token) byte_length`` per line).

        Raises:
            ValueError: a malformed line (the message names the line number).
            RuntimeError: the file cannot be read.
        """
        p = os.fspath(path)
        if not isinstance(p, str):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        return cls(_core.WorldTokenizer.from_file(p), p)

    @property
    def vocab_size(self) -> int:
        """Largest id + 1 (65530 for the World vocabulary; models pad to 65536)."""
        return self._impl.vocab_size

    def __len__(self) -> int:
        return self._impl.vocab_size

    def __repr__(self) -> str:
        return f"WorldTokenizer(vocab_size={self.vocab_size}, path={self.path!r})"

    def encode(self, text: str, *, as_numpy: bool = False):
        """Token ids of ``text`` (list[int], or an int32 numpy array with ``as_numpy``).

        Raises TypeError for a non-str and ValueError for a str holding a lone
        surrogate (it has no UTF-8 form).
        """
        return self._impl.encode(text, bool(as_numpy))

    def encode_bytes(self, data: bytes, *, as_numpy: bool = False):
        """Token ids of raw bytes (any bytes, invalid UTF-8 included)."""
        return self._impl.encode_bytes(data, bool(as_numpy))

    def encode_batch(self, texts: Iterable[str], num_threads: int | None = None, *,
                     as_numpy: bool = False) -> list:
        """Encode many texts over the shared thread pool (GIL released).

        ``num_threads`` caps the threads used (default: ``sutra_fast.get_num_threads()``).
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("texts must be an iterable of str, not a single str/bytes")
        if not hasattr(texts, "__iter__"):
            raise TypeError(f"texts must be an iterable of str, got {type(texts).__name__}")
        cap = _core.MAX_NUM_THREADS
        if num_threads is None:
            n = 0
        elif isinstance(num_threads, (bool, np.bool_)) or not isinstance(num_threads, (int, np.integer)):
            raise TypeError(f"num_threads must be an int or None, got {type(num_threads).__name__}")
        elif not 1 <= num_threads <= cap:
            raise ValueError(f"num_threads must be >= 1 and <= {cap} (the cap on threads for "
                             f"compiled calls), got {num_threads}")
        else:
            n = int(num_threads)
        return self._impl.encode_batch(list(texts), n, bool(as_numpy))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """Concatenated token bytes. Id 0 (end of text) gives ``b""``.

        Raises ValueError naming the first id out of range or without a token.
        """
        return self._impl.decode_bytes(ids)

    def decode(self, ids: Sequence[int], errors: str = "replace") -> str:
        """Decoded text. Invalid UTF-8 is replaced with U+FFFD (``errors`` is
        passed to ``bytes.decode``; "strict" raises UnicodeDecodeError).

        The ``rwkv`` package's TRIE_TOKENIZER returns a lone ``"\\ufffd"`` for the
        whole string when any byte is invalid; here only the bad bytes are
        replaced. Both agree on valid UTF-8 and both contain U+FFFD otherwise.
        """
        return self._impl.decode_bytes(ids).decode("utf-8", errors)

    def token_to_bytes(self, id: int) -> bytes:
        """The bytes of one token (``b""`` for id 0)."""
        if isinstance(id, bool) or not hasattr(id, "__index__"):
            raise TypeError(f"id must be an int, got {type(id).__name__}")
        i = id.__index__()
        if not -(2**63) <= i < 2**63:
            raise ValueError(f"token id {i} is out of range [0, {self.vocab_size})")
        return self._impl.token_to_bytes(i)
