"""Top-1 agreement and max |Δlogit| of the bf16 / int8 engines against fp32 on
the random-weight test shapes (1000 teacher-forced steps), for the README's
int8 accuracy table. Run from the repository root after tools/dev_build.sh:

    PYTHONPATH=python python tools/int8_agreement.py [--steps 1000]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import rwkv_checkpoints as rc  # noqa: E402

import sutra_fast as sf  # noqa: E402

SHAPES = [("tiny", rc.TINY, 7), ("3 heads", rc.ODD_HEADS, 7), ("mid", rc.MID, 0)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    print("| model | dtype | top-1 agreement | max |Δlogit| / max |logit| |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape, seed in SHAPES:
            path = rc.write_safetensors(Path(tmp) / "m.safetensors", rc.make_state_dict(shape, seed=seed))
            seq = [int(t) for t in np.random.default_rng(8).integers(0, shape.vocab, args.steps)]
            out = {}
            for dtype in ("fp32", "bf16", "int8"):
                gen = sf.Generator.load(path, dtype=dtype)
                state = gen.new_state()
                out[dtype] = np.array([gen.forward(t, state) for t in seq])
            base = out["fp32"]
            for dtype in ("bf16", "int8"):
                agree = (out[dtype].argmax(1) == base.argmax(1)).mean()
                rel = np.abs(out[dtype] - base).max() / max(1.0, float(np.abs(base).max()))
                print(f"| {name} | {dtype} | {100 * agree:.1f} % | {rel:.1e} |")


if __name__ == "__main__":
    main()
