"""Can an exact fp32 graph do fewer multiplications and win? One level of
Strassen's algorithm written as ONNX ops: each encoder MatMul [M, K] x [K, N]
becomes 7 MatMuls of half size instead of 8 (12.5% fewer FLOPs), the weight-side
block sums precomputed as initializers, the activation-side sums and the output
recombination as Add / Sub / Split / Concat nodes. Prints, per encoder shape
(a 512-token batch, as the token budget makes them, and one of 1024 rows), the
time of ORT's plain MatMul and of the Strassen graph, 1 thread, best of the
interleaved rounds, and the largest error relative to the output's scale.

    PYTHONPATH=python python benchmarks/probe_strassen.py [--rounds 7]

Session 9 (2026-11-27, three runs): plain MatMul ran at 102-113 GFLOP/s (87-97%
of the core's FMA peak); the Strassen graph took 0.98-1.22x the plain time (a
speed-up of 0.82-1.02x: slower on every shape but FFN-down, which was once 2%
faster and twice 1-5% slower). The extra passes over the activations and outputs
cost about what the saved eighth of the arithmetic gives back. See
BENCHMARKS.md, "Fewer multiplications".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from sutra_fast import onnx_proto as op  # noqa: E402

# (M, K, N): FFN up, FFN down, Q/K/V fused, attention output; then FFN up at 1024 rows
SHAPES = [(512, 384, 1536), (512, 1536, 384), (512, 384, 1152), (512, 384, 384),
          (1024, 384, 1536)]


def _model(nodes, inits, k: int, n: int) -> bytes:
    graph = op.graph("g", nodes, [op.value_info("x", op.FLOAT, ["m", k])],
                     [op.value_info("y", op.FLOAT, ["m", n])],
                     [op.tensor(name, np.ascontiguousarray(a)) for name, a in inits.items()])
    return op.model(graph, {"": 18})


def plain_model(w: np.ndarray) -> bytes:
    k, n = w.shape
    return _model([op.node("MatMul", ["x", "w"], ["y"])], {"w": w}, k, n)


def strassen_model(w: np.ndarray) -> bytes:
    """y = x w with one Strassen level (M and K, N must be even)."""
    k, n = w.shape
    b11, b12 = w[:k // 2, :n // 2], w[:k // 2, n // 2:]
    b21, b22 = w[k // 2:, :n // 2], w[k // 2:, n // 2:]
    inits = {"s1": b11 + b22, "s2": b11, "s3": b12 - b22, "s4": b21 - b11,
             "s5": b22, "s6": b11 + b12, "s7": b21 + b22}
    halves = {"num_outputs": 2}
    nodes = [op.node("Split", ["x"], ["top", "bottom"], axis=0, **halves),
             op.node("Split", ["top"], ["a11", "a12"], axis=1, **halves),
             op.node("Split", ["bottom"], ["a21", "a22"], axis=1, **halves),
             op.node("Add", ["a11", "a22"], ["l1"]), op.node("Add", ["a21", "a22"], ["l2"]),
             op.node("Add", ["a11", "a12"], ["l5"]), op.node("Sub", ["a21", "a11"], ["l6"]),
             op.node("Sub", ["a12", "a22"], ["l7"])]
    left = {1: "l1", 2: "l2", 3: "a11", 4: "a22", 5: "l5", 6: "l6", 7: "l7"}
    nodes += [op.node("MatMul", [left[i], f"s{i}"], [f"m{i}"]) for i in range(1, 8)]
    nodes += [op.node("Add", ["m1", "m4"], ["t1"]), op.node("Sub", ["m7", "m5"], ["t2"]),
              op.node("Add", ["t1", "t2"], ["c11"]), op.node("Add", ["m3", "m5"], ["c12"]),
              op.node("Add", ["m2", "m4"], ["c21"]), op.node("Sub", ["m1", "m2"], ["t3"]),
              op.node("Add", ["m3", "m6"], ["t4"]), op.node("Add", ["t3", "t4"], ["c22"]),
              op.node("Concat", ["c11", "c12"], ["y1"], axis=1),
              op.node("Concat", ["c21", "c22"], ["y2"], axis=1),
              op.node("Concat", ["y1", "y2"], ["y"], axis=0)]
    return _model(nodes, inits, k, n)


def _session(model: bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=20, help="runs timed per round")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| M x K x N | plain MatMul ms | GFLOP/s | Strassen graph ms | plain / Strassen time "
          "| max rel. error |\n|---|---:|---:|---:|---:|---:|")
    for m, k, n in SHAPES:
        w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
        x = rng.standard_normal((m, k)).astype(np.float32)
        sessions = [_session(plain_model(w)), _session(strassen_model(w))]
        outs = [s.run(None, {"x": x})[0] for s in sessions]
        err = float(np.abs(outs[0] - outs[1]).max() / np.abs(outs[0]).max())
        best = [float("inf")] * 2
        for _ in range(args.rounds):   # interleaved: both see the same machine load
            for i, s in enumerate(sessions):
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    s.run(None, {"x": x})
                best[i] = min(best[i], (time.perf_counter() - t0) / args.repeats)
        print(f"| {m} x {k} x {n} | {best[0] * 1e3:.3f} | {2 * m * k * n / best[0] / 1e9:.0f} "
              f"| {best[1] * 1e3:.3f} | {best[0] / best[1]:.3f} | {err:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
