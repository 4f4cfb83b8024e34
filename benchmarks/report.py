"""Run pytest-benchmark suites and write their tables into BENCHMARKS.md.

    python benchmarks/report.py                 # every suite listed in SUITES
    python benchmarks/report.py kernels         # one suite

Each suite is rendered between ``<!-- suite:NAME -->`` and ``<!-- /suite:NAME -->``
markers, so suites can be regenerated one at a time. Ratios are measured in one
run on one machine: the ratio column is that contender's median time / sutra_fast's.
"""
from __future__ import annotations

import json
import os
import platform
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
          "generate": "benchmarks/bench_generate.py"}
OURS = "sutra_fast"


def machine() -> str:
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
    return (f"{model}, {os.cpu_count()} cores, ISA level used: {info['isa']}, "
            f"Python {platform.python_version()}, sutra_fast {sf.__version__}")


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


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    for name in names:
        if name not in SUITES:
            print(f"unknown suite {name!r}; known: {', '.join(SUITES)}", file=sys.stderr)
            return 2
        block = run_suite(name, SUITES[name])
        pattern = re.compile(rf"<!-- suite:{name} -->.*?<!-- /suite:{name} -->", re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else (
            text.rstrip() + f"\n\n## {name}\n\n{block}\n")
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
