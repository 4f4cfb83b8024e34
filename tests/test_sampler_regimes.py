"""Sampler parity with the numpy twin on the logits that stress the top-p
select: flat (tens of thousands of tokens inside top-p), exactly uniform, many
ties, -inf, huge and extreme values, periodic patterns that a strided sample
would misjudge, near-ties in exp. Compiled vs twin, token for token, over many
seeds, at every ISA level this CPU has (the twin does not depend on the ISA, so
its tokens are computed once and compared with each level)."""
import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast.reference import sampler as R

V = 65536


def _regimes(V, rng):
    out = {}
    out["flat N(0,1)"] = rng.standard_normal(V).astype(np.float32)
    out["flat N(0,0.1)"] = (rng.standard_normal(V) * 0.1).astype(np.float32)
    out["flat N(0,0.001)"] = (rng.standard_normal(V) * 0.001).astype(np.float32)
    out["uniform 0"] = np.zeros(V, np.float32)
    out["uniform 7.5"] = np.full(V, 7.5, np.float32)
    z = rng.standard_normal(V).astype(np.float32)
    z[rng.integers(0, V, 5)] += rng.uniform(16, 20, 5).astype(np.float32)
    out["peaked"] = z
    z = rng.standard_normal(V).astype(np.float32) * 2
    z[rng.integers(0, V, 5)] += rng.uniform(8, 14, 5).astype(np.float32)
    out["spiky"] = z
    z = rng.integers(-3, 3, V).astype(np.float32)
    z[rng.integers(0, V, V // 10)] = -np.inf
    out["int ties + -inf"] = z
    out["grid ties"] = np.round(rng.standard_normal(V) * 0.5, 1).astype(np.float32)
    z = np.full(V, -np.inf, np.float32)
    z[rng.integers(0, V, V // 3)] = rng.standard_normal(V // 3).astype(np.float32)
    out["mostly -inf"] = z
    z = np.full(V, -np.inf, np.float32)
    z[rng.integers(0, V)] = 3.0
    out["one finite"] = z
    out["huge"] = (rng.standard_normal(V) * 1e30).astype(np.float32)
    z = np.full(V, 3.4e38, np.float32)
    z[::2] = -3.4e38
    out["extreme alternating"] = z
    z = np.zeros(V, np.float32)
    z[::8] = 5.0  # a stride-8 sample would see only these (or none of them)
    out["period 8"] = z
    z = np.zeros(V, np.float32)
    z[3::128] = 9.0
    out["period 128"] = z
    # The top-p guess samples 16 consecutive tokens of every 128 at a moving
    # offset (src/core/sample/coarse_bucket.h). Logits that hide their mass from
    # that sample, or show it only there, make the guess wrong in each direction:
    # the exact pass must catch it and take the other side.
    sampled = np.zeros(V, bool)
    for b in range(V // 128):
        start = b * 128 + (b * 5 % 8) * 16
        sampled[start:start + 16] = True
    out["mass hidden from the sample"] = np.where(sampled, 0.0, 3.0).astype(np.float32)
    out["mass only in the sample"] = np.where(sampled, 3.0, 0.0).astype(np.float32)
    out["ascending"] = np.linspace(-10, 10, V).astype(np.float32)  # worst case of a top-k heap
    out["descending"] = np.linspace(10, -10, V).astype(np.float32)
    z = np.full(V, -3.0, np.float32)  # two close values, many of each, one bucket
    z[rng.permutation(V)[: V // 2]] = np.nextafter(np.float32(-3.0), np.float32(0))
    z[0] = 0.0
    out["two close values"] = z
    z = (rng.standard_normal(V) * 1e-6).astype(np.float32)  # distinct z, mostly equal e
    out["near ties in e"] = z
    return out


PARAMS = [
    dict(top_p=0.85),
    dict(temperature=0.8, top_p=0.85, presence_penalty=0.2, frequency_penalty=0.2),
    dict(temperature=1.2, top_p=0.9, top_k=40, min_p=0.05),
    dict(top_p=0.5, top_k=5000, temperature=0.7),
    dict(top_p=0.999),
    dict(top_p=0.01, temperature=1.5),
    dict(min_p=0.2, temperature=0.9),
    dict(top_p=0.05),  # rare acceptance: the kept set found exactly after 8 proposals
    dict(top_p=0.0, top_k=50, temperature=0.8),
]
DRAWS = 4


def _tokens_twin(z, params, seed, penalty_ids):
    full = sf.Sampler(len(z), **params).params
    pen = R.PenaltyState(len(z))
    for t in penalty_ids:
        pen.update(t)
    rng = R.Rng(seed)
    return [R.sample(z, full, pen, rng) for _ in range(DRAWS)]


def _tokens_compiled(z, params, seed, penalty_ids):
    s = sf.Sampler(len(z), seed=seed, **params)
    for t in penalty_ids:
        s.penalties.update(t)
    return [s.sample(z, record=False) for _ in range(DRAWS)]


@pytest.fixture(scope="module")
def regimes():
    return _regimes(V, np.random.default_rng(2024))


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_regimes_parity_every_isa(regimes, params):
    before = sf.cpu_info()["isa"]
    isas = sf.cpu_info()["supported_isas"]
    pen_ids = [int(i) for i in np.random.default_rng(1).integers(0, V, 30)]
    try:
        for k, (name, z) in enumerate(regimes.items()):
            seed = 1000 + 7 * k
            want = _tokens_twin(z, params, seed, pen_ids)
            for isa in isas:
                sf.set_cpu_isa(isa)
                got = _tokens_compiled(z, params, seed, pen_ids)
                assert got == want, f"{name} at {isa}: compiled {got} != twin {want} ({params})"
    finally:
        sf.set_cpu_isa(before)


@pytest.mark.parametrize("n", [1, 15, 17, 255, 1000, 2047, 2048, 2049, 5000, 40000])
def test_odd_vocab_sizes_parity(n):
    """Tails of every vector / sample / chunk loop; small vocabularies are not sampled."""
    rng = np.random.default_rng(n)
    before = sf.cpu_info()["isa"]
    try:
        for kind in range(4):
            z = rng.standard_normal(n).astype(np.float32) * [1.0, 0.1, 0.0, 5.0][kind]
            for params in (dict(top_p=0.85), dict(top_p=0.6, temperature=0.8, top_k=7)):
                want = _tokens_twin(z, params, 5 + kind, [])
                for isa in sf.cpu_info()["supported_isas"]:
                    sf.set_cpu_isa(isa)
                    assert _tokens_compiled(z, params, 5 + kind, []) == want, (n, kind, params, isa)
    finally:
        sf.set_cpu_isa(before)


def test_many_seeds_flat_and_peaked():
    """Many draws on flat and peaked logits (a new logits vector each step)."""
    rng = np.random.default_rng(7)
    s = sf.Sampler(V, seed=99, top_p=0.85)
    twin_rng = R.Rng(99)
    for step in range(60):
        z = rng.standard_normal(V).astype(np.float32) * (0.05 if step % 3 == 0 else 1.0)
        if step % 3 == 2:
            z[rng.integers(0, V, 3)] += 15.0
        assert s.sample(z, record=False) == R.sample(z, s.params, None, twin_rng), step


def test_uniform_draws_cover_the_vocabulary():
    """Exactly uniform logits: every token is kept (all tied at the cut-off), and
    draws spread over the whole vocabulary, not just low ids."""
    s = sf.Sampler(V, seed=3, top_p=0.85)
    toks = np.array([s.sample(np.zeros(V, np.float32), record=False) for _ in range(400)])
    assert toks.min() < V // 8 and toks.max() > V - V // 8
    assert len(set(toks.tolist())) > 390


@pytest.mark.parametrize("params,logits", [
    (dict(temperature=1e-40), "normal"),             # 1/T overflows float32: was SIGFPE
    (dict(temperature=1e-300, top_p=0.85), "normal"),
    (dict(temperature=5e-324, top_k=5), "normal"),
    (dict(temperature=3e-39, min_p=0.1), "normal"),  # 1/T still finite: the sampling path
    (dict(logit_bias={3: 3e38}), "huge"),            # 3e38 + 3e38 = +inf: was SIGFPE
    (dict(logit_bias={3: 3e38}, top_p=0.5), "huge"),
])
def test_overflowing_parameters_are_greedy_not_a_crash(params, logits):
    """A temperature whose 1/T overflows float32, or a bias that pushes a logit to
    +inf, made the weights NaN and the draw divide by zero (the process died of
    SIGFPE). Both are greedy now, compiled and twin alike."""
    z = (np.random.default_rng(3).standard_normal(V).astype(np.float32) if logits == "normal"
         else np.full(V, 3e38, np.float32))
    want = _tokens_twin(z, params, 11, [])
    assert want == [3 if logits == "huge" else int(np.argmax(z))] * DRAWS
    before = sf.cpu_info()["isa"]
    try:
        for isa in sf.cpu_info()["supported_isas"]:
            sf.set_cpu_isa(isa)
            assert _tokens_compiled(z, params, 11, []) == want, isa
    finally:
        sf.set_cpu_isa(before)


def test_big_endian_logits_are_refused():
    s = sf.Sampler(10, temperature=0)
    with pytest.raises(ValueError, match="native float32"):
        s.sample(np.arange(10, dtype=np.float32).astype(">f4"))
