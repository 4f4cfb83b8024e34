"""End-to-end embedding benchmark: sutra_fast vs sentence-transformers vs ORT + HF tokenizers.

Single thread everywhere (torch.set_num_threads(1), ORT intra_op 1,
SUTRA_NUM_THREADS=1), the same real sentences (licence texts + stdlib
docstrings, see tests/real_corpus.py), all-MiniLM-L6-v2.

As pytest-benchmark tests (tiny sizes when run with --benchmark-disable):

    PYTHONPATH=python python -m pytest benchmarks/bench_embed.py --benchmark-disable   # smoke
    PYTHONPATH=python python -m pytest benchmarks/bench_embed.py                       # timed

Full comparison table (throughput, batch-1 latency, cold start, peak RSS):

    PYTHONPATH=python python benchmarks/bench_embed.py [--n 2000] [--rounds 3]

Throughput is reported from process CPU time (robust on a shared machine)
and wall time; rounds are interleaved and the best round is kept.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SUTRA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from real_corpus import real_sentences  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_flops import fma_peak_gflops, ort_sgemm_gflops, text_flops  # noqa: E402
from embed_pipelines import PIPELINES, converted_model  # noqa: E402

SMALL = 64      # sentences when pytest-benchmark is disabled (smoke run)
FULL = 2000


# ------------------------------------------------------------ pytest-benchmark

@pytest.fixture(scope="module")
def sentences(request):
    disabled = request.config.getoption("benchmark_disable", default=False)
    return list(real_sentences(SMALL if disabled else FULL))


@pytest.fixture(scope="module", params=list(PIPELINES))
def pipeline(request):
    return request.param, PIPELINES[request.param]()


def test_throughput(benchmark, pipeline, sentences):
    name, run = pipeline
    benchmark.group = "embed throughput (sorted batches of 32, 1 thread)"
    benchmark.extra_info["sentences"] = len(sentences)
    vecs = benchmark.pedantic(run, args=(sentences,), rounds=1 if len(sentences) > SMALL else 2,
                              iterations=1)
    assert vecs.shape == (len(sentences), 384)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_batch1_latency(benchmark, pipeline, sentences):
    name, run = pipeline
    benchmark.group = "embed one sentence (batch 1, 1 thread)"
    it = iter(range(10**9))
    vec = benchmark(lambda: run([sentences[next(it) % len(sentences)]], batch_size=1))
    assert vec.shape == (1, 384)


def test_fp32_bound_probes():
    """The probes behind the table's bound line run and give rates (smoke; their
    values are timings, so nothing is asserted about them but their kind)."""
    peak = fma_peak_gflops()
    assert isinstance(peak, float) and peak > 0, "needs a C++ compiler (g++), as the build does"
    assert ort_sgemm_gflops(rows=8, repeats=2) > 0


# --------------------------------------------------------------- full table

COLD_STARTS = 5  # fresh processes per pipeline; the table shows their median

_CHILD = r"""
import os, sys, time, resource, json
t0 = time.perf_counter()
sys.path.insert(0, {bench_dir!r})
os.environ["SUTRA_NUM_THREADS"] = "1"
import embed_pipelines as b
run = b.PIPELINES[{name!r}]()
run(["The quick brown fox jumps over the lazy dog."], batch_size=1)
t1 = time.perf_counter()
if {n} == 0:  # a cold-start sample only
    print(json.dumps({{"cold_start_s": t1 - t0}}))
    sys.exit(0)
texts = list(b.real_sentences({n}))
run(texts)
print(json.dumps({{"cold_start_s": t1 - t0,
                  "peak_rss_mb": int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]) / 1024}}))
