"""sutra_fast: in-process compiled ML inference for the Sutra platform.

Runtime settings read at import:
    SUTRA_CPU_ISA      force the kernel instruction set: scalar | avx2 | avx512
    SUTRA_NUM_THREADS  threads for compiled calls (default: the CPUs available)
"""
from __future__ import annotations

import os as _os

from sutra_fast._version import __version__
from sutra_fast import _core
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
    """Threads used by compiled calls, the calling thread included (n >= 1)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads used by compiled calls."""
    return _core.get_num_threads()


def _apply_environment() -> None:
    isa = _os.environ.get("SUTRA_CPU_ISA", "").strip().lower()
    if isa:
        try:
            set_cpu_isa(isa)
        except ValueError as e:
            raise ValueError(f"SUTRA_CPU_ISA={isa!r}: {e}") from None
    threads = _os.environ.get("SUTRA_NUM_THREADS", "").strip()
    if threads:
        try:
            n = int(threads)
            set_num_threads(n)
        except ValueError:
            raise ValueError(
                f"SUTRA_NUM_THREADS={threads!r}: expected a whole number >= 1") from None


_apply_environment()
