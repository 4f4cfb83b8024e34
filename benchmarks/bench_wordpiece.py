"""Tokenizer throughput, single thread: sutra_fast vs HF tokenizers vs the twin.

Texts: the real corpus of tests/text_corpus.py (Debian licence/copyright
paragraphs + standard-library docstrings, ~1.2 M tokens), encoded in batches of
64 texts; ids are checked equal before timing.

    PYTHONPATH=python pytest benchmarks/bench_wordpiece.py            # pytest-benchmark table
    PYTHONPATH=python python benchmarks/bench_wordpiece.py            # tokens/s table
    SUTRA_BENCH_TINY=1 PYTHONPATH=python pytest benchmarks/bench_wordpiece.py --benchmark-disable
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

TINY = bool(os.environ.get("SUTRA_BENCH_TINY"))
BATCH = 64
TWIN_SHARE = 20  # the twin gets 1/20 of the texts (it is ~50x slower); tokens/s stays comparable


def load_texts() -> list[str]:
    if TINY:
        return text_corpus.licence_texts(max_chars=20_000) + text_corpus.stdlib_docstrings(50)
    return text_corpus.real_corpus()


def batches(texts):
    return [texts[i:i + BATCH] for i in range(0, len(texts), BATCH)]


def make_runners(path, texts):
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(path)
    hf.no_truncation()
    hf.no_padding()
    ours = sf.WordPieceTokenizer.from_file(path)
    twin = reference.WordPieceTokenizer.from_file(path)
    full = batches(texts)
    part = batches(texts[::TWIN_SHARE])

    def run_ours(bs):
        for b in bs:
            ours.encode_batch(b)  # padded int64 arrays, what the Embedder consumes

    def run_hf(bs):
        for b in bs:
            hf.encode_batch(b)

    def run_twin(bs):
        for b in bs:
            twin.encode_batch(b)

    def count(bs):
        return sum(len(e.ids) for b in bs for e in hf.encode_batch(b))

    # Same ids before racing.
    for b in full[:20] + part[:5]:
        want = [e.ids for e in hf.encode_batch(b)]
        assert [r.tolist() for r in ours.encode_batch(b, pad=False)["input_ids"]] == want
    for b in part[:2]:
        assert [r.tolist() for r in twin.encode_batch(b, pad=False)["input_ids"]] == \
            [e.ids for e in hf.encode_batch(b)]
    return {
        "sutra_fast": (run_ours, full, count(full)),
        "hf_tokenizers": (run_hf, full, count(full)),
        "reference_twin": (run_twin, part, count(part)),
    }


@pytest.fixture(scope="module")
def runners():
    before = sf.get_num_threads()
    sf.set_num_threads(1)
    path = os.path.join(text_corpus.minilm_model_dir(), "tokenizer.json")
    yield make_runners(path, load_texts())
    sf.set_num_threads(before)


@pytest.mark.parametrize("impl", ["sutra_fast", "hf_tokenizers", "reference_twin"])
def test_tokenize_single_thread(benchmark, runners, impl):
    fn, data, tokens = runners[impl]
    benchmark.group = "wordpiece single thread (batches of 64)"
    benchmark.extra_info["tokens"] = tokens
    benchmark.pedantic(fn, args=(data,), rounds=1 if impl == "reference_twin" or TINY else 3, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info["tokens_per_s"] = tokens / benchmark.stats.stats.min


def main() -> None:
    sf.set_num_threads(1)
    path = os.path.join(text_corpus.minilm_model_dir(), "tokenizer.json")
    texts = load_texts()
    rs = make_runners(path, texts)
    print(f"{len(texts)} texts, {rs['hf_tokenizers'][2]} tokens, batches of {BATCH}, 1 thread")
    # Interleaved rounds, best of each: the machine may be shared, and load
    # changing between two back-to-back blocks would skew the ratio.
    best = {name: float("inf") for name in rs}
    for round_ in range(5):
        for name, (fn, data, tokens) in rs.items():
            if name == "reference_twin" and round_ > 0:
                continue
            t0 = time.perf_counter()
            fn(data)
            best[name] = min(best[name], time.perf_counter() - t0)
    rates = {name: rs[name][2] / best[name] for name in rs}
    print(f"{'implementation':<16} {'M tokens/s':>11} {'vs HF':>7}")
    for name, rate in rates.items():
        print(f"{name:<16} {rate / 1e6:>11.2f} {rate / rates['hf_tokenizers']:>6.1f}x")
    # Also: the whole corpus in one encode_batch call on every core (unpadded rows).
    ours = sf.WordPieceTokenizer.from_file(path)
    tokens = rs["sutra_fast"][2]
    for n in sorted({1, sf.cpu_info()["default_num_threads"]}):
        sf.set_num_threads(n)
        t0 = time.perf_counter()
        ours.encode_batch(texts, pad=False)
        print(f"sutra_fast, one call, {n} thread(s): {tokens / (time.perf_counter() - t0) / 1e6:.2f} M tokens/s")


if __name__ == "__main__":
    main()
