"""Pure-Python/numpy twin of the compiled sampler (src/core/sample).

Every elementwise step is float32 numpy arithmetic in the same order as the
C++ code (IEEE-exact, so bit-identical); the sums that decide the draw are
integer (fixed-point) sums, exact in any order. Readable, not fast.
"""
from __future__ import annotations

import math

import numpy as np

M64 = 2**64 - 1
F32 = np.float32
SCALE = F32(2.0**40)


class Rng:
    """xoshiro256** seeded by splitmix64, in Python ints."""

    def __init__(self, seed: int):
        x = seed & M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def _rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next_u64(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 45)
        return result

    def random(self) -> float:
        return (self.next_u64() >> 11) * 2.0**-53

    def below(self, n: int) -> int:
        threshold = (2**64 - n) % n
        while True:
            x = self.next_u64()
            if x >= threshold:
                return x % n


class PenaltyState:
    def __init__(self, vocab_size: int, decay: float = 0.996, zero_weight_ids=()):
        self.decay = decay
        self.counts = np.zeros(vocab_size, np.float64)
        self.weights = np.ones(vocab_size, np.float64)
        self.weights[list(zero_weight_ids)] = 0.0
        self.present: list[int] = []

    def update(self, token: int) -> None:
        for t in self.present:
            self.counts[t] *= self.decay
        if token not in self.present:
            self.present.append(token)
        self.counts[token] += self.weights[token]


def exp_nonpos(x: np.ndarray) -> np.ndarray:
    """float32 exp(x) for x <= 0: the C++ fast_exp.h sequence, op for op."""
    x = np.asarray(x, F32)
    ok = x >= F32(-80.0)
    x = np.where(ok, x, F32(0.0))
    h = lambda s: F32(float.fromhex(s))  # noqa: E731
    t = x * h("0x1.715476p+0")
    n = (t + h("0x1.8p+23")) - h("0x1.8p+23")
    r = x - n * h("0x1.62e4p-1")
    r = r - n * h("0x1.7f7d1cp-20")
    p = h("0x1.106186p-7")  # exp(r) ~ 1 + r + c2 r^2 + ... + c5 r^5, c2..c5 minimax
    for c in ("0x1.572bccp-5", "0x1.5557b4p-3", "0x1.fffdf8p-2", "0x1p+0", "0x1p+0"):
        p = p * r + h(c)
    scale = ((n.astype(np.int32) + 127) << 23).astype(np.int32).view(F32)
    return np.where(ok, p * scale, F32(0.0)).astype(F32)


def to_fixed(e: np.ndarray) -> np.ndarray:
    """round-half-even(e * 2^40) as uint64 (e * 2^40 is exact in float32)."""
    return np.rint((e * SCALE).astype(np.float64)).astype(np.uint64)


def process(logits, params: dict, penalties: PenaltyState | None) -> np.ndarray:
    """Steps 1-5: repetition penalty, presence/frequency, bias, bans."""
    z = np.array(logits, dtype=F32, copy=True)
    if penalties is not None and penalties.present:
        ids = np.array(penalties.present)
        r = params.get("repetition_penalty", 1.0)
        if r != 1.0:
            rf = F32(r)
            v = z[ids]
            with np.errstate(over="ignore"):  # float32 overflow to +-inf, as in C++
                z[ids] = np.where(v > 0, v / rf, v * rf)
        pres, freq = params.get("presence_penalty", 0.0), params.get("frequency_penalty", 0.0)
        if pres != 0.0 or freq != 0.0:
            z[ids] = (z[ids].astype(np.float64) - (pres + penalties.counts[ids] * freq)).astype(F32)
    for i, b in params.get("logit_bias", {}).items():
        with np.errstate(over="ignore"):  # float32 overflow to +-inf, as in C++
            z[i] = z[i] + F32(b)
    for i in params.get("banned_tokens", []):
        z[i] = -np.inf
    return z


