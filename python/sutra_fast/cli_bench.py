"""``sutra-fast bench``: end-to-end comparisons against the packages users would otherwise run.

The comparisons live in the source tree's ``benchmarks/e2e.py`` (they import the
reference packages: torch, sentence-transformers, tokenizers, rwkv, pyrwkv-tokenizer);
this module only finds them, runs them and prints / writes / plots the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sutra_fast.cli import check_output_file

CASES = ("embed", "wordpiece", "world", "rwkv", "generate")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="race sutra_fast against the reference packages (ratio table)",
        description="Run the end-to-end comparisons in one process (same inputs, same threads) "
                    "and print ours/theirs time ratios: below 1 means sutra_fast is faster. "
                    "Needs a source checkout (benchmarks/) and the bench extra.")
    p.add_argument("--quick", action="store_true", help="tiny shapes (a smoke run, well under a minute)")
    p.add_argument("--threads", type=_positive, default=1, help="threads for every contender (default 1)")
    p.add_argument("--only", action="append", choices=CASES, default=None,
                   help="run only this case (repeatable)")
    p.add_argument("--json", dest="json_out", default=None, help="write the results here")
    p.add_argument("--plot", default=None, help="write a bar chart of the ratios (PNG)")
    p.set_defaults(func=run)


def _positive(s: str) -> int:
    try:
        n = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return n


def _bench_dir() -> Path:
    """benchmarks/ of a source checkout: $SUTRA_BENCH_DIR, else beside an in-place
    build (python/sutra_fast -> benchmarks), else ./benchmarks (an installed package
    run from the checkout)."""
    env = os.environ.get("SUTRA_BENCH_DIR")
    candidates = [Path(env)] if env else [Path(__file__).resolve().parents[2] / "benchmarks",
                                          Path.cwd() / "benchmarks"]
    for d in candidates:
        if (d / "e2e.py").is_file():
            return d
    if env:
        raise RuntimeError(f"SUTRA_BENCH_DIR={env!r} has no e2e.py: point it at the benchmarks/ "
                           "folder of a sutra_fast source checkout")
    raise RuntimeError("`sutra-fast bench` runs the comparisons in benchmarks/ of a sutra_fast "
                       "source checkout (a git clone), which an installed wheel does not "
                       f"include (none found beside the package or in {Path.cwd()}): run it in "
                       "the checkout, or set SUTRA_BENCH_DIR to the checkout's benchmarks/ "
                       "folder")


def _load_e2e():
    d = str(_bench_dir())
    if d not in sys.path:
        sys.path.insert(0, d)
    import e2e

    return e2e


def run(args: argparse.Namespace) -> int:
    for out, option in ((args.json_out, "--json"), (args.plot, "--plot")):
        if out:
            check_output_file(out, option)   # fail before minutes of work, not after
    if args.plot:
        _check_plot_deps()
    # HF tokenizers' Rayon pool gets the same threads as everyone else (set before it starts).
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if args.threads > 1 else "false"
    e2e = _load_e2e()
    import sutra_fast as sf

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    sf.set_num_threads(args.threads)
    cases = args.only or list(CASES)
    absent = {c: e2e.missing(c) for c in cases}
    absent = {c: m for c, m in absent.items() if m}
    for c, m in absent.items():
        print(f"sutra-fast bench: skipping {c}: missing {', '.join(m)}; {e2e.EXTRA}", file=sys.stderr)
    if len(absent) == len(cases):
        print(f"sutra-fast bench: error: no reference packages to race against; {e2e.EXTRA}",
              file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    result = {"machine": machine(), "threads": args.threads, "quick": args.quick,
              "skipped": {c: m for c, m in absent.items()}, "rows": []}
    result["read_bandwidth_gb_s"] = e2e.read_bandwidth_gb_s(32 if args.quick else 256)
    with _blas_threads(args.threads):
        result["matmul_gflops"] = e2e.matmul_gflops(256 if args.quick else 1024)
    with tempfile.TemporaryDirectory(prefix="sutra_bench_") as tmp:
        for case in cases:
            if case in absent:
                continue
            fn = getattr(e2e, f"case_{case}")
            extra = {"tmp": tmp} if case in ("rwkv", "generate") else {}
            if case == "rwkv":
                extra.update(bandwidth=result["read_bandwidth_gb_s"], gflops=result["matmul_gflops"])
            t0 = time.perf_counter()
            rows = fn(args.quick, args.threads, **extra)
            print(f"[{case}: {time.perf_counter() - t0:.1f} s]", file=sys.stderr, flush=True)
            result["rows"] += rows
    result["elapsed_s"] = time.perf_counter() - t_start
    print(table(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(result, args.plot)
    return 0


def machine() -> dict:
    import platform

    import sutra_fast as sf

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = sf.cpu_info()
    return {"cpu": model, "cores": os.cpu_count(), "isa": info["isa"],
            "python": platform.python_version(), "sutra_fast": sf.__version__}


def table(result: dict) -> str:
    """Markdown table: one row per comparison."""
    lines = [f"threads: {result['threads']}; single-core read bandwidth "
             f"{result['read_bandwidth_gb_s']:.1f} GB/s; numpy fp32 matmul "
             f"{result['matmul_gflops']:.0f} GFLOP/s; ratio = ours / theirs time "
             "(below 1: sutra_fast faster)", "",
             "| case | ours | theirs | ours | theirs | ratio | speed-up | notes |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        notes = []
        for k in ("min_cosine_vs_st", "top1_agreement_vs_fp32"):
            if k in r:
                notes.append(f"{k.replace('_', ' ')} {r[k]:.4f}")
        if "ours_gflops" in r:
            notes.append(f"~{r['ours_gflops']:.0f} of {r['flop_limit_gflops']:.0f} GFLOP/s")
        if "ours_gb_s" in r:
            notes.append(f"{r['ours_gb_s']:.1f} of {r['bandwidth_limit_gb_s']:.1f} GB/s "
                         f"(limit {r['limit_tok_s']:.0f} tok/s)")
        lines.append(f"| {r['case']} | {r['ours']} | {r['theirs']} | "
                     f"{_rate(r['ours_rate'])} {r['unit']} | {_rate(r['theirs_rate'])} {r['unit']} | "
                     f"{r['ratio']:.3f} | {1 / r['ratio']:.2f}x | {'; '.join(notes)} |")
    return "\n".join(lines)


def _blas_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n)


def _rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


def _check_plot_deps() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise RuntimeError('--plot needs matplotlib: pip install "sutra_fast[bench]"')


def plot(result: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [f"{r['case']}: {r['ours']}\nvs {r['theirs']}" for r in rows]
    speedups = [1 / r["ratio"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2), dpi=80)
    ax.barh(range(len(rows)), speedups, color=["tab:green" if s >= 1 else "tab:red" for s in speedups])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("speed-up of sutra_fast (theirs time / ours time, log scale)")
    ax.set_title(f"sutra_fast vs reference packages, {result['threads']} thread(s), one run",
                 fontsize=9)
    for i, s in enumerate(speedups):
        ax.text(s, i, f" {s:.2f}x", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
