"""Sampler: token-for-token parity with the numpy twin at every ISA level,
greedy, seeding, distribution sanity, each parameter's effect, errors."""
import math

import numpy as np
import pytest
import torch

import sutra_fast as sf
from sutra_fast.reference import sampler as R
from rwkv.utils import PIPELINE

PARAM_SETS = [
    dict(),
    dict(top_p=0.85),
    dict(top_p=0.3, temperature=0.7),
    dict(top_p=0.999, temperature=1.5),
    dict(top_k=40, temperature=1.3),
    dict(top_k=1),
    dict(min_p=0.05, top_p=0.9),
    dict(min_p=0.3, temperature=2.0),
    dict(temperature=0),
    dict(top_p=0.0),
    dict(top_p=0.0, top_k=20, temperature=0.8),
    dict(presence_penalty=0.4, frequency_penalty=0.3, top_p=0.9),
    dict(repetition_penalty=1.3, top_k=100, temperature=0.8),
    dict(presence_penalty=-0.2, frequency_penalty=0.5, repetition_penalty=0.9, top_p=0.95,
         logit_bias={5: 2.0, 7: -1.5, 9: -math.inf}, banned_tokens=[0, 1, 2], penalty_decay=0.9),
]


def _logits(rng, V, kind):
    if kind == "normal":
        return (rng.standard_normal(V) * rng.uniform(0.5, 6)).astype(np.float32)
    if kind == "peaked":  # a few dominant tokens, like a trained LM
        z = rng.standard_normal(V).astype(np.float32) * 2
        z[rng.integers(0, V, 5)] += rng.uniform(5, 15, 5).astype(np.float32)
        return z
    if kind == "ties":  # many exactly equal values, and -inf
        z = rng.integers(-3, 3, V).astype(np.float32)
        z[rng.integers(0, V, V // 10)] = -np.inf
        return z
    raise ValueError(kind)


def _run_pair(params, V, steps, seed, kinds=("normal", "peaked", "ties")):
    zero_w = [3, 4]
    s = sf.Sampler(V, seed=seed, zero_weight_ids=zero_w, **params)
    full = dict(s.params)
    pen = R.PenaltyState(V, full["penalty_decay"], zero_w)
    rng_twin = R.Rng(seed)
    data_rng = np.random.default_rng(seed)
    out = []
    for i in range(steps):
        z = _logits(data_rng, V, kinds[i % len(kinds)])
        a = s.sample(z)
        b = R.sample(z, full, pen, rng_twin)
        pen.update(b)
        assert a == b, f"step {i}: compiled {a} != twin {b} ({params})"
        out.append(a)
    np.testing.assert_array_equal(s.penalties.counts, pen.counts)
    return out


@pytest.mark.parametrize("params", PARAM_SETS, ids=lambda p: ",".join(f"{k}" for k in p) or "default")
def test_twin_parity_small_vocab(params, isa):
    _run_pair(params, V=300, steps=400, seed=11)


@pytest.mark.parametrize("params", PARAM_SETS[:8], ids=lambda p: ",".join(f"{k}" for k in p) or "default")
def test_twin_parity_full_vocab(params):
    _run_pair(params, V=65536, steps=12, seed=5)


def test_twin_parity_thousands_of_steps():
    toks = _run_pair(dict(top_p=0.9, temperature=0.9, presence_penalty=0.2, frequency_penalty=0.2),
                     V=64, steps=3000, seed=3)
    assert len(set(toks)) > 10


def test_rng_stream_matches_twin():
    for seed in (0, 1, 2**63 + 5, 2**64 - 1):
        a, b = sf.Rng(seed), R.Rng(seed)
        assert [a.next_u64() for _ in range(500)] == [b.next_u64() for _ in range(500)]
        assert [a.random() for _ in range(200)] == [b.random() for _ in range(200)]
        for n in (1, 2, 3, 10, 2**33 + 1, 2**63 + 1, 2**64 - 1):
            assert a.below(n) == b.below(n)


def test_rng_known_splitmix_seed():
    # splitmix64 from seed 0 gives 0xE220A8397B1DCDAF first (published test vector),
    # so the xoshiro state starts from it.
    assert R.Rng(0).s[0] == 0xE220A8397B1DCDAF
    assert sf.Rng(0).state[0] == 0xE220A8397B1DCDAF


def test_exp_twin_accuracy():
    x = -np.linspace(0, 85, 200001).astype(np.float32)
    got = R.exp_nonpos(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    ok = x >= -80
    assert np.max(np.abs(got[ok] / want[ok] - 1)) < 2.5e-7
    assert np.all(got <= 1.0)  # e <= 1: the select works on the bits of e in [0, 1]
    assert np.all(got[~ok] == 0)
    assert R.exp_nonpos(np.float32([0.0]))[0] == 1.0


def test_greedy_is_argmax_lowest_index_on_ties():
    rng = np.random.default_rng(0)
    s = sf.Sampler(1000, temperature=0)
    for _ in range(50):
        z = rng.standard_normal(1000).astype(np.float32)
        assert s.sample(z) == int(np.argmax(z))
    z = np.zeros(1000, np.float32)
    z[[17, 400, 999]] = 3.0
    assert s.sample(z) == 17
    z = np.full(1000, -np.inf, np.float32)
    z[999] = -1e30
    assert s.sample(z) == 999


def test_seeded_reproducible_and_seeds_differ():
    rng = np.random.default_rng(1)
    zs = [rng.standard_normal(5000).astype(np.float32) for _ in range(200)]
    run = lambda seed: [sf.Sampler(5000, seed=seed, top_p=0.95).sample(z) for z in zs]  # noqa: E731
    assert run(42) == run(42)
    assert run(42) != run(43)
    s = sf.Sampler(5000, seed=9)
    first = [s.sample(z) for z in zs[:20]]
    s.reset(seed=9)
    assert [s.sample(z) for z in zs[:20]] == first


def _chi2(counts, probs):
    n = counts.sum()
    exp = probs * n
    m = exp > 0
    assert np.all(counts[~m] == 0), "sampled a token with zero probability"
    return float(((counts[m] - exp[m]) ** 2 / exp[m]).sum()), int(m.sum()) - 1


@pytest.mark.parametrize("T", [1.0, 0.5, 2.0])
def test_distribution_chi_square(T):
    z = np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, 1.5, 0.2], np.float32)
    p = np.exp(z.astype(np.float64) / T)
    p /= p.sum()
    s = sf.Sampler(len(z), temperature=T, seed=123)
    counts = np.bincount([s.sample(z) for _ in range(20000)], minlength=len(z))
    chi2, dof = _chi2(counts, p)
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, counts, p)  # ~4 sigma


