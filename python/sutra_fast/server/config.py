"""Server settings: every command-line flag also reads an environment variable.

Precedence: flag > ``SUTRA_*`` variable > default. :data:`OPTIONS` is the one
table both argparse and the docs are built from.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, fields
from typing import Optional

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (1/0, true/false), got {value!r}")


def _opt_str(value: str) -> Optional[str]:
    return value or None


# (field, flag, type, default, help). The env var is SUTRA_<FIELD upper>.
OPTIONS = [
    ("host", "--host", str, "127.0.0.1",
     "address to listen on (one; 0.0.0.0 = all IPv4, :: = all IPv6 only)"),
    ("port", "--port", int, 8000, "TCP port (0 = any free port)"),
    ("embed_model", "--embed-model", _opt_str, None,
     "embedding model folder (default: the embedded all-MiniLM-L6-v2)"),
    ("embed_quantize", "--embed-quantize", _opt_str, None, "'int8' for the int8 embedding graph"),
    ("embed_threads", "--embed-threads", int, None, "ONNX Runtime threads (default: ORT's choice)"),
    ("embeddings", "--embeddings", _bool, True, "serve the embedding routes (0 to turn them off)"),
    ("rwkv_model", "--rwkv-model", _opt_str, None,
     "RWKV-7 checkpoint (.pth/.safetensors); without it generation routes answer 503"),
    ("rwkv_dtype", "--rwkv-dtype", str, "fp32", "RWKV weight precision: fp32, bf16 or int8"),
    ("rwkv_model_id", "--rwkv-model-id", _opt_str, None,
     "model id reported for the RWKV model (default: the checkpoint file name)"),
    ("rwkv_prompt_cache", "--rwkv-prompt-cache", int, 8,
     "states after the last N prompts kept, so a prompt that extends one (a chat grown by a "
     "turn) only feeds its new tokens (0 = off)"),
    ("threads", "--threads", int, None, "compiled-core threads (tokenizers, RWKV)"),
    ("api_key", "--api-key", _opt_str, None,
     "require this key (Authorization: Bearer KEY or X-API-Key: KEY); /health stays open"),
    ("max_body_bytes", "--max-body-bytes", int, 8 * 1024 * 1024, "largest request body (413 above)"),
    ("max_texts", "--max-texts", int, 2048, "most texts per embedding request (413 above)"),
    ("max_input_tokens", "--max-input-tokens", int, None,
     "with --auto-truncate 0: most tokens per text, 413 above (default and cap: the "
     "model's max length)"),
    ("auto_truncate", "--auto-truncate", _bool, True,
     "cut texts longer than the model's max length, as the library does (0: reject texts "
     "over --max-input-tokens with 413)"),
    ("micro_batching", "--micro-batching", _bool, True,
     "batch concurrent embedding requests together (0: one model call per request)"),
    ("batch_wait_ms", "--batch-wait-ms", float, 2.0,
     "how long the batcher waits for more requests after the first"),
    ("batch_max_texts", "--batch-max-texts", int, 64, "most texts per micro-batch"),
    ("batch_max_tokens", "--batch-max-tokens", int, 16384, "most tokens per micro-batch"),
    ("max_queue", "--max-queue", int, 4096, "most texts waiting to be embedded (429 above)"),
    ("embed_cache_size", "--embed-cache-size", int, 10000,
     "per-text LRU cache entries (0 = off)"),
    ("max_concurrent_generations", "--max-concurrent-generations", int, 2,
     "generations running at once (429 above)"),
    ("default_max_tokens", "--default-max-tokens", int, None,
     "max_tokens when a generation request gives none (default: 256, or --max-tokens-limit "
     "when lower)"),
    ("max_tokens_limit", "--max-tokens-limit", int, 4096, "largest max_tokens accepted (422 above)"),
    ("max_prompt_tokens", "--max-prompt-tokens", int, 16384, "longest prompt in tokens (413 above)"),
    ("retry_after", "--retry-after", int, 1, "Retry-After seconds sent with 429/503"),
    ("shutdown_timeout", "--shutdown-timeout", float, 30.0,
     "seconds in-flight requests get on SIGTERM/SIGINT/SIGHUP; generations still running then "
     "are cancelled"),
    ("log_level", "--log-level", str, "info", "debug, info, warning or error"),
    ("access_log", "--access-log", _bool, False,
     "log one line per request (method, path, status, bytes, ms, client address, request "
     "id) on the sutra_fast.access logger"),
    ("exit_on_load_error", "--exit-on-load-error", _bool, False,
     "a model that fails to load shuts the server down with exit status 1 (0: keep running, "
     "/health answers 503 unhealthy)"),
]


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    embed_model: Optional[str] = None
    embed_quantize: Optional[str] = None
    embed_threads: Optional[int] = None
    embeddings: bool = True
    rwkv_model: Optional[str] = None
    rwkv_dtype: str = "fp32"
    rwkv_model_id: Optional[str] = None
    rwkv_prompt_cache: int = 8
    threads: Optional[int] = None
    api_key: Optional[str] = None
    max_body_bytes: int = 8 * 1024 * 1024
    max_texts: int = 2048
    max_input_tokens: Optional[int] = None
    auto_truncate: bool = True
    micro_batching: bool = True
    batch_wait_ms: float = 2.0
    batch_max_texts: int = 64
    batch_max_tokens: int = 16384
    max_queue: int = 4096
    embed_cache_size: int = 10000
    max_concurrent_generations: int = 2
    default_max_tokens: Optional[int] = None  # None: 256, or max_tokens_limit when lower
    max_tokens_limit: int = 4096
    max_prompt_tokens: int = 16384
    retry_after: int = 1
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    exit_on_load_error: bool = False

    def __post_init__(self):
        # A key written with echo ends in "\n" and clients' headers are stripped:
        # strip it too, else every request is a 401. Blank = no auth (logged at startup).
        if self.api_key is not None:
            self.api_key = self.api_key.strip() or None
        if self.default_max_tokens is None:
            self.default_max_tokens = min(256, self.max_tokens_limit)
        # choices are case-insensitive, like --log-level (FP32, INT8 from an env file)
        if isinstance(self.rwkv_dtype, str):
            self.rwkv_dtype = self.rwkv_dtype.strip().lower()
        if isinstance(self.embed_quantize, str):
            self.embed_quantize = self.embed_quantize.strip().lower() or None

    def check(self) -> "ServerConfig":
        """Raise ValueError naming the first setting out of range by its flag and env var."""
        from sutra_fast import _core
        from sutra_fast.embedder import MAX_THREADS as MAX_EMBED_THREADS

        def bad(field: str, rule: str):
            return ValueError(f"{_FLAGS[field]} (env {env_name(field)}) {rule}, "
                              f"got {getattr(self, field)!r}")

        ranges = {"port": (0, 65535), "threads": (1, _core.MAX_NUM_THREADS),
                  "embed_threads": (1, MAX_EMBED_THREADS)}
        for name in ("max_body_bytes", "max_texts", "batch_max_texts", "batch_max_tokens",
                     "max_queue", "max_concurrent_generations", "max_tokens_limit",
                     "max_prompt_tokens"):
            ranges[name] = (1, None)
        for name in ("embed_cache_size", "rwkv_prompt_cache", "retry_after",
                     "default_max_tokens", "batch_wait_ms", "shutdown_timeout"):
            ranges[name] = (0, None)
        for name, (lo, hi) in ranges.items():
            value = getattr(self, name)
            if value is None and name in ("threads", "embed_threads"):
                continue  # unset: the library's choice
            finite = not isinstance(value, float) or math.isfinite(value)
            if not (finite and value >= lo and (hi is None or value <= hi)):
                kind = "a finite number " if isinstance(value, float) else ""
                raise bad(name, f"must be {kind}from {lo} to {hi}" if hi is not None
                          else f"must be {kind}>= {lo}")
        if self.default_max_tokens > self.max_tokens_limit:
            raise bad("default_max_tokens", f"must be <= --max-tokens-limit "
                                            f"({self.max_tokens_limit}): lower it or raise "
                                            f"the limit")
        if self.max_input_tokens is not None and self.max_input_tokens < 2:
            raise bad("max_input_tokens", "must be >= 2 (room for [CLS] and [SEP])")
        if self.rwkv_dtype not in ("fp32", "bf16", "int8"):
            raise bad("rwkv_dtype", "must be fp32, bf16 or int8")
        if self.embed_quantize not in (None, "int8"):
            raise bad("embed_quantize", "must be unset or int8")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise bad("log_level", "must be debug, info, warning or error")
        return self


_FLAGS = {field: flag for field, flag, *_ in OPTIONS}
_METAVAR = {_bool: "BOOL", int: "N", float: "X", str: "VALUE", _opt_str: "VALUE"}


def env_name(field: str) -> str:
    return "SUTRA_" + field.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per option; its default comes from the environment when set."""
    for field, flag, typ, default, help_text in OPTIONS:
        env = env_name(field)
        parser.add_argument(flag, dest=field, type=typ, default=None,
                            metavar=_METAVAR.get(typ, "VALUE"),
                            help=f"{help_text} [env {env}; default {default}]")


def from_args(args: argparse.Namespace, environ=None) -> ServerConfig:
    """Flags over environment over defaults. Raises ValueError for a bad env value."""
    environ = os.environ if environ is None else environ
    values = {}
    for field, flag, typ, default, _help in OPTIONS:
        value = getattr(args, field, None)
        raw = environ.get(env_name(field), "")
        # An empty variable (FOO= in a compose file or shell) counts as unset, so it
        # never silently turns a boolean off or makes a number an error.
        if value is None and raw.strip():
            try:
                value = typ(raw)
            except (ValueError, argparse.ArgumentTypeError) as e:
                raise ValueError(f"{env_name(field)}={raw!r} (the variable of {flag}): "
                                 f"{e}") from None
        values[field] = default if value is None else value
    known = {f.name for f in fields(ServerConfig)}
    return ServerConfig(**{k: v for k, v in values.items() if k in known}).check()
