"""Record the fingerprints of the graphs sutra_fast.convert writes for the current
GRAPH_VERSION / INT8_RECIPE_VERSION (python/sutra_fast/model_folder.py) in
tests/data/graph_fingerprints.json, which tests/test_graph_version.py checks.

    PYTHONPATH=python python tools/record_graph_fingerprint.py [--replace]

A version's fingerprint is recorded once: a different graph under a recorded
version is refused (bump the version: cached conversions are reused by their
name). ``--replace`` overwrites it, for a change that cannot alter any converted
model's output (e.g. a renamed tensor). Needs the test extra (onnx, safetensors).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import graph_fingerprint as gf  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replace", action="store_true",
                    help="overwrite a recorded fingerprint of the current versions")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        now = gf.current(Path(tmp))
    record = gf.load_record()
    changed = [p for p in gf.problems(now, record) if not p.startswith("no fingerprint")]
    if changed and not args.replace:
        print("\n".join(["record_graph_fingerprint: not recorded:", *changed]), file=sys.stderr)
        return 1
    for q, key in gf.keys().items():
        record.setdefault(q, {})[key] = now[q]
        print(f"{q} {key}: {now[q]['sha256']}")
    gf.RECORD.parent.mkdir(parents=True, exist_ok=True)
    gf.RECORD.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"written to {gf.RECORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