@pytest.mark.parametrize("T,kind", [(0.9, "wide"), (0.5, "wide"), (0.01, "close"), (1.5, "wide"), (3.0, "far"),
                                    (1.5, "rare")])
def test_distribution_chi_square_tempered_with_filter(T, kind):
    # A filter without top-p's cut-off: proposals from every token by exp(z / T),
    # accepted if min-p keeps them; after 8 rejections a direct draw from the
    # kept tokens ("rare": the kept tokens hold ~4% of the proposal mass, so
    # about 3 draws in 4 take that path). Each must follow exp(z / T) over the kept tokens.
    if kind == "wide":
        z = np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0, 1.5, 0.2], np.float32)
        min_p = 0.1  # keeps z >= 2 + ln 0.1 = -0.30
    elif kind == "close":
        z = (-0.01 * np.arange(8)).astype(np.float32)
        min_p = 1e-6  # keeps every token, but switches the filtered path on
    elif kind == "far":
        z = np.linspace(0, -10, 8).astype(np.float32)
        min_p = 1e-6
    else:
        z = np.full(64, -0.5, np.float32)
        z[:2] = [0.0, -0.3]
        min_p = math.exp(-0.4)  # keeps tokens 0 and 1
    keep = np.exp(z.astype(np.float64) - z.max()) >= min_p
    p = np.where(keep, np.exp(z.astype(np.float64) / T - z.max() / T), 0.0)
    p /= p.sum()
    s = sf.Sampler(len(z), temperature=T, min_p=min_p, seed=7)
    counts = np.bincount([s.sample(z) for _ in range(20000)], minlength=len(z))
    chi2, dof = _chi2(counts, p)
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, counts, p)  # ~4 sigma


