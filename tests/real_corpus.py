"""Real English sentences not written by us, for accuracy tests and benchmarks.

Sources present on any Debian/Ubuntu machine with Python: the licence texts in
/usr/share/common-licenses and the docstrings of the Python standard library
(read with `ast`, never imported). The order is deterministic.
"""
from __future__ import annotations

import ast
import os
import re
import sysconfig
from functools import lru_cache

_LICENSES = "/usr/share/common-licenses"
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")


def _sentences(text: str):
    text = re.sub(r"\s+", " ", text)
    for s in _SPLIT.split(text):
        s = s.strip()
        if 20 <= len(s) <= 400 and sum(c.isalpha() for c in s) > len(s) // 2:
            yield s


def _license_texts():
    if os.path.isdir(_LICENSES):
        for name in sorted(os.listdir(_LICENSES)):
            path = os.path.join(_LICENSES, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, encoding="utf-8", errors="replace") as f:
                    yield f.read()


def _stdlib_docstrings():
    lib = sysconfig.get_paths()["stdlib"]
    for name in sorted(os.listdir(lib)):
        if not name.endswith(".py"):
            continue
        try:
            with open(os.path.join(lib, name), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


@lru_cache(maxsize=None)
def real_sentences(n: int) -> tuple[str, ...]:
    """The first ``n`` distinct sentences (licences first, then stdlib docstrings)."""
    seen: dict[str, None] = {}
    for source in (_license_texts(), _stdlib_docstrings()):
        for text in source:
            for s in _sentences(text):
                seen.setdefault(s, None)
                if len(seen) >= n:
                    return tuple(seen)
    if len(seen) < n:
        raise RuntimeError(f"only {len(seen)} real sentences found, {n} wanted")
    return tuple(seen)
