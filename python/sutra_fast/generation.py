"""Text generation on top of the RWKV engine: prompt -> tokens -> text.

:class:`~sutra_fast.Generator` exposes this as ``generate``, ``stream`` and
``chat``; the pieces live here so that each stays small:

* :class:`TextAssembler` turns token bytes into text that is always valid UTF-8
  (a character split across tokens waits for its last byte) and finds stop
  strings across token boundaries, holding back only a tail that could still
  become a stop string.
* :class:`PromptCache` keeps the states after recent prompts, so a prompt that
  starts with a cached one (a chat that grew by a turn) only feeds the new tokens.
* :class:`TokenStream` is the decode loop itself, as an iterator of text
  pieces that stops decoding as soon as the consumer closes it.
"""
from __future__ import annotations

import codecs
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from sutra_fast._checks import check_int
from sutra_fast.sampler import Sampler

if TYPE_CHECKING:  # pragma: no cover
    from sutra_fast.generator import Generator, RwkvState

__all__ = ["GenerationResult", "TextAssembler", "PromptCache", "TokenStream", "chat_prompt",
           "END_OF_TEXT", "WORLD_VOCAB_SIZE"]

END_OF_TEXT = 0  # RWKV World: id 0 separates documents; sampling it ends the text
WORLD_VOCAB_SIZE = 65536  # rows of a RWKV World model's embedding (65530 tokens + padding)
PREFILL_CHUNK = 512  # prompt tokens per batched forward call
CHAT_STOP = "\n\nUser:"


@dataclass
class GenerationResult:
    """What :meth:`Generator.generate` returns.

    ``finish_reason`` is ``"stop"`` (a stop string or the end-of-text token),
    ``"length"`` (``max_tokens`` reached) or, for a stream closed early,
    ``"cancelled"``. ``tokens`` are the completion's
    ids (a matched stop string's tokens included, its text cut from ``text``).
    ``state`` has consumed the prompt and every generated token.
    """

    text: str
    tokens: list[int]
    finish_reason: str
    usage: dict
    timing: dict
    state: "RwkvState" = field(repr=False)


def normalize_stop(stop) -> tuple[str, ...]:
    """``None``, a str or a list of str -> a tuple of stop strings; an empty one is
    a ValueError (it would match before any text: nothing could ever be generated)."""
    if stop is None:
        return ()
    one = isinstance(stop, str)
    if one:
        stop = [stop]
    if not isinstance(stop, (list, tuple)):
        raise TypeError(f"stop must be a str or a list of str, got {type(stop).__name__}")
    for i, s in enumerate(stop):
        name = "stop" if one else f"stop[{i}]"
        if not isinstance(s, str):
            raise TypeError(f"{name} must be a str, got {type(s).__name__}")
        if not s:
            raise ValueError(f"{name} is an empty string; give non-empty stop strings "
                             "(stop=None for none)")
    return tuple(stop)


