"""The ``sutra-fast`` command line."""
from __future__ import annotations

import argparse
import json
import os
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


def _cmd_convert(args: argparse.Namespace) -> int:
    from sutra_fast.convert import convert

    t0 = time.perf_counter()
    dst = convert(args.src, args.dst, quantize=args.quantize, model_id=args.model_id,
                  form=args.form, overwrite=args.overwrite)
    manifest = json.loads((dst / "sutra_manifest.json").read_text(encoding="utf-8"))
    manifest["seconds"] = round(time.perf_counter() - t0, 3)
    manifest["output"] = str(dst)
    json.dump(manifest, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from sutra_fast.embedder import Embedder

    texts = list(args.texts)
    if not texts:  # one text per line, blank ones too: row i is always line i
        texts = [line.rstrip("\r\n") for line in sys.stdin]
    emb = Embedder.load(args.model, quantize=args.quantize, threads=args.threads)
    vecs = emb.embed(texts, batch_size=args.batch_size, dimensions=args.dimensions,
                     normalize=not args.no_normalize, show_progress=args.progress)
    if args.output and args.output != "-" and args.output.lower().endswith(".npy"):
        with open(args.output, "wb") as f:  # a path would get ".npy" appended to "x.NPY"
            np.save(f, vecs)
        print(f"wrote {vecs.shape[0]} x {vecs.shape[1]} float32 to {args.output}", file=sys.stderr)
        return 0
    out = sys.stdout if not args.output or args.output == "-" else open(args.output, "w", encoding="utf-8")
    try:
        for text, v in zip(texts, vecs):
            out.write(json.dumps({"text": text, "embedding": [float(x) for x in v]}) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sutra-fast", description="Compiled in-process inference for the Sutra platform.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="show CPU/ISA/thread settings and run a small kernel demo")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("convert", help="convert a HF BERT-family folder (safetensors) to ONNX",
                       description="Convert a Hugging Face / sentence-transformers BERT-family "
                                   "folder (config.json, model.safetensors, tokenizer files) into "
                                   "a folder with model.onnx, the tokenizer and pooling config. "
                                   "No torch needed.")
    p.add_argument("src", help="source folder (config.json + model.safetensors + tokenizer.json)")
    p.add_argument("dst", help="output folder (must not exist unless --overwrite)")
    p.add_argument("--quantize", choices=["int8"], default=None, help="write the int8 graph")
    p.add_argument("--model-id", default=None, help="model id to record (default: folder name)")
    p.add_argument("--form", choices=["plain", "plain_qkv", "fused"], default="plain",
                   help="graph form (default plain, the fastest measured)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser("embed", help="embed texts (arguments, or lines on stdin)",
                       description="Embed texts given as arguments, or one per line on stdin "
                                   "(every line, blank ones included: row i is line i). "
                                   "Writes JSON lines {text, embedding} to stdout or --output; "
                                   "an --output ending in .npy gets a float32 [n, d] array.")
    p.add_argument("texts", nargs="*", help="texts to embed (default: read lines from stdin)")
    p.add_argument("--model", default=None,
                   help="model folder (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--output", "-o", default=None, help="output file: .npy or JSON lines")
    p.add_argument("--dimensions", type=int, default=None, help="Matryoshka: keep this many dims")
    p.add_argument("--batch-size", type=int, default=32, help="texts per ONNX Runtime call")
    p.add_argument("--quantize", choices=["int8"], default=None, help="use the int8 model")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads")
    p.add_argument("--no-normalize", action="store_true", help="do not L2-normalise")
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.set_defaults(func=_cmd_embed)

    from sutra_fast import cli_bench, cli_generate, cli_serve

    cli_generate.add_parser(sub)
    cli_serve.add_parser(sub)
    cli_bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # e.g. `... | head -1`: the reader left, nothing to report
        # Point stdout at /dev/null so the interpreter's final flush is quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell tool killed by the pipe reports
    except (ValueError, TypeError, OSError, RuntimeError) as e:  # OSError: files, dirs, perms
        print(f"sutra-fast: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