@pytest.mark.parametrize("T,top_k", [(1.0, 0), (0.8, 0), (1.6, 0), (1.3, 1500)])
def test_distribution_chi_square_top_p_proposals(T, top_k):
    # 4096 slowly falling logits: no token holds 1/1024 of the mass, so top-p is
    # decided per proposal (kept iff the tokens above it hold less than the
    # target), not by finding its cut-off; with top-k the proposals come from
    # the k best. The kept set is computed here in float64, independently.
    V = 4096
    z = np.linspace(0.0, -3.0, V).astype(np.float32)
    e = np.exp(z.astype(np.float64))
    cum = np.cumsum(e)
    n_kept = int(np.searchsorted(cum, 0.5 * cum[-1])) + 1  # top_p = 0.5 (z is descending)
    p = np.zeros(V)
    p[:n_kept] = np.exp(z[:n_kept].astype(np.float64) / T)
    p /= p.sum()
    s = sf.Sampler(V, temperature=T, top_p=0.5, top_k=top_k, seed=11)
    counts = np.bincount([s.sample(z, record=False) for _ in range(30000)], minlength=V)
    assert counts[n_kept:].sum() == 0, "sampled a token top-p drops"
    groups = np.array_split(np.arange(n_kept), 16)  # 16 bins of consecutive kept tokens
    chi2, dof = _chi2(np.array([counts[g].sum() for g in groups]), np.array([p[g].sum() for g in groups]))
    assert chi2 < dof + 6 * math.sqrt(2 * dof), (chi2, dof)


@pytest.mark.parametrize("params", [dict(temperature=0.05), dict(temperature=20.0),
                                    dict(temperature=20.0, top_p=0.9), dict(temperature=0.3, min_p=0.1),
                                    dict(temperature=0.05, top_p=0.9)])
def test_extreme_logits_overflow_quietly_like_the_twin(params, isa):
    # (z - m) / T overflows to -inf for z - m = -3e38 at T < 1 (and z - m
    # itself for +-3.4e38): weight 0 in both, with no numpy warning (the tests
    # run with warnings as errors).
    z = np.where(np.arange(64) % 2, 0.0, -3e38).astype(np.float32)
    z[2] = -3.4e38
    s = sf.Sampler(64, seed=3, **params)
    full, rng = dict(s.params), R.Rng(3)
    for _ in range(5):
        tok = s.sample(z, record=False)
        assert tok % 2 == 1 and tok == R.sample(z, full, None, rng)


def test_top_p_support_matches_rwkv_reference():
    """top_p then temperature: the tokens the reference can draw are the ones we draw."""
    z = np.array([3.0, 2.5, 2.4, 1.0, 0.9, 0.0, -1.0, 2.0, -5.0, 1.5], np.float32)
    pipe = PIPELINE.__new__(PIPELINE)  # sample_logits needs no model
    for top_p, T in [(0.5, 1.0), (0.8, 0.7), (0.95, 2.0)]:
        np.random.seed(0)
        ref = {pipe.sample_logits(torch.tensor(z), temperature=T, top_p=top_p) for _ in range(3000)}
        s = sf.Sampler(len(z), temperature=T, top_p=top_p, seed=1)
        ours = {s.sample(z) for _ in range(3000)}
        assert ours == ref, (top_p, T)