class TextAssembler:
    """Bytes of generated tokens in, safe text pieces out.

    ``push(data)`` returns the text that may be shown now: valid UTF-8 only
    (incomplete characters wait), minus any tail that is the beginning of a stop
    string. When a stop string appears, ``stopped`` becomes True and the text
    before it is everything that is ever returned.
    """

    def __init__(self, stop: Sequence[str] = ()):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(stop)
        self._pending = ""  # decoded, not yet shown (could start a stop string)
        self.text = ""      # everything shown so far
        self.stopped = False

    def _held_back(self, s: str) -> int:
        """Length of the longest suffix of s that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stop:
            for k in range(min(len(stop) - 1, len(s)), best, -1):
                if s.endswith(stop[:k]):
                    best = k
                    break
        return best

    def _emit(self, s: str) -> str:
        self.text += s
        return s

    def push(self, data: bytes, final: bool = False) -> str:
        if self.stopped:
            return ""
        pending = self._pending + self._decoder.decode(data, final)
        cut = min((i for i in (pending.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._pending = ""
            return self._emit(pending[:cut])
        keep = 0 if final else self._held_back(pending)
        self._pending = pending[len(pending) - keep:] if keep else ""
        return self._emit(pending[: len(pending) - keep])

    def finish(self) -> str:
        """Flush at the end: incomplete bytes become U+FFFD, held-back text is shown."""
        return self.push(b"", final=True)


class PromptCache:
    """LRU of (prompt token ids -> state copy and logits after them)."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = check_int("max_entries", max_entries, 1)
        self._entries: OrderedDict[tuple, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def longest_prefix(self, ids: Sequence[int]):
        """(length, state copy, logits copy) of the longest cached prefix of ids, or None."""
        key = tuple(ids)
        with self._lock:
            best = None
            for cached in self._entries:
                if len(cached) <= len(key) and key[: len(cached)] == cached:
                    if best is None or len(cached) > len(best):
                        best = cached
            if best is None:
                self.misses += 1
                return None
            self.hits += 1
            self._entries.move_to_end(best)
            state, logits = self._entries[best]
            return len(best), state.copy(), logits.copy()

    def put(self, ids: Sequence[int], state, logits: np.ndarray) -> None:
        with self._lock:
            self._entries[tuple(ids)] = (state.copy(), logits.copy())
            self._entries.move_to_end(tuple(ids))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def chat_prompt(messages) -> str:
    """RWKV World chat format: ``System: ...``, ``User: ...``, ``Assistant: ...`` turns
    separated by a blank line, ending with ``Assistant:`` for the model to continue.

    Blank lines inside a message are folded to single newlines, since a blank
    line is the turn separator the model was trained on.
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    names = {"system": "System", "user": "User", "assistant": "Assistant"}
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(f"messages[{i}] must be a dict with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in names:
            raise ValueError(f"messages[{i}]['role'] must be one of {sorted(names)}, got {role!r}")
        if not isinstance(content, str):
            raise TypeError(f"messages[{i}]['content'] must be a str")
        text = content.strip().replace("\r\n", "\n")
        while "\n\n" in text:
            text = text.replace("\n\n", "\n")
        turns.append(f"{names[role]}: {text}")
    return "\n\n".join(turns) + "\n\nAssistant:"


class TokenStream(Iterator[str]):
    """The decode loop of one generation, as an iterator of text pieces.

    Pieces are yielded as soon as they form valid UTF-8 and cannot be the start
    of a stop string. ``close()`` (or leaving a ``with`` block, or dropping a
    ``for`` loop over :meth:`Generator.stream`) stops decoding at once.
    ``cancel()`` may be called from another thread while one iterates: the
    stream then ends (``finish_reason`` "cancelled") before its next token or,
    during the prompt, after the current 512-token chunk. After the last piece,
    :attr:`result` holds the :class:`GenerationResult`.
    """

    def __init__(self, gen: "Generator", prompt_ids: list[int], *, max_tokens: int,
                 sampler: Sampler, stop: tuple[str, ...], state, cache: PromptCache | None):
        self._gen = gen
        self._sampler = sampler
        self._max_tokens = max_tokens
        self._assembler = TextAssembler(stop)
        self._prompt_ids = prompt_ids
        self._state = state
        self._cache = cache
        self._tokens: list[int] = []
        self._logits: np.ndarray | None = None
        self._finish: str | None = None
        self._t_start = time.perf_counter()
        self._t_first: float | None = None
        self._prefill_s = 0.0
        self._prefilled_tokens = 0
        self._cancelled = threading.Event()
        self.result: GenerationResult | None = None

    # -- the loop
    def _prefill(self) -> None:
        t0 = time.perf_counter()
        ids, start = self._prompt_ids, 0
        hit = self._cache.longest_prefix(ids) if self._cache is not None else None
        if hit is not None:
            start, cached_state, self._logits = hit
            for name in ("att_x_prev", "att_kv", "ffn_x_prev"):
                getattr(self._state, name)[...] = getattr(cached_state, name)
        done = start
        for i in range(start, len(ids), PREFILL_CHUNK):
            if self._cancelled.is_set():  # a long prompt is seconds of work: stop between chunks
                self._finish = "cancelled"
                break
            self._logits = self._gen.forward(ids[i: i + PREFILL_CHUNK], self._state)
            done = min(i + PREFILL_CHUNK, len(ids))
        self._prefilled_tokens = done - start
        if self._cache is not None and start < done == len(ids):
            self._cache.put(ids, self._state, self._logits)
        self._prefill_s = time.perf_counter() - t0

    def _step(self) -> str:
        """Sample one token, feed it back, return the text it made visible."""
        token = self._sampler.sample(self._logits)
        if token == END_OF_TEXT:
            self._finish = "stop"
            return ""
        self._tokens.append(token)
        self._logits = self._gen.forward([token], self._state)
        piece = self._assembler.push(self._gen.token_bytes(token))
        if self._t_first is None:
            self._t_first = time.perf_counter()
        if self._assembler.stopped:
            self._finish = "stop"
        elif len(self._tokens) >= self._max_tokens:
            self._finish = "length"
        return piece

    def __iter__(self) -> "TokenStream":
        return self

    def __next__(self) -> str:
        if self.result is not None:
            raise StopIteration
        if self._logits is None and self._finish is None:
            self._prefill()
            if self._max_tokens == 0 and self._finish is None:
                self._finish = "length"
        while self._finish is None:
            if self._cancelled.is_set():
                self._finish = "cancelled"
                break
            piece = self._step()
            if piece:
                return piece
        tail = self._assembler.finish()
        self._finalize()
        if tail:
            return tail
        raise StopIteration

    def _finalize(self) -> None:
        now = time.perf_counter()
        decode_s = now - self._t_start - self._prefill_s
        n = len(self._tokens)
        self.result = GenerationResult(
            text=self._assembler.text,
            tokens=list(self._tokens),
            finish_reason=self._finish or "stop",
            usage={"prompt_tokens": len(self._prompt_ids), "completion_tokens": n,
                   "total_tokens": len(self._prompt_ids) + n},
            timing={"prefill_s": self._prefill_s, "prefilled_tokens": self._prefilled_tokens,
                    "decode_s": decode_s,
                    "time_to_first_token_s": (self._t_first - self._t_start) if self._t_first else None,
                    "tokens_per_s": n / decode_s if n and decode_s > 0 else None,
                    "total_s": now - self._t_start},
            state=self._state,
        )

    def cancel(self) -> None:
        """Ask the stream to stop, from any thread (the iterating one finishes it):
        before the next token, or after the prompt chunk being processed."""
        self._cancelled.set()

    def close(self) -> None:
        """Stop decoding now; :attr:`result` reflects what was generated so far."""
        if self.result is None:
            if self._finish is None:
                self._finish = "cancelled"
            self._assembler.finish()
            self._finalize()

    def __enter__(self) -> "TokenStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def is_token(v) -> bool:
    """An int or numpy integer (not bool): what a token id may be."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def checked_token_ids(items: list, vocab_size: int, *, name: str, not_int: type,
                      what: str, vocab: str) -> list[int]:
    """``items`` as plain ints in [0, vocab_size), checked element by element
    before any array is built, so a nested, ragged or huge entry gets a plain
    message (``not_int(f"{what}: {name}[i] is a list")``, or a ValueError
    "token id ... is outside {vocab}"), not numpy's or a C overflow."""
    if all(type(t) is int for t in items) and (not items or (min(items) >= 0 and max(items) < vocab_size)):
        return items  # plain ints in range: the common case (decode loop, prefill), checked fast
    out = []
    for i, t in enumerate(items):
        if not is_token(t):
            raise not_int(f"{what}: {name}[{i}] is a {type(t).__name__}")
        t = int(t)
        if not 0 <= t < vocab_size:
            raise ValueError(f"token id {t} is outside {vocab} [0, {vocab_size})")
        out.append(t)
    return out