"""


def _child_stats(name: str, n: int) -> dict:
    code = _CHILD.format(bench_dir=str(Path(__file__).resolve().parent), name=name, n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _compile_sutra_fast() -> None:
    """Bytecode for sutra_fast before the cold starts: the packages the other
    pipelines import carry it from their install, as a pip-installed sutra_fast
    does; a source checkout on PYTHONPATH under PYTHONDONTWRITEBYTECODE would
    compile sutra_fast in every cold start instead (5-9 ms here)."""
    import compileall

    import sutra_fast
    compileall.compile_dir(str(Path(sutra_fast.__file__).parent), quiet=1)


def _timed(fn, *args, **kw):
    c0, w0 = time.process_time(), time.perf_counter()
    r = fn(*args, **kw)
    return r, time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=FULL, help="sentences for throughput")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-n", type=int, default=200,
                    help="sentences for batch-1 latency, evenly spaced over the throughput texts")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    texts = list(real_sentences(args.n))
    for q in (None, "int8"):
        converted_model(q)       # convert outside the timings
    from sutra_fast import WordPieceTokenizer
    tok = WordPieceTokenizer.from_file(converted_model() / "tokenizer.json")
    tokens = tok.encode_batch(texts, max_length=256)["attention_mask"].sum(axis=1)
    gflop = float(text_flops(tokens).sum()) / 1e9
    # Every k-th text, not the first ones: the corpus starts with long licence
    # paragraphs (first 200: median 34 tokens vs 23 over all 2000).
    step = max(1, len(texts) // args.latency_n)
    lat_idx = np.arange(0, len(texts), step)[:args.latency_n]
    sgemm = [ort_sgemm_gflops()]
    runs = {name: make() for name, make in PIPELINES.items()}
    ref = runs["sentence-transformers"](texts)
    res = {name: {"cpu": [], "wall": [], "lat": []} for name in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():      # interleaved rounds
            vecs, cpu, wall = _timed(run, texts)
            res[name]["cpu"].append(cpu)
            res[name]["wall"].append(wall)
            res[name]["min_cos"] = float(np.min(np.sum(vecs * ref, axis=1)))
            lat = []
            for i in lat_idx:
                _, c, _w = _timed(run, [texts[i]], batch_size=1)
                lat.append(c)
            res[name]["lat"].append(float(np.median(lat)))
    sgemm.append(ort_sgemm_gflops())
    _compile_sutra_fast()
    for name in runs:
        res[name].update(_child_stats(name, min(args.n, 500)))
        res[name]["cold_starts_s"] = [res[name]["cold_start_s"]]
    for _ in range(COLD_STARTS - 1):    # more fresh processes, interleaved: one is noise here
        for name in runs:
            res[name]["cold_starts_s"].append(_child_stats(name, 0)["cold_start_s"])
    for name in runs:
        res[name]["cold_start_s"] = float(np.median(res[name]["cold_starts_s"]))
    st = len(texts) / min(res["sentence-transformers"]["cpu"])
    rows = ["| pipeline | sent/s (CPU time) | sent/s (wall) | x sentence-transformers | "
            "batch-1 p50 ms | cold start s | peak RSS MB | min cosine vs ST | GFLOP/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in res.items():
        sps = len(texts) / min(r["cpu"])
        rows.append(f"| {name} | {sps:.0f} | {len(texts) / min(r['wall']):.0f} | {sps / st:.2f} | "
                    f"{min(r['lat']) * 1e3:.2f} | {r['cold_start_s']:.2f} | {r['peak_rss_mb']:.0f} | "
                    f"{r['min_cos']:.6f} | {gflop / min(r['cpu']):.0f} |")
    print(f"{len(texts)} real sentences, 1 thread, best of {args.rounds} interleaved rounds; "
          f"batch-1 p50: every {step}th sentence ({len(lat_idx)}, median "
          f"{np.median(tokens[lat_idx]):.0f} tokens; all {len(texts)}: median "
          f"{np.median(tokens):.0f}); cold start: median of {COLD_STARTS} fresh processes")
    print("\n".join(rows))
    rate = max(sgemm)
    bound = len(texts) / (gflop / rate)
    print(f"\nfp32 bound: {len(texts)} sentences = {int(tokens.sum())} tokens (mean {tokens.mean():.1f}) "
          f"= {gflop:.0f} GFLOP of encoder arithmetic (GFLOP/s column: this / CPU time); ORT's "
          f"1-thread SGEMM on the FFN shapes ran {min(sgemm):.0f}-{rate:.0f} GFLOP/s in this run "
          f"(before / after the rounds), so an exact fp32 pipeline with no padding and no "
          f"non-GEMM work would reach at most {bound:.0f} sent/s = {bound / st:.2f}x "
          f"sentence-transformers here.")
    peak = fma_peak_gflops()
    if peak:
        print(f"The core's fp32 FMA peak (register-only loop): {peak:.0f} GFLOP/s; at that rate: "
              f"{len(texts) / (gflop / peak):.0f} sent/s = {len(texts) / (gflop / peak) / st:.2f}x; "
              f"sutra_fast fp32 did {gflop / min(res['sutra_fast fp32']['cpu']) / peak:.0%} of it.")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
