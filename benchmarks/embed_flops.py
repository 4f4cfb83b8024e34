"""How much arithmetic an embedding run is, and how fast this core can do it.

Used by ``bench_embed.py`` to print, beside the throughput table, the fp32
bound: the corpus' FLOPs (BERT encoder, multiply-add = 2 FLOPs, no padding),
the single-thread SGEMM rate of ONNX Runtime's MatMul on the encoder's own
shapes measured in the same run, and so the most sentences per second any
exact fp32 pipeline could reach here; and, as the hard ceiling, the core's
fp32 FMA peak (a register-only loop of fused multiply-adds, compiled here).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

# all-MiniLM-L6-v2
LAYERS, HIDDEN, INTERMEDIATE = 6, 384, 1536


def text_flops(n_tokens: np.ndarray) -> np.ndarray:
    """Encoder FLOPs per text of ``n_tokens`` tokens: the six Linear layers
    (Q, K, V, attention output, FFN up and down) plus the two attention
    products (Q K^T and P V); the element-wise work is left out."""
    s = np.asarray(n_tokens, np.float64)
    linear = 2 * s * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTERMEDIATE)
    attention = 2 * 2 * s * s * HIDDEN
    return LAYERS * (linear + attention)


def ort_sgemm_gflops(rows: int = 512, repeats: int = 30) -> float:
    """Best single-thread GFLOP/s of ORT MatMul on [rows, 384] x [384, 1536]
    and [rows, 1536] x [1536, 384] (the FFN shapes, a 512-token batch)."""
    import onnxruntime as ort

    from sutra_fast import onnx_proto as op

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((HIDDEN, INTERMEDIATE)).astype(np.float32)
    w2 = rng.standard_normal((INTERMEDIATE, HIDDEN)).astype(np.float32)
    nodes = [op.node("MatMul", ["x", "w1"], ["h"], name="up"),
             op.node("MatMul", ["h", "w2"], ["y"], name="down")]
    graph = op.graph("ffn", nodes, [op.value_info("x", op.FLOAT, ["n", HIDDEN])],
                     [op.value_info("y", op.FLOAT, ["n", HIDDEN])],
                     [op.tensor("w1", w1), op.tensor("w2", w2 * 1e-3)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(op.model(graph, {"": 17}), so, providers=["CPUExecutionProvider"])
    x = rng.standard_normal((rows, HIDDEN)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"x": x})
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        sess.run(None, {"x": x})
        best = min(best, time.process_time() - c)
    return 2 * 2 * rows * HIDDEN * INTERMEDIATE / best / 1e9


_FMA_LOOP = r"""
#include <chrono>
#include <cstdio>
typedef float v16 __attribute__((vector_size(64)));   // zmm, or two ymm without AVX-512
int main() {
  v16 acc[12] = {}, a, b;
  for (int i = 0; i < 16; ++i) { a[i] = 1.0000001f; b[i] = 1e-7f; }
  double best = 0;
  for (int rep = 0; rep < 10; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    const long iters = 10000000;
    for (long k = 0; k < iters; ++k)
      for (int i = 0; i < 12; ++i) acc[i] = a * acc[i] + b;   // 12 independent chains
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double gflops = iters * 12.0 * 16 * 2 / s / 1e9;
    if (gflops > best) best = gflops;
  }
  float sink = 0;
  for (int i = 0; i < 12; ++i) sink += acc[i][0];
  std::printf("%f %g\n", best, sink);
}
"""


def fma_peak_gflops() -> float | None:
    """Single-thread fp32 FMA peak of this core in GFLOP/s (no memory, no
    overhead: nothing that does fp32 arithmetic can run faster), or None when
    no C++ compiler is at hand."""
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "fma.cpp", Path(tmp) / "fma"
        src.write_text(_FMA_LOOP)
        built = subprocess.run([cxx, "-O2", "-march=native", "-ffp-contract=fast", "-funroll-loops",
                                "-o", str(exe), str(src)], capture_output=True)
        if built.returncode:
            return None
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])