@pytest.mark.parametrize("T", [1.0, 0.7, 1.8])
def test_top_p_distribution_within_support(T):
    # A confident distribution: at T != 1 top-p's cut-off is found among the heavy
    # tokens and the kept ones drawn directly; at T = 1 by proposals.
    z = np.array([3.0, 2.0, 1.0, 0.0, -1.0], np.float32)
    # cumulative probabilities at T = 1: .636, .870, .956 ... top_p=0.8 keeps the first two
    q = np.where(np.arange(5) < 2, np.exp(z.astype(np.float64) / T), 0)
    q /= q.sum()
    s = sf.Sampler(5, top_p=0.8, temperature=T, seed=2)
    counts = np.bincount([s.sample(z) for _ in range(10000)], minlength=5)
    chi2, dof = _chi2(counts, q)
    assert chi2 < dof + 6 * math.sqrt(2 * dof)


def test_top_k_and_min_p_and_top_p_zero():
    z = np.array([1.0, 5.0, 4.0, 5.0, 3.0, -2.0], np.float32)
    s = sf.Sampler(6, top_k=3, seed=0)
    assert {s.sample(z) for _ in range(500)} == {1, 2, 3}
    s = sf.Sampler(6, top_k=1, seed=0)
    assert {s.sample(z) for _ in range(50)} == {1}  # ties: lower index
    s = sf.Sampler(6, top_p=0.0, seed=0)
    assert {s.sample(z) for _ in range(200)} == {1, 3}  # all tokens tied at the max, like the reference
    s = sf.Sampler(6, min_p=math.exp(-1.5), seed=0)  # keeps p >= 0.22 p_max: z >= 3.5
    assert {s.sample(z) for _ in range(500)} == {1, 2, 3}
    s = sf.Sampler(6, min_p=1.0, seed=0)
    assert {s.sample(z) for _ in range(100)} == {1, 3}


def test_bias_and_bans():
    z = np.zeros(50, np.float32)
    s = sf.Sampler(50, banned_tokens=range(0, 49), seed=0)
    assert {s.sample(z) for _ in range(50)} == {49}
    s = sf.Sampler(50, logit_bias={7: 100.0}, seed=0)
    assert {s.sample(z) for _ in range(50)} == {7}
    s = sf.Sampler(50, logit_bias={7: -math.inf}, seed=0)
    assert 7 not in {s.sample(z) for _ in range(2000)}
    got = sf.Sampler(50, logit_bias={3: 1.5, 4: -2.0}, banned_tokens=[5]).process(z)
    want = z.copy()
    want[3], want[4], want[5] = 1.5, -2.0, -np.inf
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("change", ["repetition", "presence", "ban", "bias down", "bias up", "tie"])
def test_greedy_follows_the_max_after_penalties_bias_and_bans(change, isa):
    # The max after steps 2-5 is found without a second pass unless a changed
    # token held the old max; greedy must still return argmax(process(z)), the
    # first index on ties, and agree with the twin.
    V = 1000
    z = np.random.default_rng(7).standard_normal(V).astype(np.float32)
    top = int(np.argmax(z))
    other = int(np.argsort(z)[-5])
    params = {"repetition": dict(repetition_penalty=4.0), "presence": dict(presence_penalty=10.0),
              "ban": dict(banned_tokens=[top]), "bias down": dict(logit_bias={top: -10.0}),
              "bias up": dict(logit_bias={other: 10.0}),
              "tie": dict(logit_bias={other: float(z[top] - z[other])}, presence_penalty=1.0)}[change]
    s = sf.Sampler(V, temperature=0, **params)
    full = dict(s.params)
    pen = R.PenaltyState(V, full["penalty_decay"])
    for t in ([top] if change in ("repetition", "presence") else [other + 1, other - 1]):
        s.penalties.update(t)
        pen.update(t)
    want = int(np.argmax(s.process(z)))
    assert want != top or change == "tie"
    assert s.sample(z, record=False) == want == R.sample(z, full, pen, R.Rng(0))


