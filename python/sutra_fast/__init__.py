"""sutra_fast: in-process compiled ML inference for the Sutra platform.

Runtime settings read at import:
    SUTRA_CPU_ISA      force the kernel instruction set: scalar | avx2 | avx512
    SUTRA_NUM_THREADS  threads for compiled calls (default: the CPUs available)
A bad value is ignored with a RuntimeWarning (the ``sutra-fast`` command exits
with a one-line error instead).
"""
from __future__ import annotations

import importlib as _importlib
import os as _os
import sys as _sys
from typing import TYPE_CHECKING as _TYPE_CHECKING

from sutra_fast._version import __version__
from sutra_fast import _core

# The public names are imported on first use (PEP 562), so `import sutra_fast`
# costs ~2 ms instead of ~50 ms and an embedding process never imports the RWKV
# or conversion modules (cold start to the first embedding counts every ms).
_LAZY = {
    "kernels": None,
    "reference": None,
    "WordPieceTokenizer": "wordpiece",
    "WorldTokenizer": "world_tokenizer",
    "PenaltyState": "sampler",
    "Rng": "sampler",
    "Sampler": "sampler",
    "Generator": "generator",
    "RwkvState": "generator",
    "GenerationResult": "generation",
    "TokenStream": "generation",
    "Embedder": "embedder",
}

if _TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ does this
    from sutra_fast import kernels, reference
    from sutra_fast.wordpiece import WordPieceTokenizer
    from sutra_fast.world_tokenizer import WorldTokenizer
    from sutra_fast.sampler import PenaltyState, Rng, Sampler
    from sutra_fast.generator import Generator, RwkvState
    from sutra_fast.generation import GenerationResult, TokenStream
    from sutra_fast.embedder import Embedder

__all__ = [
    "__version__",
    "cpu_info",
    "set_cpu_isa",
    "set_num_threads",
    "get_num_threads",
    "kernels",
    "reference",
    "WordPieceTokenizer",
    "WorldTokenizer",
    "Sampler",
    "PenaltyState",
    "Rng",
    "Generator",
    "RwkvState",
    "GenerationResult",
    "TokenStream",
    "Embedder",
]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sutra_fast' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        value = _importlib.import_module(f"sutra_fast.{name}")
    else:
        value = getattr(_importlib.import_module(f"sutra_fast.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def cpu_info() -> dict:
    """What the compiled core sees and uses: ``isa`` in use, ``best_isa``,
    ``supported_isas``, CPU ``features`` and ``num_threads``."""
    return _core.cpu_info()


def set_cpu_isa(level: str) -> None:
    """Force the kernel instruction set (``"scalar"``, ``"avx2"``, ``"avx512"``).

    Raises ValueError for an unknown name or a level this CPU cannot run.
    """
    if not isinstance(level, str):
        raise TypeError(f"level must be a str, got {type(level).__name__}")
    _core.set_cpu_isa(level)


def set_num_threads(n: int) -> None:
    """Threads used by compiled calls, the calling thread included (1 <= n <= 1024).

    If the OS cannot start that many threads (thread or memory limits), the
    pool runs with fewer, warns once on stderr and get_num_threads() says how many.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    cap = _core.MAX_NUM_THREADS
    if not 1 <= n <= cap:
        raise ValueError(f"n must be >= 1 and <= {cap} (the cap on threads for compiled "
                         f"calls, the caller included), got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads used by compiled calls."""
    return _core.get_num_threads()


def _apply_environment() -> list[str]:
    """Apply SUTRA_CPU_ISA and SUTRA_NUM_THREADS; return what was wrong with them
    (a bad value is ignored: the default stays)."""
    errors = []
    isa = _os.environ.get("SUTRA_CPU_ISA", "").strip().lower()
    if isa:
        try:
            set_cpu_isa(isa)
        except ValueError as e:
            errors.append(f"SUTRA_CPU_ISA={isa!r}: {e}")
    threads = _os.environ.get("SUTRA_NUM_THREADS", "").strip()
    if threads:
        try:
            set_num_threads(int(threads))
        except ValueError:
            errors.append(f"SUTRA_NUM_THREADS={threads!r}: expected a whole number >= 1 and "
                          f"<= {_core.MAX_NUM_THREADS}")
    return errors


def _running_the_cli() -> bool:
    """True in the ``sutra-fast`` command and ``python -m sutra_fast``, whose main()
    reports a bad variable as its one-line error instead of this module warning."""
    argv = getattr(_sys, "argv", None) or [""]
    if argv[0] == "-m":  # `python -m X`: runpy imports X's package before it runs X
        orig = getattr(_sys, "orig_argv", [])
        return "-m" in orig and orig[orig.index("-m") + 1:][:1] == ["sutra_fast"]
    return _os.path.basename(argv[0]).startswith("sutra-fast")  # the console script


# A typo in a variable must not take the host application down with an import
# error: the value is ignored with a warning here (an error in the CLI).
_environment_errors = _apply_environment()
if _environment_errors and not _running_the_cli():
    import warnings as _warnings

    for _error in _environment_errors:  # stacklevel 2: the `import sutra_fast` line
        _warnings.warn(f"{_error}; the variable is ignored", RuntimeWarning, stacklevel=2)
