"""Write python/sutra_fast/data/calibration_texts.txt, the int8 calibration texts.

They were read from the standard library's docstrings at conversion time until
session 7; the docstrings differ between Python builds (pyenv 3.11.7 vs Debian
3.11.2 gave int8 vectors 5e-4 apart in cosine), so the texts are now a file in
the package and this script is how it was made (run with CPython 3.11.7):

    python tools/make_calibration_texts.py
"""
from __future__ import annotations

import ast
import os
import re
import sysconfig
from pathlib import Path

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
OUT = Path(__file__).resolve().parent.parent / "python" / "sutra_fast" / "data" / "calibration_texts.txt"


def stdlib_texts(n_sentences: int = 256, n_paragraphs: int = 8) -> list[str]:
    """Real sentences plus a few long paragraphs (so late positions are seen)."""
    lib = sysconfig.get_paths().get("stdlib", "")
    sentences: dict[str, None] = {}
    try:
        packages = sorted(d for d in os.listdir(lib) if os.path.isfile(os.path.join(lib, d, "__init__.py")))
    except OSError:
        packages = []
    for pkg in packages:
        root = os.path.join(lib, pkg)
        for name in sorted(os.listdir(root)):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node) or ""
                    for s in _SPLIT.split(re.sub(r"\s+", " ", doc)):
                        if 20 <= len(s) <= 400:
                            sentences.setdefault(s.strip(), None)
            if len(sentences) >= n_sentences + 40 * n_paragraphs:
                break
        if len(sentences) >= n_sentences + 40 * n_paragraphs:
            break
    sents = list(sentences)
    if len(sents) < n_sentences:
        return []
    paragraphs = [" ".join(sents[n_sentences + 40 * i: n_sentences + 40 * (i + 1)])
                  for i in range(n_paragraphs)]
    return sents[:n_sentences] + [p for p in paragraphs if p]



if __name__ == "__main__":
    texts = stdlib_texts()
    assert texts and all("\n" not in t for t in texts)
    OUT.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    print(f"wrote {len(texts)} texts to {OUT}")