def test_penalty_rules_match_formulas():
    V = 20
    s = sf.Sampler(V, presence_penalty=0.5, frequency_penalty=0.25, repetition_penalty=2.0,
                   penalty_decay=0.9, zero_weight_ids=[6], seed=0)
    for t in [3, 6, 3, 8]:
        s.penalties.update(t)
    # counts by hand: 3 seen at steps 0 and 2, 6 weight 0, 8 at step 3
    counts = np.zeros(V)
    counts[3] = 1 * 0.9**3 + 1 * 0.9
    counts[8] = 1
    np.testing.assert_allclose(s.penalties.counts, counts, rtol=1e-15)
    assert list(s.penalties.present) == [3, 6, 8]
    z = np.linspace(-2, 2, V).astype(np.float32)
    got = s.process(z)
    want = z.astype(np.float64)
    for t in (3, 6, 8):
        want[t] = want[t] / 2.0 if want[t] > 0 else want[t] * 2.0  # HF/CTRL repetition rule
        want[t] -= 0.5 + counts[t] * 0.25
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got[6] < z[6]  # present with count 0: the presence penalty still applies


def test_sample_records_penalties_and_logits_untouched():
    z = np.zeros(10, np.float32)
    z_copy = z.copy()
    s = sf.Sampler(10, presence_penalty=100.0, seed=4)
    toks = [s.sample(z) for _ in range(10)]
    assert sorted(toks) == list(range(10))  # the penalty forbids repeats until all are used
    np.testing.assert_array_equal(z, z_copy)
    s2 = sf.Sampler(10, presence_penalty=100.0, seed=4)
    for _ in range(5):
        s2.sample(z, record=False)
    assert len(s2.penalties.present) == 0


def test_reference_zero_weight_ids():
    tok = sf.WorldTokenizer.default()
    ids = sf.sampler.reference_zero_weight_ids(tok)
    texts = {tok.token_to_bytes(i) for i in ids}
    assert b" " in texts and b"\t" in texts and b"0" in texts and b"" in texts
    assert all(t in b" \t0123456789" for t in texts)
    assert b"a" not in texts


@pytest.mark.parametrize("kwargs, name", [
    (dict(temperature=-0.1), "temperature"),
    (dict(temperature=math.nan), "temperature"),
    (dict(temperature=math.inf), "temperature"),
    (dict(top_p=1.01), "top_p"),
    (dict(top_p=-0.01), "top_p"),
    (dict(top_p=math.nan), "top_p"),
    (dict(top_k=-1), "top_k"),
    (dict(min_p=1.5), "min_p"),
    (dict(min_p=-0.5), "min_p"),
    (dict(presence_penalty=math.nan), "presence_penalty"),
    (dict(frequency_penalty=math.inf), "frequency_penalty"),
    (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(repetition_penalty=math.nan), "repetition_penalty"),
    (dict(penalty_decay=1.5), "penalty_decay"),
    (dict(logit_bias={100: 1.0}), "logit_bias"),
    (dict(logit_bias={-1: 1.0}), "logit_bias"),
    (dict(logit_bias={3: math.nan}), "logit_bias"),
    (dict(logit_bias={3: math.inf}), "logit_bias"),
    (dict(banned_tokens=[100]), "banned_tokens"),
    (dict(seed=-1), "seed"),
    (dict(zero_weight_ids=[100]), "zero_weight_ids"),
])
def test_bad_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sf.Sampler(100, **kwargs)


def test_bad_parameter_types():
    with pytest.raises(TypeError, match="top_k"):
        sf.Sampler(100, top_k=1.5)
    with pytest.raises(TypeError, match="logit_bias"):
        sf.Sampler(100, logit_bias=[(1, 2.0)])
    with pytest.raises(ValueError, match="vocab_size"):
        sf.Sampler(0)
    with pytest.raises(ValueError, match="vocab_size"):
        sf.Sampler(2**22 + 1)


