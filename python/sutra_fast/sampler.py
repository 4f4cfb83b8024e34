"""Token sampling from logits (compiled), reproducible with a seed.

The steps and their order are documented on :class:`Sampler`; the pure-Python
twin ``sutra_fast.reference.sampler`` repeats them operation for operation, so
the same seed and logits give the same tokens in both.
"""
from __future__ import annotations

import math
import os
import threading
from typing import Iterable, Mapping

import numpy as np

from sutra_fast import _core
from sutra_fast._checks import check_int

__all__ = ["Sampler", "PenaltyState", "Rng", "reference_zero_weight_ids"]

_U64 = 2**64


# Largest vocabulary accepted here (the compiled core has its own, lower, limit
# and names it); keeps every id and size within a C int64 / int32.
MAX_VOCAB_SIZE = 2**31 - 1
# Bounds on the penalty and bias magnitudes: far beyond any useful setting, and
# small enough that the core's float32 arithmetic on them stays finite.
MAX_PENALTY = 1e6          # |presence_penalty|, |frequency_penalty|
MIN_REPETITION_PENALTY = 1e-6
MAX_REPETITION_PENALTY = 1e6
# |logit_bias value|: float32's largest finite value (a bias that pushes a logit
# to +inf makes that token the greedy pick, see Sampler); -inf (a ban) is also
# accepted, but not a finite value that float32 would round to -inf.
MAX_LOGIT_BIAS = float(np.finfo(np.float32).max)


def _check_token(name: str, v, vocab_size: int) -> int:
    """A token id: an int in [0, vocab_size)."""
    v = check_int(name, v)
    if not 0 <= v < vocab_size:
        raise ValueError(f"{name}: token id {v} is outside the vocabulary [0, {vocab_size})")
    return v


def _check_float(name: str, v, lo: float | None = None, hi: float | None = None,
                 allow_neg_inf: bool = False) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    try:
        v = float(v)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got an int too large for a float") from None
    if math.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    if allow_neg_inf and v == -math.inf:
        return v
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        what = "-inf or " if allow_neg_inf else ""
        rng = ("within float32's finite range (|value| <= 3.4028235e+38)" if hi == MAX_LOGIT_BIAS
               else f"in [{lo:g}, {hi:g}]")
        raise ValueError(f"{name} must be {what}{rng}, got {v!r}")
    return v


