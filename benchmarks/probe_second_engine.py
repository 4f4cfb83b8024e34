"""Is the fp32 speed limit ONNX Runtime's, or the core's? Run the same converted
graph on a second engine, OpenVINO (oneDNN kernels, its own fusions), inside the
same pipeline (sutra_fast's tokenizer, token-budget batching and pooling: only
the session is swapped), and compare sent/s and min cosine with sutra_fast fp32.

OpenVINO is not a dependency of sutra_fast; install it out of the way first:

    pip install --no-deps --target /tmp/ovpkgs openvino
    PYTHONPATH=python:/tmp/ovpkgs python benchmarks/probe_second_engine.py [--n 2000] [--rounds 2]

One thread everywhere; throughput from process CPU time, rounds interleaved,
best round kept. OpenVINO's inference precision is set explicitly: "f32" is
the exact comparison; "bf16" (AVX512-BF16 units) is printed for scale only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("SUTRA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np  # noqa: E402

from real_corpus import real_sentences  # noqa: E402


class _OpenVinoSession:
    """The one method Embedder uses of an ORT session, ``run``, on OpenVINO."""

    def __init__(self, onnx_path: Path, precision: str):
        import openvino as ov

        core = ov.Core()
        self._compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
            "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision})
        self._request = self._compiled.create_infer_request()
        self._names = [i.get_any_name() for i in self._compiled.inputs]

    def run(self, _outputs, feed):
        result = self._request.infer({k: feed[k] for k in self._names}, share_inputs=True)
        return [np.array(result[self._compiled.outputs[0]])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="sentences (default 2000)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    args = ap.parse_args()
    try:
        import openvino
    except ImportError:
        sys.exit("probe_second_engine: openvino is not importable; see this script's docstring")
    import sutra_fast

    texts = list(real_sentences(args.n))
    emb = sutra_fast.Embedder.load(threads=1)
    onnx_path = emb.folder / "model.onnx"
    engines = {"onnxruntime (sutra_fast fp32)": emb._session,
               "openvino f32": _OpenVinoSession(onnx_path, "f32"),
               "openvino bf16": _OpenVinoSession(onnx_path, "bf16")}
    best = {name: float("inf") for name in engines}
    vectors = {}
    for _ in range(args.rounds):
        for name, session in engines.items():
            emb._session = session
            t = time.process_time()
            vectors[name] = emb.embed(texts)
            best[name] = min(best[name], time.process_time() - t)
    reference_name = "onnxruntime (sutra_fast fp32)"
    reference = vectors[reference_name]
    print(f"{len(texts)} sentences, 1 thread, best of {args.rounds} interleaved rounds "
          f"(openvino {openvino.__version__})")
    print("| engine | sent/s (CPU time) | min cosine vs sutra_fast fp32 |")
    print("|---|---:|---:|")
    for name in engines:
        cos = float((vectors[name] * reference).sum(axis=1).min())
        shown = "(reference)" if name == reference_name else f"{cos:.7f}"
        print(f"| {name} | {len(texts) / best[name]:.0f} | {shown} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
