"""RWKV-7 decode / prefill / load: sutra_fast (fp32, bf16, int8) vs the `rwkv`
package (cpu fp32 / bf16, the reference users would otherwise run) vs the numpy twin.

Random-weight checkpoint with the real 0.1B World layout (12 x 768, vocab 65536),
made on the fly; under ``--benchmark-disable`` (or SUTRA_BENCH_QUICK) a tiny shape.
One thread for every contender (benchmarks/conftest.py; SUTRA_BENCH_THREADS=2 for two).

    python benchmarks/report.py rwkv                        # table into BENCHMARKS.md
    python -m pytest benchmarks/bench_rwkv.py --benchmark-enable --benchmark-only
    python benchmarks/bench_rwkv.py [--shape 0b1|0b4|mid|tiny]   # tok/s, GB/s, load, RSS;
                                                                # 1 and 2 threads, a process per row

SUTRA_BENCH_RWKV_SHAPE=tiny|mid|0b1|0b4 picks the shape of the pytest run.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("RWKV_V7_ON", "1")  # before any import of rwkv.model

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rwkv_checkpoints as rc  # noqa: E402

SHAPES = {"tiny": rc.TINY, "mid": rc.MID, "0b1": rc.WORLD_0B1, "0b4": rc.WORLD_0B4}
PREFILL = 512
PACKAGE = "rwkv 0.8.32"

# The package scripts functions with torch.jit, which torch flags as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script:DeprecationWarning")


@pytest.fixture(scope="module")
def shape_and_path(quick, tmp_path_factory):
    name = "tiny" if quick else os.environ.get("SUTRA_BENCH_RWKV_SHAPE", "0b1")
    path = rc.make_checkpoint(tmp_path_factory.mktemp("bench_rwkv"), SHAPES[name], seed=0, fmt="pth")
    return name, SHAPES[name], path


def _tokens(vocab, n, seed=0):
    return [int(t) for t in np.random.default_rng(seed).integers(0, vocab, n)]


def _prefill_len(shape):
    return PREFILL if shape.n_embd >= 512 else 64


# ------------------------------------------------------------------ contenders

def _sutra(path, dtype):
    import sutra_fast as sf

    gen = sf.Generator.load(path, dtype=dtype)
    state = gen.new_state()
    return (lambda toks: gen.forward(toks, state)), gen


def _package(path, dtype, threads=None):
    import torch

    import sutra_fast as sf

    torch.set_num_threads(threads or sf.get_num_threads())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit.script", DeprecationWarning)
        from rwkv.model import RWKV

    model = RWKV(model=str(path)[:-4], strategy=f"cpu {dtype}")
    box = [None]

    def step(toks):
        out, box[0] = model.forward(list(toks), box[0])
        return out

    return step, model


def _twin(path):
    from sutra_fast.reference.rwkv7 import Rwkv7Reference
    from sutra_fast.rwkv_loader import read_checkpoint, to_float32

    ck = read_checkpoint(path)
    ref = Rwkv7Reference({k: to_float32(t) for k, t in ck.tensors.items()})
    st = ref.new_state()
    return (lambda toks: ref.forward(toks, st)), ref


# (our dtype, contender, contender's dtype): the package has no int8 for RWKV-7,
# so int8 races the package's fp32 (what a user would otherwise run).
CASES = [("fp32", "sutra_fast", "fp32"), ("fp32", PACKAGE, "fp32"), ("fp32", "numpy twin", "fp32"),
         ("bf16", "sutra_fast", "bf16"), ("bf16", PACKAGE, "bf16"),
         ("int8", "sutra_fast", "int8"), ("int8", PACKAGE, "fp32")]
IDS = [f"{d}-{c.split()[0]}" for d, c, _ in CASES]


def _label(who, dtype):
    return f"{PACKAGE} cpu {dtype}" if who == PACKAGE else who


def _make(who, path, dtype):
    if who == "sutra_fast":
        return _sutra(path, dtype)[0]
    if who == PACKAGE:
        return _package(path, dtype)[0]
    return _twin(path)[0]


@pytest.mark.parametrize("ours,who,dtype", CASES, ids=IDS)
def test_decode(benchmark, shape_and_path, ours, who, dtype):
    name, shape, path = shape_and_path
    step = _make(who, path, dtype)
    toks = iter(_tokens(shape.vocab, 100000, seed=1))
    step([next(toks)])  # warm-up (torch.jit, page faults)
    benchmark.group = f"rwkv-7 {name}: decode one token, {ours} weights"
    benchmark.extra_info["contender"] = _label(who, dtype)
    benchmark.pedantic(lambda: step([next(toks)]), rounds=20 if who != "numpy twin" else 3,
                       iterations=1)


@pytest.mark.parametrize("ours,who,dtype", [c for c in CASES if c[1] != "numpy twin"],
                         ids=[i for i, c in zip(IDS, CASES) if c[1] != "numpy twin"])
def test_prefill(benchmark, shape_and_path, ours, who, dtype):
    name, shape, path = shape_and_path
    step = _make(who, path, dtype)
    seq = _tokens(shape.vocab, _prefill_len(shape), seed=2)
    step(seq[:8])
    benchmark.group = f"rwkv-7 {name}: prefill {len(seq)} tokens, {ours} weights"
    benchmark.extra_info["contender"] = _label(who, dtype)
    benchmark.pedantic(lambda: step(seq), rounds=2, iterations=1)


@pytest.mark.parametrize("ours,who,dtype", [c for c in CASES if c[1] != "numpy twin"],
                         ids=[i for i, c in zip(IDS, CASES) if c[1] != "numpy twin"])
def test_load(benchmark, shape_and_path, ours, who, dtype):
    name, _, path = shape_and_path
    benchmark.group = f"rwkv-7 {name}: load the bf16 .pth, {ours} weights"
    benchmark.extra_info["contender"] = _label(who, dtype)
    benchmark.pedantic(lambda: _make(who, path, dtype), rounds=2, iterations=1)


# ------------------------------------------------------------------ table mode

def _measure(engine, path, dtype, threads, vocab, n_decode, n_prefill) -> dict:
    """Runs in a fresh process so that peak RSS belongs to this configuration."""
    import sutra_fast as sf

    sf.set_num_threads(threads)
    t0 = time.perf_counter()
    if engine == "sutra":
        step, gen = _sutra(path, dtype)
        decode_bytes = gen.decode_bytes
    else:
        step, _ = _package(path, dtype, threads)
        decode_bytes = None
    load = time.perf_counter() - t0
    toks = _tokens(vocab, n_decode + 1, seed=1)
    step([toks[0]])
    t0 = time.perf_counter()
    for t in toks[1:]:
        step([t])
    dt = (time.perf_counter() - t0) / n_decode
    seq = _tokens(vocab, n_prefill, seed=2)
    step(seq[:8])
    t0 = time.perf_counter()
    step(seq)
    pf = time.perf_counter() - t0
    return {"load_s": load, "decode_tok_s": 1 / dt,
            "decode_gb_s": decode_bytes / dt / 1e9 if decode_bytes else None,
            "prefill_tok_s": n_prefill / pf,
            "peak_rss_mb": _peak_rss_mb()}


def _peak_rss_mb() -> float:
    # VmHWM belongs to this process image (ru_maxrss would carry the parent's peak
    # across fork + exec).
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="0b1", choices=list(SHAPES))
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--no-package", action="store_true", help="skip the rwkv package rows")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shape = SHAPES[args.shape]
    n_prefill = _prefill_len(shape)
    if args.child:
        engine, dtype, threads, path = json.loads(args.child)
        print(json.dumps(_measure(engine, path, dtype, threads, shape.vocab, args.decode, n_prefill)))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = str(rc.make_checkpoint(tmp, shape, seed=0, fmt="pth"))
        cases = [("sutra", d, t) for d in ("fp32", "bf16", "int8") for t in (1, 2)]
        if not args.no_package:
            cases += [("rwkv", "fp32", 1), ("rwkv", "bf16", 1)]
        print(f"RWKV-7 {args.shape}: L={shape.n_layer} C={shape.n_embd} V={shape.vocab}; "
              f"decode {args.decode} tokens, prefill {n_prefill} tokens\n")
        print("| engine | weights | threads | decode tok/s | decode GB/s | prefill tok/s | load s | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|")
        for engine, dtype, threads in cases:
            out = subprocess.run([sys.executable, __file__, "--shape", args.shape, "--decode", str(args.decode),
                                  "--child", json.dumps([engine, dtype, threads, path])],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            gbs = f"{r['decode_gb_s']:.1f}" if r["decode_gb_s"] else "–"
            name = "sutra_fast" if engine == "sutra" else "rwkv 0.8.32"
            print(f"| {name} | {dtype} | {threads} | {r['decode_tok_s']:.1f} | {gbs} | "
                  f"{r['prefill_tok_s']:.0f} | {r['load_s']:.2f} | {r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