def test_bad_logits():
    s = sf.Sampler(100, seed=0)
    z = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match="float32"):
        s.sample(z.astype(np.float64))
    with pytest.raises(ValueError, match="100 values"):
        s.sample(np.zeros(99, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        s.sample(np.zeros((10, 10), np.float32))
    with pytest.raises(ValueError, match="ascontiguousarray"):
        s.sample(np.zeros(200, np.float32)[::2])
    with pytest.raises(TypeError, match="numpy"):
        s.sample([0.0] * 100)
    bad = z.copy()
    bad[42] = np.nan
    with pytest.raises(ValueError, match="NaN at index 42"):
        s.sample(bad)
    bad[42] = np.inf
    with pytest.raises(ValueError, match=r"\+inf at index 42"):
        s.sample(bad)
    with pytest.raises(ValueError, match="-inf for every token"):
        s.sample(np.full(100, -np.inf, np.float32))
    with pytest.raises(ValueError, match="-inf for every token"):
        sf.Sampler(3, banned_tokens=[0, 1, 2]).sample(np.zeros(3, np.float32))


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 20.0])
@pytest.mark.parametrize("params", [dict(top_p=0.85), dict(top_p=0.99, temperature=0.6),
                                    dict(top_p=0.5, min_p=0.01, top_k=5000)],
                         ids=["p.85", "p.99", "p.5+minp+topk"])
def test_twin_parity_flat_and_sharp_full_vocab(sigma, params):
    """Flat logits put tens of thousands of tokens inside top-p (the histogram
    path); sharp ones a handful (the candidate-only path)."""
    V = 65536
    rng = np.random.default_rng(int(sigma * 100))
    s = sf.Sampler(V, seed=8, **params)
    r = R.Rng(8)
    for _ in range(4):
        z = (rng.standard_normal(V) * sigma).astype(np.float32)
        assert s.sample(z, record=False) == R.sample(z, s.params, None, r)


# ------------------------------------------------- ints and floats past C's range
@pytest.mark.parametrize("kwargs, name", [
    (dict(banned_tokens=[2**70]), r"banned_tokens\[0\]: token id 1180591620717411303424 is outside"),
    (dict(banned_tokens=[1, 2**64]), r"banned_tokens\[1\]"),
    (dict(logit_bias={2**70: 1.0}), "logit_bias key: token id 1180591620717411303424 is outside"),
    (dict(logit_bias={-2**70: 1.0}), "logit_bias key"),
    (dict(zero_weight_ids=[2**70]), r"zero_weight_ids\[0\]: token id"),
    (dict(zero_weight_ids=[np.int64(100)]), r"zero_weight_ids\[0\]"),
])
def test_huge_token_ids_are_value_errors(kwargs, name):
    with pytest.raises(ValueError, match=name) as e:
        sf.Sampler(100, **kwargs)
    assert "incompatible" not in str(e.value)


@pytest.mark.parametrize("v", [2**31, 2**63, 2**70])
def test_huge_vocab_size_is_value_error(v):
    for make in (sf.Sampler, sf.sampler.PenaltyState):
        with pytest.raises(ValueError, match="vocab_size") as e:
            make(v)
        assert "incompatible" not in str(e.value)


def test_penalty_state_update_checks_the_id():
    ps = sf.sampler.PenaltyState(10)
    for bad in [2**70, 2**63, 10, -1]:
        with pytest.raises(ValueError, match=r"token id .* is outside the vocabulary \[0, 10\)"):
            ps.update(bad)
    with pytest.raises(TypeError, match="token must be an int"):
        ps.update(True)
    ps.update(np.int64(3))
    ps.update(np.uint8(4))
    assert list(ps.present) == [3, 4]


@pytest.mark.parametrize("top_k", [2**70, 2**63, 2**40, 100, 101, np.uint64(2**64 - 1)])
def test_top_k_at_or_past_the_vocabulary_is_off(top_k):
    # top_k >= vocab_size keeps every token: the same draws as top_k = 0
    z = np.random.default_rng(1).standard_normal(100).astype(np.float32)
    s, off = sf.Sampler(100, top_k=top_k, seed=4), sf.Sampler(100, top_k=0, seed=4)
    assert [s.sample(z) for _ in range(50)] == [off.sample(z) for _ in range(50)]
    assert s.params["top_k"] <= 100


