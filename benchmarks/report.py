"""Run pytest-benchmark suites and write their tables into BENCHMARKS.md.

    python benchmarks/report.py --all           # the whole BENCHMARKS.md + plots (one command)
    python benchmarks/report.py                 # every pytest-benchmark suite listed in SUITES
    python benchmarks/report.py kernels         # one suite (or a section: overview, e2e, ...)

Each suite is rendered between ``<!-- suite:NAME -->`` and ``<!-- /suite:NAME -->``
markers, so suites can be regenerated one at a time. Ratios are measured in one
run on one machine: the ratio column is that contender's median time / sutra_fast's.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "BENCHMARKS.md"
SUITES = {"kernels": "benchmarks/bench_kernels.py",
          "wordpiece": "benchmarks/bench_wordpiece.py",
          "world_tokenizer": "benchmarks/bench_world_tokenizer.py",
          "sampler": "benchmarks/bench_sampler.py",
          "rwkv": "benchmarks/bench_rwkv.py",
          "generate": "benchmarks/bench_generate.py",
          "embed": "benchmarks/bench_embed.py",
          "server": "benchmarks/bench_server.py"}
# Sections made by commands other than pytest (see SECTIONS below), in --all order.
PLOTS = ROOT / "benchmarks" / "plots"
OURS = "sutra_fast"
# A source checkout built in place (tools/dev_build.sh) runs without installing.
if list((ROOT / "python" / "sutra_fast").glob("_core*.so")):
    sys.path.insert(0, str(ROOT / "python"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "python"), os.environ.get("PYTHONPATH")) if p)


def machine() -> str:
    from sutra_fast.cli_bench import machine as machine_info

    m = machine_info()
    return (f"{m['cpu']}, {m['cores']} cores, ISA level used: {m['isa']}, "
            f"Python {m['python']}, sutra_fast {m['sutra_fast']}")


def render(data: dict) -> str:
    """One table per benchmark group; extra_info fields other than the contender
    (e.g. time to first token) become extra columns."""
    groups = defaultdict(list)
    for b in data["benchmarks"]:
        extra = dict(b.get("extra_info", {}))
        who = extra.pop("contender", b["name"])
        groups[b["group"] or b["name"]].append((who, b["stats"]["median"], extra))
    lines = []
    for group, rows in groups.items():
        ours = next((median for who, median, _ in rows if who == OURS), None)
        keys = sorted({k for _, _, extra in rows for k in extra})
        lines += [f"**{group}**", "",
                  "| contender | median | time / sutra_fast's |" + "".join(f" {k} |" for k in keys),
                  "|---|---:|---:|" + "---:|" * len(keys)]
        for who, median, extra in sorted(rows, key=lambda r: r[1]):
            ratio = f"{median / ours:.2f}x" if ours else "n/a"
            cells = "".join(f" {extra.get(k, '')} |" for k in keys)
            lines.append(f"| {who} | {_duration(median)} | {ratio} |{cells}")
        lines.append("")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


def run_suite(name: str, path: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cmd = [sys.executable, "-m", "pytest", path, "-q", "--benchmark-enable", "--benchmark-only",
               f"--benchmark-json={out}", "-p", "no:cacheprovider"]
        subprocess.run(cmd, cwd=ROOT, check=True)
        data = json.loads(out.read_text())
    shown = f"python benchmarks/report.py {name}"
    return (f"<!-- suite:{name} -->\n"
            f"Command: `{shown}` (single thread; `SUTRA_BENCH_THREADS=2` for two).  \n"
            f"Machine: {machine()}.\n\n{render(data)}<!-- /suite:{name} -->")


def _run(cmd: list[str], **env) -> str:
    """Run a command from the repository root with python/ on the path; its stdout."""
    full_env = dict(os.environ, **env)
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True, env=full_env)
    return out.stdout


_E2E: dict = {}


def e2e_section(threads: int) -> str:
    """`sutra-fast bench` at this thread count: the ratio table and its plot."""
    PLOTS.mkdir(exist_ok=True)
    png = PLOTS / f"bench_threads{threads}.png"
    with tempfile.TemporaryDirectory() as tmp:
        js = Path(tmp) / "bench.json"
        shown = ["sutra-fast", "bench", "--threads", str(threads), "--json", "bench.json",
                 "--plot", str(png.relative_to(ROOT))]
        table = _run([sys.executable, "-m", "sutra_fast", *shown[1:4], "--json", str(js),
                      "--plot", str(png)])
        _E2E[threads] = json.loads(js.read_text())
    return (f"Command: `{' '.join(shown)}` ({_E2E[threads]['elapsed_s']:.0f} s).\n\n"
            f"{table.strip()}\n\n![speed-ups, {threads} thread(s)]({png.relative_to(ROOT)})\n")


def overview_section() -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import corpus

    run1 = _E2E.get(1)
    if run1 is None:        # this section alone: measure the limits here
        import e2e

        run1 = {"read_bandwidth_gb_s": e2e.read_bandwidth_gb_s(),
                "matmul_gflops": e2e.matmul_gflops()}
    lines = [f"Machine: {machine()}.  ",
             f"Single-core streaming read (numpy sum over 256 MB): "
             f"{run1.get('read_bandwidth_gb_s', float('nan')):.1f} GB/s; single-core numpy fp32 "
             f"matmul (1024^3): {run1.get('matmul_gflops', float('nan')):.0f} GFLOP/s "
             "(measured in the `sutra-fast bench --threads 1` run below; the limits beside the "
             "decode and prefill figures).  ",
             f"Corpus: `python benchmarks/corpus.py` ({len(corpus.texts())} texts: Debian licence "
             f"files + Python stdlib docstrings, sha256 `{corpus.digest()[:16]}`).",
             "",
             "The machine is shared (2 cores, other jobs running): absolute figures move "
             "between runs by 10-30%. Each ratio compares contenders measured side by side "
             "in one run (interleaved rounds, best kept), never across runs.",
             "",
             "Regenerate everything (this file and `benchmarks/plots/*.png`):",
             "",
             "```", "python benchmarks/report.py --all", "```",
             "",
             "which runs, in order: " + "; ".join(f"`{c}`" for c in COMMANDS) + "."]
    return "\n".join(lines) + "\n"


def embed_table_section() -> str:
    cmd = ["benchmarks/bench_embed.py", "--n", "2000", "--rounds", "2"]
    out = _run([sys.executable, *cmd])
    return (f"Command: `python {' '.join(cmd)}` (1 thread; cold start = import + load + first "
            f"sentence in a fresh process, median of 5; peak RSS = VmHWM of the first of them "
            f"after 500 sentences)."
            f"\n\n{out.strip()}\n")


def rwkv_table_section() -> str:
    cmd = ["benchmarks/bench_rwkv.py", "--shape", "0b1"]
    out = _run([sys.executable, *cmd])
    return (f"Command: `python {' '.join(cmd)}` (a fresh process per row: load time and "
            f"peak RSS belong to that row; decode GB/s against the read bandwidth above).\n\n"
            f"{out.strip()}\n")


SECTIONS = {"e2e_threads1": lambda: e2e_section(1),
            "e2e_threadsall": lambda: e2e_section(os.cpu_count() or 1),
            "overview": overview_section,
            "embed_table": embed_table_section,
            "rwkv_table": rwkv_table_section}
COMMANDS = ["sutra-fast bench --threads 1", f"sutra-fast bench --threads {os.cpu_count()}",
            "python benchmarks/bench_embed.py --n 2000 --rounds 2",
            "python benchmarks/bench_rwkv.py --shape 0b1"] + [
            f"python benchmarks/report.py {n}" for n in SUITES]


def _replace(text: str, name: str, block: str) -> str:
    block = f"<!-- suite:{name} -->\n{block}<!-- /suite:{name} -->"
    pattern = re.compile(rf"<!-- suite:{name} -->.*?<!-- /suite:{name} -->", re.S)
    return pattern.sub(lambda _: block, text) if pattern.search(text) else (
        text.rstrip() + f"\n\n## {name}\n\n{block}\n")


def main(argv: list[str]) -> int:
    if argv == ["--all"]:
        argv = list(SECTIONS) + list(SUITES)
    names = argv or list(SUITES)
    for name in names:
        # Re-read each time: a long run keeps edits made to the prose meanwhile.
        text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
        if name in SECTIONS:
            text = _replace(text, name, SECTIONS[name]())
            DOC.write_text(text)     # a long run keeps what it has measured
            continue
        if name not in SUITES:
            print(f"unknown suite {name!r}; known: {', '.join([*SECTIONS, *SUITES])}",
                  file=sys.stderr)
            return 2
        block = run_suite(name, SUITES[name])
        pattern = re.compile(rf"<!-- suite:{name} -->.*?<!-- /suite:{name} -->", re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
            text.rstrip() + f"\n\n## {name}\n\n{block}\n")
        DOC.write_text(text)
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
