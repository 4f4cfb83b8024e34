"""WordPiece tokenization, single thread: sutra_fast vs HF tokenizers vs the Python twin.

Texts: the real corpus of tests/text_corpus.py (Debian licence/copyright
paragraphs + every standard-library docstring, ~14,700 texts, ~1.3 M tokens),
encoded in batches of 64 texts with the real all-MiniLM-L6-v2 tokenizer.json;
ids are checked equal before timing. Every contender does the same work.

    python benchmarks/report.py wordpiece                      # table into BENCHMARKS.md
    python -m pytest benchmarks/bench_wordpiece.py --benchmark-enable --benchmark-only
    python benchmarks/bench_wordpiece.py                       # tokens/s table, interleaved rounds
"""
from __future__ import annotations

import os
import sys
import time

# Single-thread HF tokenizers: must be set before its Rayon pool starts.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"

import pytest  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import text_corpus  # noqa: E402

import sutra_fast as sf  # noqa: E402
from sutra_fast import reference  # noqa: E402

BATCH = 64
GROUP = "wordpiece: real corpus, batches of 64, 1 thread"


def load_texts(quick: bool) -> list[str]:
    if quick:
        return text_corpus.licence_texts(max_chars=20_000) + text_corpus.stdlib_docstrings(50)
    return text_corpus.real_corpus()


def make_contenders(texts):
    from tokenizers import Tokenizer

    path = os.path.join(text_corpus.minilm_model_dir(), "tokenizer.json")
    hf = Tokenizer.from_file(path)
    hf.no_truncation()
    hf.no_padding()
    ours = sf.WordPieceTokenizer.from_file(path)
    twin = reference.WordPieceTokenizer.from_file(path)
    batches = [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]

    def run_ours():
        for b in batches:
            ours.encode_batch(b)  # padded int64 arrays, what the Embedder consumes

    def run_hf():
        for b in batches:
            hf.encode_batch(b)

    def run_twin():
        for b in batches:
            twin.encode_batch(b)

    # Same ids before racing (the twin on a sample: it is slow).
    for i, b in enumerate(batches):
        want = [e.ids for e in hf.encode_batch(b)]
        assert [r.tolist() for r in ours.encode_batch(b, pad=False)["input_ids"]] == want
        if i % 20 == 0:
            assert [r.tolist() for r in twin.encode_batch(b, pad=False)["input_ids"]] == want
    tokens = sum(len(e.ids) for b in batches for e in hf.encode_batch(b))
    return {"sutra_fast": run_ours, "HF tokenizers": run_hf, "Python twin": run_twin}, tokens


@pytest.fixture(scope="module")
def contenders(quick):
    return make_contenders(load_texts(quick))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("name", ["sutra_fast", "HF tokenizers", "Python twin"])
def test_wordpiece(benchmark, contenders, name):
    fns, tokens = contenders
    benchmark.extra_info["contender"] = name
    benchmark.extra_info["tokens"] = tokens
    if name == "sutra_fast":
        benchmark(fns[name])
    else:  # seconds per round: a few rounds are enough
        benchmark.pedantic(fns[name], rounds=1 if name == "Python twin" else 3, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["tokens_per_s"] = tokens / benchmark.stats.stats.median


def main() -> None:
    """Tokens/s, interleaved best-of-5 rounds (robust on a shared machine)."""
    sf.set_num_threads(1)
    texts = load_texts(quick=False)
    fns, tokens = make_contenders(texts)
    print(f"{len(texts)} texts, {tokens} tokens, batches of {BATCH}, 1 thread")
    best = {name: float("inf") for name in fns}
    for round_ in range(5):
        for name, fn in fns.items():
            if name == "Python twin" and round_ > 0:
                continue
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    rates = {name: tokens / t for name, t in best.items()}
    print(f"{'implementation':<16} {'M tokens/s':>11} {'vs HF':>7}")
    for name, rate in rates.items():
        print(f"{name:<16} {rate / 1e6:>11.2f} {rate / rates['HF tokenizers']:>6.1f}x")
    n = sf.cpu_info()["default_num_threads"]
    if n > 1:  # the same batches over every core
        sf.set_num_threads(n)
        t = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            fns["sutra_fast"]()
            t = min(t, time.perf_counter() - t0)
        sf.set_num_threads(1)
        print(f"sutra_fast, {n} threads: {tokens / t / 1e6:.2f} M tokens/s")


if __name__ == "__main__":
    main()
