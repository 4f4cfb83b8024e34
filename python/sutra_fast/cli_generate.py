"""``sutra-fast generate``: stream a completion from an RWKV checkpoint to stdout."""
from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate", help="generate text with an RWKV-7 checkpoint (streams to stdout)",
        description="Stream a completion of PROMPT (or of stdin when PROMPT is '-' or missing) "
                    "from an RWKV-7 .pth/.safetensors checkpoint. Tokens/s go to stderr.")
    p.add_argument("prompt", nargs="?", default="-", help="the prompt text ('-': read stdin)")
    p.add_argument("--model", required=True, help="RWKV-7 checkpoint (.pth or .safetensors)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "int8"], default="fp32",
                   help="weight precision (default fp32)")
    p.add_argument("--max-tokens", type=int, default=128, help="most tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.85)
    p.add_argument("--top-k", type=int, default=0, help="0 = off")
    p.add_argument("--min-p", type=float, default=0.0)
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None, help="reproducible sampling")
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--chat", action="store_true",
                   help="treat the prompt as one user turn in the RWKV World chat format")
    p.add_argument("--threads", type=int, default=None, help="compiled-core threads")
    p.set_defaults(func=run)


def _read_prompt(arg: str) -> str:
    """The prompt text: the argument, or stdin for '-'; RuntimeError (one line
    from the CLI) for a closed stdin or input that is not valid UTF-8."""
    from sutra_fast.cli_input import check_utf8, decode_utf8

    if arg != "-":
        return check_utf8(arg, "the prompt argument")
    if sys.stdin is None:
        raise RuntimeError("stdin is closed; pass the prompt as an argument")
    source = "the prompt on stdin"
    if sys.stdin.isatty():  # a bare `generate -` in a terminal would wait silently
        print("sutra-fast generate: type the prompt, then Ctrl-D", file=sys.stderr, flush=True)
    raw = getattr(sys.stdin, "buffer", None)
    text = decode_utf8(raw.read(), source) if raw is not None else sys.stdin.read()
    return check_utf8(text, source)  # a text stream put in place of sys.stdin


def run(args: argparse.Namespace) -> int:
    import sutra_fast as sf
    from sutra_fast.generation import WORLD_VOCAB_SIZE

    if sys.stdout is None:
        raise RuntimeError("stdout is closed; redirect it to a file or a pipe")
    if args.stop is not None and "" in args.stop:
        raise ValueError('--stop "" is an empty stop string; pass a non-empty one or leave --stop out')
    prompt = _read_prompt(args.prompt)
    if args.threads is not None:
        cap = sf._core.MAX_NUM_THREADS
        if not 1 <= args.threads <= cap:
            raise ValueError(f"--threads must be >= 1 and <= {cap}, got {args.threads}")
        sf.set_num_threads(args.threads)
    gen = sf.Generator.load(args.model, dtype=args.dtype)
    if gen.tokenizer is None:  # the library's advice (pass token ids) is for Python callers
        raise ValueError(f"{args.model}: the model's vocabulary (size {gen.vocab_size}) is not the "
                         f"RWKV World vocabulary ({WORLD_VOCAB_SIZE}), so text prompts cannot be "
                         "tokenised; use the Python API, where Generator.forward() and "
                         "generate() take token ids")
    options = dict(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                   top_k=args.top_k, min_p=args.min_p, presence_penalty=args.presence_penalty,
                   frequency_penalty=args.frequency_penalty, seed=args.seed, stop=args.stop)
    if args.chat:
        stream = gen.chat([{"role": "user", "content": prompt}], stream=True, **options)
    else:
        stream = gen.stream(prompt, **options)
    interrupted = False
    with stream:
        try:
            for piece in stream:
                sys.stdout.write(piece)
                sys.stdout.flush()
        except KeyboardInterrupt:  # Ctrl-C: still report what was generated (cli.main says the rest)
            interrupted = True
    sys.stdout.write("\n")
    r = stream.result
    if r is not None:
        t = r.timing
        rate = f"{t['tokens_per_s']:.1f} tok/s" if t["tokens_per_s"] else "n/a tok/s"
        finish = "interrupted" if interrupted else r.finish_reason
        print(f"[{r.usage['prompt_tokens']} prompt + {r.usage['completion_tokens']} generated "
              f"tokens; prefill {t['prefill_s'] * 1e3:.0f} ms; {rate}; finish: {finish}]",
              file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    return 0