def _ids(name: str, values, vocab_size: int) -> list[int]:
    """An iterable of token ids -> list of ints in [0, vocab_size)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be an iterable of token ids, got {type(values).__name__}")
    return [_check_token(f"{name}[{i}]", t, vocab_size) for i, t in enumerate(values)]


def _seed_value(seed) -> int:
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    seed = check_int("seed", seed)
    if not 0 <= seed < _U64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return seed


class Rng:
    """xoshiro256** seeded by splitmix64; the twin ``reference.sampler.Rng``
    produces the same stream."""

    __slots__ = ("_impl",)

    def __init__(self, seed: int | None = None):
        self._impl = _core.Rng(_seed_value(seed))

    def next_u64(self) -> int:
        return self._impl.next_u64()

    def random(self) -> float:
        """Uniform float in [0, 1) (53 random bits)."""
        return self._impl.random()

    def below(self, n: int) -> int:
        """Uniform int in [0, n), 1 <= n < 2**64."""
        n = check_int("n", n, 1)
        if n >= _U64:
            raise ValueError("n must be < 2**64")
        return self._impl.below(n)

    def reseed(self, seed: int) -> None:
        self._impl.reseed(_seed_value(seed))

    @property
    def state(self) -> tuple:
        return self._impl.state


class PenaltyState:
    """Counts for presence / frequency / repetition penalties (rwkv reference rule).

    ``update(token)`` after each generated token: every count decays by
    ``decay`` (0.996), then the token's count grows by 1 (0 for
    ``zero_weight_ids``; the reference uses 0 for tokens that decode to spaces,
    tabs or digits, see :func:`reference_zero_weight_ids`). A token once seen
    stays present: the presence penalty applies even at count 0.
    """

    __slots__ = ("_impl",)

    def __init__(self, vocab_size: int, decay: float = 0.996, zero_weight_ids: Iterable[int] = ()):
        vocab_size = check_int("vocab_size", vocab_size, 1, MAX_VOCAB_SIZE)
        decay = _check_float("penalty_decay", decay)
        ids = _ids("zero_weight_ids", zero_weight_ids, vocab_size)
        self._impl = _core.PenaltyState(vocab_size, decay, ids)

    def update(self, token: int) -> None:
        self._impl.update(_check_token("token", token, self._impl.vocab_size))

    def reset(self) -> None:
        self._impl.reset()

    @property
    def vocab_size(self) -> int:
        return self._impl.vocab_size

    @property
    def present(self) -> np.ndarray:
        """Ids seen so far, in first-seen order (a copy)."""
        return self._impl.present

    @property
    def counts(self) -> np.ndarray:
        """float64 [vocab_size] decayed counts (a copy)."""
        return self._impl.counts


def reference_zero_weight_ids(tokenizer) -> list[int]:
    """Ids the rwkv reference gives frequency weight 0: those whose text is a
    substring of ``" \\t0123456789"`` (a space, a tab, digits, id 0)."""
    ids = []
    for i in range(tokenizer.vocab_size):
        try:
            b = tokenizer.token_to_bytes(i)
        except ValueError:
            continue
        if b in b" \t0123456789":
            ids.append(i)
    return ids


class Sampler:
    """Turns logits into a token id. One Sampler per generation stream.

    Steps, in order (see src/core/sample/sampler.h for the exact arithmetic):

    1. logits: 1-D C-contiguous float32 of ``vocab_size``, no NaN/+inf (-inf is fine);
    2. ``repetition_penalty`` on tokens present in the penalty state (z>0: z/r, else z*r);
    3. ``z -= presence_penalty + count * frequency_penalty`` for present tokens;
    4. ``logit_bias`` added; 5. ``banned_tokens`` set to -inf;
    6. ``temperature == 0``: greedy, the lowest index among the maxima;
    7. probabilities at temperature 1 (fixed-point, exact sums);
    8. ``top_p`` (nucleus, ties at the cutoff kept), ``top_k`` (ties: lower index)
       and ``min_p`` (p >= min_p * p_max), each decided on the full temperature-1
       distribution, as the rwkv reference decides top-p before temperature;
    9. temperature applied to the kept tokens (p ** (1/T), renormalised);
    10. a draw with the seeded :class:`Rng`.

    ``sample`` records the drawn token in ``self.penalties`` (``record=False``
    to skip), so a generation loop only calls ``sample``.
    """

    def __init__(self, vocab_size: int, *, temperature: float = 1.0, top_p: float = 1.0,
                 top_k: int = 0, min_p: float = 0.0, presence_penalty: float = 0.0,
                 frequency_penalty: float = 0.0, penalty_decay: float = 0.996,
                 repetition_penalty: float = 1.0, logit_bias: Mapping[int, float] | None = None,
                 banned_tokens: Iterable[int] | None = None, seed: int | None = None,
                 zero_weight_ids: Iterable[int] = ()):
        vocab_size = check_int("vocab_size", vocab_size, 1, MAX_VOCAB_SIZE)
        temperature = _check_float("temperature", temperature)
        top_p = _check_float("top_p", top_p)
        # top_k >= vocab_size keeps every token, the same as 0 (off)
        top_k = min(check_int("top_k", top_k, 0), vocab_size)
        min_p = _check_float("min_p", min_p)
        penalty_decay = _check_float("penalty_decay", penalty_decay)
        presence_penalty = _check_float("presence_penalty", presence_penalty, -MAX_PENALTY, MAX_PENALTY)
        frequency_penalty = _check_float("frequency_penalty", frequency_penalty, -MAX_PENALTY, MAX_PENALTY)
        repetition_penalty = _check_float("repetition_penalty", repetition_penalty,
                                          MIN_REPETITION_PENALTY, MAX_REPETITION_PENALTY)
        bias = []
        if logit_bias is not None:
            if not isinstance(logit_bias, Mapping):
                raise TypeError(f"logit_bias must be a mapping id -> float, got {type(logit_bias).__name__}")
            for k, v in logit_bias.items():
                k = _check_token("logit_bias key", k, vocab_size)
                bias.append((k, _check_float(f"logit_bias[{k}]", v, -MAX_LOGIT_BIAS, MAX_LOGIT_BIAS,
                                             allow_neg_inf=True)))
        banned = [] if banned_tokens is None else _ids("banned_tokens", banned_tokens, vocab_size)
        self._impl = _core.Sampler(
            vocab_size, temperature, top_p, top_k, min_p, presence_penalty, frequency_penalty,
            repetition_penalty, bias, banned)
        self.penalties = PenaltyState(vocab_size, penalty_decay, zero_weight_ids)
        self.rng = Rng(seed)
        self.params = dict(temperature=temperature, top_p=top_p, top_k=top_k,
                           min_p=min_p, presence_penalty=presence_penalty,
                           frequency_penalty=frequency_penalty,
                           penalty_decay=penalty_decay,
                           repetition_penalty=repetition_penalty,
                           logit_bias=dict(bias), banned_tokens=list(banned))
        self._uses_penalties = (presence_penalty != 0 or frequency_penalty != 0
                                or repetition_penalty != 1)
        self._lock = threading.Lock()  # scratch buffers: one call at a time

    @property
    def vocab_size(self) -> int:
        return self._impl.vocab_size

    def sample(self, logits: np.ndarray, *, record: bool = True) -> int:
        """Draw one token id from ``logits`` (float32 [vocab_size], not modified)."""
        with self._lock:
            pen = self.penalties._impl if self._uses_penalties else None
            token = self._impl.sample(logits, pen, self.rng._impl)
            if record:
                self.penalties._impl.update(token)
            return token

    def process(self, logits: np.ndarray) -> np.ndarray:
        """Steps 1-5 only: the logits after penalties, bias and bans (a new array)."""
        pen = self.penalties._impl if self._uses_penalties else None
        return self._impl.process(logits, pen)

    def reset(self, seed: int | None = None) -> None:
        """Clear the penalty counts; reseed the generator if ``seed`` is given."""
        self.penalties.reset()
        if seed is not None:
            self.rng.reseed(seed)
