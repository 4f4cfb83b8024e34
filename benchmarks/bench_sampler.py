"""Sampling one token at vocab 65536: sutra_fast vs the rwkv package's
PIPELINE.sample_logits (torch softmax + numpy sort) vs the numpy twin, over the
logit regimes that decide the cost of top-p.

Run:  python -m pytest benchmarks/bench_sampler.py --benchmark-only
Logits:
  peaked    5 dominant tokens hold >99% of the mass (a confident LM);
  spiky     5 strong tokens over a wide background that top-p 0.85 still reaches;
  flat      standard normal (random-weight models): ~30000 tokens inside top-p;
  flat 0.1  normal(0, 0.1): nearly uniform, ~55000 tokens inside top-p;
  uniform   all equal: every token tied at the cut-off;
  ties      integers in [-3, 2] with 10% -inf: few distinct values, many ties;
  extreme   +-3.4e38 alternating: z - m overflows to -inf for half the tokens.
The target (issue #5): <= 0.1 ms per sampled token in every regime.
"""
import numpy as np
import pytest
import torch

import sutra_fast as sf
from sutra_fast.reference import sampler as R
from rwkv.utils import PIPELINE


def _logits(V, kind, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(V).astype(np.float32)
    if kind == "spiky":
        z *= 2
        z[rng.integers(0, V, 5)] += rng.uniform(8, 14, 5).astype(np.float32)
    elif kind == "peaked":
        z[rng.integers(0, V, 5)] += rng.uniform(16, 20, 5).astype(np.float32)
    elif kind == "flat 0.1":
        z *= 0.1
    elif kind == "uniform":
        z[:] = 0.0
    elif kind == "ties":
        z = rng.integers(-3, 3, V).astype(np.float32)
        z[rng.integers(0, V, V // 10)] = -np.inf
    elif kind == "extreme":
        z = np.full(V, 3.4e38, np.float32)
        z[::2] = -3.4e38
    return z


PENALTIES = dict(presence_penalty=0.2, frequency_penalty=0.2)
CASES = {"T=1 top_p=0.85": dict(temperature=1.0, top_p=0.85),
         "T=0.8 top_p=0.85 +penalties": dict(temperature=0.8, top_p=0.85, **PENALTIES),
         "T=1.2 top_p=0.9 top_k=40 min_p=0.05 +penalties": dict(temperature=1.2, top_p=0.9, top_k=40,
                                                               min_p=0.05, **PENALTIES),
         "T=1.3 top_p=0.95": dict(temperature=1.3, top_p=0.95),
         "greedy": dict(temperature=0.0)}
KINDS = ["peaked", "spiky", "flat", "flat 0.1", "uniform", "ties", "extreme"]
PAIRS = [(case, kind) for case in CASES for kind in KINDS
         if case != "greedy" or kind in ("peaked", "flat")]


@pytest.fixture(scope="module")
def V(quick):
    return 4096 if quick else 65536


@pytest.mark.parametrize("case,kind", PAIRS, ids=[f"{c} ({k})" for c, k in PAIRS])
@pytest.mark.parametrize("who", ["sutra_fast", "rwkv sample_logits", "numpy twin"])
def test_sample(benchmark, V, case, kind, who):
    params = CASES[case]
    z = _logits(V, kind)
    benchmark.group = f"sample V={V} {case} ({kind})"
    benchmark.extra_info["contender"] = who
    if who == "sutra_fast":
        s = sf.Sampler(V, seed=1, **params)
        for t in range(50):  # some penalty state, as mid-generation
            s.penalties.update(t * 7)
        tok = benchmark(s.sample, z, record=False)
    elif who == "numpy twin":
        full = sf.Sampler(V, **params).params
        pen = R.PenaltyState(V)
        for t in range(50):
            pen.update(t * 7)
        rng = R.Rng(1)
        tok = benchmark.pedantic(R.sample, args=(z, full, pen, rng), rounds=5, iterations=1)
    else:
        pipe = PIPELINE.__new__(PIPELINE)  # sample_logits needs no model
        zt = torch.tensor(z)
        occurrence = {t * 7: 1.0 for t in range(50)}

        def ref():  # the reference's generate() penalty step + sample_logits (it has no min_p)
            out = zt.clone()
            if params.get("presence_penalty"):
                for n, c in occurrence.items():
                    out[n] -= params["presence_penalty"] + c * params["frequency_penalty"]
            return pipe.sample_logits(out, temperature=params["temperature"], top_p=params.get("top_p", 0.85),
                                      top_k=params.get("top_k", 0))

        tok = benchmark(ref)
    assert 0 <= tok < V