def sample(logits, params: dict, penalties: PenaltyState | None, rng: Rng) -> int:
    """One draw; ``params`` uses the Sampler keyword names."""
    z = process(logits, params, penalties)
    m = z.max()
    if m == -np.inf:
        raise ValueError("logits are -inf for every token")
    T = params.get("temperature", 1.0)
    # greedy for T = 0, a T whose 1/T overflows float32, or a logit pushed to +inf (C++ too)
    if T == 0 or not 1.0 / float(T) <= float(np.finfo(F32).max) or m == np.inf:
        return int(np.flatnonzero(z == m)[0])
    # z - m may overflow to -inf for huge logits (|z| near float32 max): weight 0, as in C++.
    with np.errstate(over="ignore"):
        x = z - m
    e = exp_nonpos(x)
    q = to_fixed(e)
    keep = np.ones(len(z), bool)

    top_p = params.get("top_p", 1.0)
    top_k = params.get("top_k", 0)
    top_k_on = 0 < top_k < len(z)  # (C++: top_k)
    direct = False  # draw from the kept set at once instead of by proposals
    if top_p < 1.0:
        Q = int(q.sum(dtype=np.uint64))
        target = min(math.ceil(top_p * float(Q)), Q)
        # top_p = 0, or T != 1 and top-p alone whose cut-off is a heavy token (e > h ~ Q / 1024; C++ top_p.h)
        h = min(F32(2.0), F32((Q >> 10) * 2.0**-40))
        direct = not top_k_on and (
            target == 0 or (T != 1.0 and int(q[e > h].sum(dtype=np.uint64)) >= target))
        # Sort e descending; the mass at a value v counts every token with e >= v,
        # so look only at the last position of each run of equal values.
        order = np.argsort(-e, kind="stable")
        es = e[order]
        mass = np.cumsum(q[order], dtype=np.uint64)
        run_ends = np.flatnonzero(np.append(es[1:] != es[:-1], True))
        first = run_ends[np.argmax(mass[run_ends] >= np.uint64(target))]
        cutoff = es[first]
        keep &= e >= cutoff

    propose = np.ones(len(z), bool)  # P: the tokens top-k and min-p keep (every token without top-k)
    if top_k_on:
        order = np.argsort(-z, kind="stable")  # z descending, lower index first on ties
        propose[:] = False
        propose[order[:top_k]] = True
        keep &= propose

    min_p = params.get("min_p", 0.0)
    if min_p > 0.0:
        above = e.astype(np.float64) >= min_p
        keep &= above
        if top_k_on:
            propose &= above

    w = q if T == 1.0 else exp_weights(x, T)
    if direct or not (top_p < 1.0 or top_k_on or min_p > 0.0):
        return _draw(np.where(keep, w, np.uint64(0)), rng)
    return _propose(w, propose, keep, rng)


def exp_weights(x: np.ndarray, T: float) -> np.ndarray:
    """to_fixed(exp(x * float32(1/T))); a huge |x| / T overflows to -inf: weight 0, as in C++."""
    with np.errstate(over="ignore"):
        return to_fixed(exp_nonpos(x * F32(1.0 / T)))


def _draw(w: np.ndarray, rng: Rng) -> int:
    """The first index whose running sum of the weights w exceeds r, r uniform below their total."""
    r = rng.below(int(w.sum(dtype=np.uint64)))
    return int(np.searchsorted(np.cumsum(w, dtype=np.uint64), np.uint64(r), side="right"))


TRIALS = 8  # proposals before the direct draw from the kept tokens (C++: kTrials)


def _propose(w: np.ndarray, propose: np.ndarray, keep: np.ndarray, rng: Rng) -> int:
    """Draws by w over the proposal set until a token that every filter keeps
    comes up (at most TRIALS times), then by w over the kept tokens directly:
    either way the token follows w over the kept tokens (C++ Sampler::sample)."""
    w_propose = np.where(propose, w, np.uint64(0))
    for _ in range(TRIALS):
        i = _draw(w_propose, rng)
        if keep[i]:
            return i
    return _draw(np.where(keep, w, np.uint64(0)), rng)
