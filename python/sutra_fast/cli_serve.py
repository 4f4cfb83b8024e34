"""``sutra-fast serve``: the HTTP server (embeddings + generation), see README.md, section
"HTTP server: `sutra-fast serve`"."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from sutra_fast.server.config import add_arguments

    p = sub.add_parser(
        "serve", help="serve embeddings and generation over HTTP (OpenAI-compatible + Sutra routes)",
        description="Serve POST /v1/embeddings, /embed, /v1/completions, /v1/chat/completions, "
                    "/generate and GET /health, /info, /v1/models, /metrics. Every flag can also "
                    "be set by the environment variable named in its help (flag wins).")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as e:
        raise RuntimeError(f"the server needs the 'server' extra: pip install 'sutra_fast[server]' ({e})") from None
    from sutra_fast.server.config import from_args
    from sutra_fast.server.run import serve

    return serve(from_args(args))