def test_numpy_ints_accepted_like_ints():
    z = np.random.default_rng(2).standard_normal(100).astype(np.float32)
    a = sf.Sampler(np.int64(100), top_k=np.int32(5), seed=np.uint64(9), banned_tokens=np.array([1, 2]),
                   logit_bias={np.int64(7): np.float32(2.0)}, zero_weight_ids=[np.int16(3)])
    b = sf.Sampler(100, top_k=5, seed=9, banned_tokens=[1, 2], logit_bias={7: 2.0}, zero_weight_ids=[3])
    assert [a.sample(z) for _ in range(30)] == [b.sample(z) for _ in range(30)]
    for kwargs in [dict(top_k=np.bool_(True)), dict(banned_tokens=[np.bool_(False)]),
                   dict(logit_bias={True: 1.0}), dict(vocab_size=np.bool_(True))]:
        with pytest.raises(TypeError, match="must be an int"):
            sf.Sampler(**{"vocab_size": 100, **kwargs})


@pytest.mark.parametrize("name", ["temperature", "top_p", "min_p", "presence_penalty", "frequency_penalty",
                                  "repetition_penalty", "penalty_decay"])
@pytest.mark.parametrize("v", [10**400, -10**400])
def test_int_too_large_for_a_float_is_value_error(name, v):
    with pytest.raises(ValueError, match=f"{name} must be a finite number"):
        sf.Sampler(100, **{name: v})


def test_logit_bias_int_too_large_for_a_float():
    with pytest.raises(ValueError, match=r"logit_bias\[3\] must be a finite number"):
        sf.Sampler(100, logit_bias={3: 10**400})


@pytest.mark.parametrize("kwargs, match", [
    (dict(repetition_penalty=1e6 * 1.0001), r"repetition_penalty must be in \[1e-06, 1e\+06\]"),
    (dict(repetition_penalty=1e-7), r"repetition_penalty must be in \[1e-06, 1e\+06\]"),
    (dict(repetition_penalty=1e-50), "repetition_penalty"),  # rounds to float32 0
    (dict(repetition_penalty=1e300), "repetition_penalty"),  # rounds to float32 inf
    (dict(repetition_penalty=-1.0), "repetition_penalty"),
    (dict(presence_penalty=1e6 + 1), r"presence_penalty must be in \[-1e\+06, 1e\+06\]"),
    (dict(presence_penalty=-1e30), "presence_penalty"),
    (dict(frequency_penalty=1e300), r"frequency_penalty must be in \[-1e\+06, 1e\+06\]"),
    (dict(frequency_penalty=-1e6 - 1), "frequency_penalty"),
    (dict(logit_bias={3: 3.5e38}), r"logit_bias\[3\] must be -inf or within float32's finite range"),
    (dict(logit_bias={3: -1e39}), r"logit_bias\[3\]"),  # -inf in float32, but not meant as a ban
    (dict(logit_bias={3: 1e300}), r"logit_bias\[3\]"),
    (dict(logit_bias={3: -1e300}), r"logit_bias\[3\]"),
])
def test_penalties_and_bias_are_bounded(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sf.Sampler(100, **kwargs)


def test_penalty_and_bias_bounds_are_inclusive():
    z = np.random.default_rng(3).standard_normal(100).astype(np.float32)
    for kwargs in [dict(repetition_penalty=1e6), dict(repetition_penalty=1e-6),
                   dict(presence_penalty=1e6, frequency_penalty=-1e6),
                   dict(presence_penalty=-1e6, frequency_penalty=1e6),
                   dict(logit_bias={3: 1e6, 4: -3.4e38, 5: -math.inf}),
                   dict(logit_bias={3: float(np.finfo(np.float32).max)}), dict(temperature=1e300)]:
        s = sf.Sampler(100, seed=0, **kwargs)
        for _ in range(3):
            assert 0 <= s.sample(z) < 100
