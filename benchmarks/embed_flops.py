"""How much arithmetic an embedding run is, and how fast this core can do it.

Used by ``bench_embed.py`` to print, beside the throughput table, the fp32
bound: the corpus' FLOPs (BERT encoder, multiply-add = 2 FLOPs, no padding),
the single-thread SGEMM rate of ONNX Runtime's MatMul on the encoder's own
shapes measured in the same run, and so the most sentences per second any
exact fp32 pipeline could reach here.
"""
from __future__ import annotations

import time

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
