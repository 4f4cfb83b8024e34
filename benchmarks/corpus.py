"""The fixed real-text corpus of the benchmarks: text no one here wrote.

Built deterministically from this machine's Debian licence/copyright files and
the docstrings of Python's standard library (collected by tests/text_corpus.py,
shared with the tokenizer tests). The file is written to
``benchmarks/.corpus/corpus.txt`` (git-ignored: a few MB); its sha256 names the
exact corpus a BENCHMARKS.md run used.

    python benchmarks/corpus.py            # build (or rebuild) and print size + sha256
"""
from __future__ import annotations

import hashlib
import sys
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import text_corpus  # noqa: E402

PATH = HERE / ".corpus" / "corpus.txt"
SEP = "\n\x1e\n"   # record separator between texts (never in the sources)


@lru_cache(maxsize=1)
def texts() -> tuple[str, ...]:
    """Every text of the corpus, in a fixed order (licence paragraphs, then docstrings)."""
    return tuple(t.replace("\x1e", " ") for t in text_corpus.real_corpus())


def _lazy():
    """The same order as texts(), without reading the docstrings unless needed (quick runs)."""
    if texts.cache_info().currsize:
        yield from texts()
        return
    for t in text_corpus.licence_texts(3_000_000):
        yield t.replace("\x1e", " ")
    yield from texts()[len(text_corpus.licence_texts(3_000_000)):]


def sentences(n: int, min_chars: int = 20, max_chars: int = 400) -> list[str]:
    """The first n one-line texts of embedding size: whitespace collapsed, length-filtered."""
    out = []
    for t in _lazy():
        s = " ".join(t.split())
        if min_chars <= len(s) <= max_chars:
            out.append(s)
            if len(out) == n:
                break
    return out


def text(n_chars: int) -> str:
    """The first n_chars characters of the corpus joined with blank lines."""
    out, total = [], 0
    for t in _lazy():
        out.append(t)
        total += len(t) + 2
        if total >= n_chars:
            break
    return "\n\n".join(out)[:n_chars]


def build(path: Path = PATH) -> tuple[Path, int, str]:
    data = SEP.join(texts()).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, len(data), hashlib.sha256(data).hexdigest()


def digest() -> str:
    return hashlib.sha256(SEP.join(texts()).encode("utf-8")).hexdigest()


if __name__ == "__main__":
    p, size, sha = build()
    print(f"{p}: {len(texts())} texts, {size / 1e6:.2f} MB, sha256 {sha}")