def prompt_to_ids(prompt, tokenizer, vocab_size: int) -> list[int]:
    """A str (encoded with ``tokenizer``) or a sequence of token ids -> list of ids.

    An empty prompt starts a fresh document: the end-of-text id 0, which RWKV
    World models are trained to see between documents.
    """
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError(f"this model's vocabulary (size {vocab_size}) is not the RWKV World "
                             f"vocabulary ({WORLD_VOCAB_SIZE}), so a text prompt cannot be "
                             "tokenised; pass the prompt as a list of token ids")
        ids = tokenizer.encode(prompt)
    elif isinstance(prompt, (list, tuple, np.ndarray)):
        if isinstance(prompt, np.ndarray):
            if prompt.size and prompt.ndim != 1:
                raise TypeError(f"a token-id prompt must be a flat sequence of ints, "
                                f"got an array of shape {prompt.shape}")
            prompt = prompt.tolist() if prompt.size else []
        ids = checked_token_ids(list(prompt), vocab_size, name="prompt", not_int=TypeError,
                                what="a token-id prompt must be a flat sequence of ints",
                                vocab="the model's vocabulary")
    else:
        raise TypeError(f"prompt must be a str or a list of token ids, got {type(prompt).__name__}")
    return ids or [END_OF_TEXT]
