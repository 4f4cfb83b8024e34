"""The ``sutra-fast`` command line."""
from __future__ import annotations

import argparse
import json
import sys
import time


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    import sutra_fast as sf

    info = {"version": sf.__version__, **sf.cpu_info()}
    # A small demo of the compiled kernels against their pure-Python twins.
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((8, 32, 384), dtype=np.float32)
    mask = np.ones((8, 32), dtype=np.int64)
    mask[:, 20:] = 0
    sf.kernels.mean_pool(hidden, mask)  # warm-up: starts the thread pool
    t0 = time.perf_counter()
    fast = sf.kernels.l2_normalize(sf.kernels.mean_pool(hidden, mask))
    t1 = time.perf_counter()
    slow = sf.reference.l2_normalize(sf.reference.mean_pool(hidden, mask))
    t2 = time.perf_counter()
    info["demo"] = {
        "task": "mean_pool + l2_normalize, B=8 T=32 H=384",
        "compiled_ms": round((t1 - t0) * 1e3, 3),
        "pure_python_ms": round((t2 - t1) * 1e3, 3),
        "max_abs_diff": float(np.abs(fast - slow).max()),
    }
    json.dump(info, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sutra-fast", description="Compiled in-process inference for the Sutra platform.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show CPU/ISA/thread settings and run a small kernel demo")
    p.set_defaults(func=_cmd_info)

    from sutra_fast import cli_generate

    cli_generate.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        print(f"sutra-fast: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
