"""End-to-end text generation: text prompt in, text out (tokenize, prefill,
sample, decode, detokenize), sutra_fast vs the `rwkv` package's PIPELINE.generate.

Random-weight checkpoint with the real 0.1B World layout (tiny under
``--benchmark-disable``). Both sides: the same 64-token-ish prompt, 32 new
tokens, temperature 1.0, top_p 0.85, one thread. Random weights give flat
logits, the slowest case for top-p sampling. Time to first token is reported
in each row's extra_info and in the table's group title.

    python benchmarks/report.py generate
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("RWKV_V7_ON", "1")  # before any import of rwkv.model

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rwkv_checkpoints as rc  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")

PROMPT = ("The Python Software Foundation is a non-profit corporation that holds the "
          "intellectual property rights behind the Python programming language. We manage "
          "the open source licensing for Python version 2.1 and later.")
NEW_TOKENS = 32
WORLD_TINY = rc.Shape(n_layer=2, n_embd=64, head_size=16, vocab=65536, d_w=8, d_a=8, d_v=4, d_g=16)


@pytest.fixture(scope="module")
def checkpoint(quick, tmp_path_factory):
    shape = WORLD_TINY if quick else rc.WORLD_0B1
    return rc.make_checkpoint(tmp_path_factory.mktemp("bench_gen"), shape, seed=0, fmt="pth")


def sutra_generate(path, dtype):
    import sutra_fast as sf

    gen = sf.Generator.load(path, dtype=dtype)

    def run():
        stream = gen.stream(PROMPT, max_tokens=NEW_TOKENS, temperature=1.0, top_p=0.85, seed=1)
        t0 = time.perf_counter()
        first = None
        for _ in stream:
            first = first or time.perf_counter() - t0
        return stream.result.usage["completion_tokens"], first
    return run


def package_generate(path):
    import torch

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script", DeprecationWarning)
        from rwkv.model import RWKV
        from rwkv.utils import PIPELINE, PIPELINE_ARGS

    model = RWKV(model=str(path)[:-4], strategy="cpu fp32")
    pipeline = PIPELINE(model, "rwkv_vocab_v20230424")
    args = PIPELINE_ARGS(temperature=1.0, top_p=0.85)

    def run():
        t0 = time.perf_counter()
        first = []
        pipeline.generate(PROMPT, token_count=NEW_TOKENS, args=args,
                          callback=lambda s: first or first.append(time.perf_counter() - t0))
        return NEW_TOKENS, first[0] if first else None
    return run


CONTENDERS = {"sutra_fast fp32": lambda p: sutra_generate(p, "fp32"),
              "sutra_fast int8": lambda p: sutra_generate(p, "int8"),
              "rwkv 0.8.32 cpu fp32": package_generate}


@pytest.mark.parametrize("who", list(CONTENDERS))
def test_generate(benchmark, checkpoint, who):
    run = CONTENDERS[who](checkpoint)
    run()  # warm-up
    benchmark.group = f"generate: text prompt -> {NEW_TOKENS} new tokens, end to end"
    benchmark.extra_info["contender"] = "sutra_fast" if who == "sutra_fast fp32" else who
    out = benchmark.pedantic(run, rounds=3, iterations=1)
    tokens, first = out
    assert tokens >= 1
    benchmark.extra_info["time_to_first_token_ms"] = round(first * 1e3, 2) if first else None
