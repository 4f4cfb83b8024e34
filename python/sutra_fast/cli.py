"""The ``sutra-fast`` command line."""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator


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


# Texts per Embedder.embed call: rows reach the output (and survive Ctrl-C) chunk by
# chunk, and Embedder.embed still sorts thousands of texts by length within a call.
_EMBED_CHUNK = 2048


def _cmd_embed(args: argparse.Namespace) -> int:
    from sutra_fast.embedder import Embedder

    texts = _argument_texts(args.texts) if args.texts else _stdin_lines()
    # The output is checked (opened) before the model loads: a bad path fails in a
    # moment, not after minutes of embedding.
    output: _NpyOutput | _JsonLinesOutput
    if args.output and args.output != "-" and args.output.lower().endswith(".npy"):
        output = _NpyOutput(args.output)  # any case: "x.NPY" is written as exactly that file
    else:
        output = _JsonLinesOutput(None if args.output in (None, "-") else args.output)
    with output:
        emb = Embedder.load(args.model, quantize=args.quantize, threads=args.threads)
        options = dict(batch_size=args.batch_size, dimensions=args.dimensions,
                       normalize=not args.no_normalize)
        done = 0
        try:
            while chunk := list(itertools.islice(texts, _EMBED_CHUNK)):
                output.write(chunk, emb.embed(chunk, **options))
                done += len(chunk)
                if args.progress:
                    print(f"\rembed: {done} texts", end="", file=sys.stderr, flush=True)
        finally:
            if args.progress and done:
                print(file=sys.stderr)  # end the counter's line, before any error message
        if not done:  # still check the options, and give an .npy its [0, d] shape
            output.write([], emb.embed([], **options))
    return 0


def _argument_texts(texts: list[str]) -> Iterator[str]:
    from sutra_fast.cli_input import check_utf8

    return iter([check_utf8(text, f"text argument {i}") for i, text in enumerate(texts, 1)])


def _stdin_lines() -> Iterator[str]:
    """stdin's lines, read as they are needed (every line, blank ones too, without
    its line break); RuntimeError for a closed stdin or a line that is not UTF-8."""
    if sys.stdin is None:
        raise RuntimeError("stdin is closed; pass the texts as arguments or one per line on stdin")
    if sys.stdin.isatty():  # a bare `sutra-fast embed` in a terminal would wait silently
        print("sutra-fast embed: reading texts from stdin, one per line; end with Ctrl-D "
              "(or pass them as arguments)", file=sys.stderr, flush=True)
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text stream put in place of sys.stdin
        return (line.rstrip("\r\n") for line in sys.stdin)

    from sutra_fast.cli_input import decode_utf8

    return (decode_utf8(line.rstrip(b"\r\n"), f"line {n} of stdin")
            for n, line in enumerate(raw, 1))


def check_output_file(path: str, option: str) -> None:
    """Fail before the work, not after it: ``path`` must be a writable file or a new
    name in an existing writable folder (ValueError naming ``option`` otherwise)."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{option} {path!r} is a folder; pass a file name")
    if not p.resolve().parent.is_dir():
        raise ValueError(f"output folder of {path!r} does not exist")
    if not os.access(p if p.exists() else p.resolve().parent, os.W_OK):
        raise ValueError(f"{option} {path!r}: no permission to write "
                         f"{'it' if p.exists() else 'in its folder'}")


class _JsonLinesOutput:
    """JSON lines {text, embedding} on stdout or into a file, flushed chunk by chunk."""

    def __init__(self, path: str | None):
        self.path, self.rows = path, 0
        if path is None:
            if sys.stdout is None:
                raise RuntimeError("stdout is closed; redirect it to a file or a pipe, or pass "
                                   "-o FILE")
            self.file, self.created = sys.stdout, False
        else:
            check_output_file(path, "--output")
            self.created = not os.path.lexists(path)
            self.file = open(path, "w", encoding="utf-8")

    def write(self, texts: list[str], vecs) -> None:
        self.file.write("".join(json.dumps({"text": t, "embedding": v.tolist()}) + "\n"
                                for t, v in zip(texts, vecs)))
        self.file.flush()
        self.rows += len(texts)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.file is sys.stdout:
            return
        self.file.close()
        if exc_type is not None and self.created and not self.rows and self.path:
            os.unlink(self.path)  # e.g. a model that failed to load: leave nothing behind


class _NpyOutput:
    """A float32 [n, d] .npy, written to a temp file beside the target and renamed
    into place at the end: an interrupted or failed run leaves no half file."""

    def __init__(self, path: str):
        check_output_file(path, "--output")
        self.path = path
        self.target = os.path.realpath(path)  # through a symlink, like open() would write
        folder, name = os.path.split(self.target)
        self.tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
        self.file = open(self.tmp, "wb")
        self.parts: list = []

    def write(self, texts: list[str], vecs) -> None:
        self.parts.append(vecs)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_) -> None:
        import numpy as np

        try:
            if exc_type is None:
                vecs = np.concatenate(self.parts)
                np.save(self.file, vecs)
                self.file.close()
                os.replace(self.tmp, self.target)
                print(f"wrote {vecs.shape[0]} x {vecs.shape[1]} float32 to {self.path}",
                      file=sys.stderr)
        finally:
            self.file.close()
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)


def build_parser() -> argparse.ArgumentParser:
    from sutra_fast._version import __version__

    parser = argparse.ArgumentParser(
        prog="sutra-fast", description="Compiled in-process inference for the Sutra platform.")
    parser.add_argument("--version", action="version", version=f"sutra-fast {__version__}")
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
    p.add_argument("--progress", action="store_true",
                   help="count the embedded texts on stderr (updated every %d texts)" % _EMBED_CHUNK)
    p.set_defaults(func=_cmd_embed)

    from sutra_fast import cli_bench, cli_generate, cli_serve

    cli_generate.add_parser(sub)
    cli_serve.add_parser(sub)
    cli_bench.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import sutra_fast

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if sutra_fast._environment_errors:  # the import ignored them (with no warning in the CLI)
        print(f"sutra-fast: error: {'; '.join(sutra_fast._environment_errors)}", file=sys.stderr)
        return 2
    try:
        code = args.func(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows up here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # e.g. `... | head -1`: the reader left, nothing to report
        _drop_stdout()
        return 141  # 128 + SIGPIPE, what a shell tool killed by the pipe reports
    except KeyboardInterrupt:  # Ctrl-C: what was flushed stays (embed streams JSON lines)
        _drop_stdout()  # the reader may be gone too (Ctrl-C stops the whole pipeline)
        print("sutra-fast: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, what a shell reports for a tool stopped by Ctrl-C
    except (ValueError, TypeError, OSError, RuntimeError) as e:  # OSError: files, dirs, perms
        print(f"sutra-fast: error: {e}", file=sys.stderr)
        return 2


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of a half-written
    buffer is quiet (no BrokenPipeError report for a reader that left)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no stdout, or not a real file
        pass


if __name__ == "__main__":
    sys.exit(main())
