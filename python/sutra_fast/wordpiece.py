"""Compiled BERT WordPiece tokenizer, id-identical to HF ``tokenizers``.

>>> tok = WordPieceTokenizer.from_file("model/tokenizer.json")
>>> tok.encode("Hello, world!")
[101, 7592, 1010, 2088, 999, 102]
>>> batch = tok.encode_batch(["a", "longer text"], max_length=128)
>>> batch["input_ids"].shape        # [B, longest], int64, C-contiguous
(2, 4)
"""
from __future__ import annotations

import errno
import os
from typing import Optional, Sequence, Union

import numpy as np

from sutra_fast import _core
from sutra_fast._checks import check_flag, is_int

__all__ = ["WordPieceTokenizer"]

_VOCAB_OPTIONS = dict(
    lowercase=True,
    strip_accents=None,
    clean_text=True,
    handle_chinese_chars=True,
    max_input_chars_per_word=100,
    continuing_subword_prefix="##",
    unk_token="[UNK]",
    cls_token="[CLS]",
    sep_token="[SEP]",
    pad_token="[PAD]",
    mask_token="[MASK]",
)


def _resolve(path: Union[str, os.PathLike]) -> str:
    path = os.fspath(path)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if os.path.isdir(path):
        for name in ("tokenizer.json", "vocab.txt"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(errno.ENOENT, "no tokenizer.json or vocab.txt in the directory", path)
    if not os.path.isfile(path):
        raise FileNotFoundError(errno.ENOENT, "tokenizer file not found", path)
    return path


def _is_json(path: str, data: bytes) -> bool:
    if path.lower().endswith(".json"):
        return True
    return data.lstrip()[:1] == b"{"


class WordPieceTokenizer:
    """BertNormalizer + BertPreTokenizer + WordPiece + ``[CLS] ... [SEP]``.

    Build it with :meth:`from_file`. Thread-safe; ``encode_batch`` releases the
    GIL and spreads the batch over the ``sutra_fast`` thread pool.

    Strings that contain a lone surrogate (e.g. ``"\\ud800"``) have no UTF-8
    form and raise ``ValueError`` (HF tokenizers raises ``TypeError`` for them).
    """

    __slots__ = ("_tok", "path", "_options")

    def __init__(self, compiled: "_core.WordPieceTokenizer", path: str = "",
                 options: Optional[dict] = None) -> None:
        if not isinstance(compiled, _core.WordPieceTokenizer):
            raise TypeError("use WordPieceTokenizer.from_file(path)")
        self._tok = compiled
        self.path = path
        self._options = dict(options or {})

    def __reduce__(self):
        # Pickled as "load this file with these options" (multiprocessing, datasets.map):
        # the compiled vocabulary has no serial form, and reloading takes milliseconds.
        if not self.path:
            raise TypeError("this WordPieceTokenizer was not loaded from a file and cannot "
                            "be pickled; use WordPieceTokenizer.from_file(path)")
        return _from_file_with_options, (self.path, self._options)

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], **options) -> "WordPieceTokenizer":
        """Load a HF ``tokenizer.json`` or a plain ``vocab.txt`` (or a folder holding one).

        Keyword options (``vocab.txt`` only; a tokenizer.json carries its own):
        ``lowercase=True``, ``strip_accents=None`` (None: follow lowercase),
        ``clean_text=True``, ``handle_chinese_chars=True``,
        ``max_input_chars_per_word=100``, ``continuing_subword_prefix="##"``,
        ``unk_token="[UNK]"``, ``cls_token="[CLS]"``, ``sep_token="[SEP]"``,
        ``pad_token="[PAD]"``, ``mask_token="[MASK]"`` -- the defaults of HF
        ``BertWordPieceTokenizer``.

        The truncation/padding settings a tokenizer.json may carry are ignored:
        :meth:`encode` never truncates; :meth:`encode_batch` takes ``max_length``.

        Raises:
            FileNotFoundError: the file (or a tokenizer file in the folder) is missing.
            ValueError: contents this tokenizer does not reproduce exactly (say a BPE
                model or another normalizer), or malformed JSON.
            TypeError: an unknown option, or options given for a tokenizer.json.
        """
        resolved = _resolve(path)
        with open(resolved, "rb") as f:
            data = f.read()
        # The name for messages: a path undecodable in the locale (surrogate escapes,
        # e.g. LC_ALL=C) has no UTF-8 form for the compiled side, so its bytes are shown.
        shown = os.fsencode(resolved).decode("utf-8", "backslashreplace")
        if _is_json(resolved, data):
            if options:
                raise TypeError(
                    f"options {sorted(options)} apply to vocab.txt files only; "
                    f"{resolved} carries its own settings")
            try:
                compiled = _core.WordPieceTokenizer.from_json_bytes(data, shown)
            except ValueError as e:  # name the file in every message
                msg = str(e)
                raise ValueError(msg if shown in msg else f"{shown}: {msg}") from None
            return cls(compiled, resolved)
        unknown = set(options) - set(_VOCAB_OPTIONS)
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(_VOCAB_OPTIONS)}")
        opts = dict(_VOCAB_OPTIONS, **options)
        for key in ("lowercase", "clean_text", "handle_chinese_chars"):
            if not isinstance(opts[key], bool):
                raise TypeError(f"{key} must be a bool, got {type(opts[key]).__name__}")
        if opts["strip_accents"] is not None and not isinstance(opts["strip_accents"], bool):
            raise TypeError("strip_accents must be None or a bool")
        m = opts["max_input_chars_per_word"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"max_input_chars_per_word must be an int >= 1, got {m!r}")
        for key in ("continuing_subword_prefix", "unk_token", "cls_token", "sep_token",
                    "pad_token", "mask_token"):
            if not isinstance(opts[key], str):
                raise TypeError(f"{key} must be a str, got {type(opts[key]).__name__}")
        return cls(_core.WordPieceTokenizer.from_vocab_bytes(data, shown, **opts), resolved,
                   options)

    def encode(self, text: str) -> list[int]:
        """Token ids of one text, with the special tokens, without truncation."""
        return self._tok.encode(text)

    def encode_batch(self, texts: Sequence[str], max_length: Optional[int] = None,
                     truncation: str = "right", pad: bool = True) -> dict:
        """Encode many texts at once (threaded, GIL released).

        Args:
            texts: a list (or tuple) of str.
            max_length: at most this many tokens per row, the special tokens
                included (they are always kept); None: no truncation.
            truncation: ``"right"`` drops tokens at the end, ``"left"`` at the start.
            pad: True -> C-contiguous int64 arrays of shape [len(texts), longest row],
                padded with the pad id (attention_mask 0 there). False -> each value is
                a list of 1-D int64 arrays, one per text, unpadded.

        Returns:
            dict with ``input_ids``, ``attention_mask`` and ``token_type_ids``.
        """
        if max_length is None:
            limit = 0
        else:
            if not is_int(max_length):
                raise TypeError(f"max_length must be an int or None, got {type(max_length).__name__}")
            max_length = max_length.__index__()
            if max_length < 2:
                raise ValueError(f"max_length must be >= 2 (room for [CLS] and [SEP]), got {max_length}")
            limit = min(max_length, 2**62)  # beyond any text; fits the core's integer
        if truncation not in ("right", "left"):
            raise ValueError(f"truncation must be 'right' or 'left', got {truncation!r}")
        left = truncation == "left"
        if check_flag("pad", pad):
            return self._tok.encode_batch(texts, limit, left)
        ids = self._tok.encode_many(texts, limit, left)
        return {
            "input_ids": ids,
            "attention_mask": [np.ones_like(row) for row in ids],
            "token_type_ids": [np.zeros_like(row) for row in ids],
        }

    def __call__(self, texts: Sequence[str], **kwargs) -> dict:
        return self.encode_batch(texts, **kwargs)

    @property
    def vocab_size(self) -> int:
        """Distinct tokens, added tokens included (HF ``get_vocab_size()``)."""
        return self._tok.vocab_size

    def token_to_id(self, token: str) -> Optional[int]:
        """The id of ``token``, or None when it is not in the vocabulary."""
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, got {type(token).__name__}")
        return self._tok.token_to_id(token)

    def id_to_token(self, id: int) -> Optional[str]:
        """The token of ``id``, or None when no token has that id."""
        if isinstance(id, bool) or not isinstance(id, (int, np.integer)):
            raise TypeError(f"id must be an int, got {type(id).__name__}")
        if not 0 <= id < 2**63:
            return None
        return self._tok.id_to_token(int(id))

    @property
    def unk_token_id(self) -> int:
        return self._tok.unk_token_id

    @property
    def cls_token_id(self) -> Optional[int]:
        v = self._tok.cls_token_id
        return None if v < 0 else v

    @property
    def sep_token_id(self) -> Optional[int]:
        v = self._tok.sep_token_id
        return None if v < 0 else v

    @property
    def pad_token_id(self) -> int:
        return self._tok.pad_token_id

    @property
    def unk_token(self) -> str:
        return self._tok.unk_token

    @property
    def continuing_subword_prefix(self) -> str:
        return self._tok.continuing_subword_prefix

    @property
    def lowercase(self) -> bool:
        return self._tok.lowercase

    @property
    def strip_accents(self) -> bool:
        return self._tok.strip_accents

    @property
    def clean_text(self) -> bool:
        return self._tok.clean_text

    @property
    def handle_chinese_chars(self) -> bool:
        return self._tok.handle_chinese_chars

    @property
    def max_input_chars_per_word(self) -> int:
        return self._tok.max_input_chars_per_word

    def __repr__(self) -> str:
        return (f"WordPieceTokenizer(path={self.path!r}, vocab_size={self.vocab_size}, "
                f"lowercase={self.lowercase}, strip_accents={self.strip_accents})")


def _from_file_with_options(path: str, options: dict) -> WordPieceTokenizer:
    """Unpickling (pickle passes positional arguments only)."""
    return WordPieceTokenizer.from_file(path, **options)
