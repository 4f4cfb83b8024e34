#!/usr/bin/env python
"""Generate the Unicode tables of the compiled BERT normaliser / pre-tokenizer.

Writes
  src/core/text/unicode_tables.inc          (C++: two-stage flag table + mappings)
  python/sutra_fast/reference/_bert_unicode_overlay.py   (for the pure-Python twin)

Base data: Python's ``unicodedata`` (the Unicode version of the interpreter
running this script), with the rules of BERT's normaliser as HF ``tokenizers``
implements them:

  removed by clean_text : NUL, U+FFFD, and categories Cc / Cf / Co except \\t \\n \\r
  whitespace            : the White_Space property (= str.isspace() minus U+001C..U+001F)
  punctuation           : ASCII punctuation (!"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~) or category P*
  strip_accents         : NFD, then drop category Mn
  lowercase             : per-character full lowercase mapping (no final-sigma rule)

Overlay (default on): the Rust crates inside ``tokenizers`` use *other* Unicode
versions than Python does (an older one for categories and NFD, a newer one for
lowercase), so a few hundred code points behave differently there. To be
id-identical with ``tokenizers`` the script probes the installed ``tokenizers``
package on every code point (a few seconds) and records where its behaviour
differs from the unicodedata-derived rules; those differences are written as
explicit, listed exceptions (``--no-overlay`` writes pure unicodedata tables).
The script prints how many exceptions each property got.

Run:  python tools/gen_unicode_tables.py
"""
from __future__ import annotations

import argparse
import os
import sys
import unicodedata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPP_OUT = os.path.join(ROOT, "src", "core", "text", "unicode_tables.inc")
PY_OUT = os.path.join(ROOT, "python", "sutra_fast", "reference", "_bert_unicode_overlay.py")

ASCII_PUNCT = set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
MAX_CP = 0x110000
SURROGATES = range(0xD800, 0xE000)

# flag bits (keep in sync with unicode.h)
F_REMOVE = 1   # dropped by clean_text
F_SPACE = 2    # White_Space
F_PUNCT = 4    # BERT punctuation
F_STRIP = 8    # strip_accents changes it (entry in the strip map)
F_LOWER = 16   # lowercase changes it (entry in the lower map)
F_REORDER = 32  # survives strip_accents with a non-zero canonical combining class


def base_remove(c: str) -> bool:
    if c in "\t\n\r":
        return False
    return ord(c) in (0, 0xFFFD) or unicodedata.category(c) in ("Cc", "Cf", "Co")


def base_space(c: str) -> bool:
    return c in "\t\n\r" or (c.isspace() and not 0x1C <= ord(c) <= 0x1F)


def base_punct(c: str) -> bool:
    return c in ASCII_PUNCT or unicodedata.category(c).startswith("P")


def base_strip(c: str) -> str:
    return "".join(x for x in unicodedata.normalize("NFD", c) if unicodedata.category(x) != "Mn")


def base_lower(c: str) -> str:
    return c.lower() if c != "\u03a3" else "\u03c3"  # str.lower() applies final sigma in context only


def hangul_nfd(cp: int) -> str | None:
    s = cp - 0xAC00
    if not 0 <= s < 11172:
        return None
    lead, vowel, trail = 0x1100 + s // 588, 0x1161 + (s % 588) // 28, 0x11A7 + s % 28
    return chr(lead) + chr(vowel) + (chr(trail) if trail != 0x11A7 else "")


def probe_hf():
    """Behaviour of the installed HF tokenizers on every code point."""
    from tokenizers import normalizers, pre_tokenizers

    def norm(**kw):
        opts = dict(clean_text=False, handle_chinese_chars=False, strip_accents=False,
                    lowercase=False)
        opts.update(kw)
        return normalizers.BertNormalizer(**opts)

    clean, strip, lower = norm(clean_text=True), norm(strip_accents=True), norm(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    out = {}
    for cp in range(MAX_CP):
        if cp in SURROGATES:
            continue
        c = chr(cp)
        s = "a" + c + "b"
        cl = clean.normalize_str(s)
        pieces = [w for w, _ in pre.pre_tokenize_str(s)]
        out[cp] = (
            cl == "ab",                       # removed
            len(pieces) == 2,                 # whitespace
            len(pieces) == 3,                 # punctuation
            strip.normalize_str(s)[1:-1],
            lower.normalize_str(s)[1:-1],
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-overlay", action="store_true",
                    help="pure unicodedata tables (not id-identical to tokenizers)")
    args = ap.parse_args()

    hf = None
    if not args.no_overlay:
        import tokenizers
        print(f"probing tokenizers {tokenizers.__version__} on every code point ...", file=sys.stderr)
        hf = probe_hf()

    flags = bytearray(MAX_CP)
    strip_map: dict[int, str] = {}
    lower_map: dict[int, str] = {}
    reorder: dict[int, int] = {}
    overlay = {"remove": {}, "space": {}, "punct": {}, "strip": {}, "lower": {}}
    for cp in range(MAX_CP):
        if cp in SURROGATES:
            continue
        c = chr(cp)
        rm, sp, pu, st, lo = base_remove(c), base_space(c), base_punct(c), base_strip(c), base_lower(c)
        if hf is not None:
            h = hf[cp]
            # whitespace that clean_text turns into ' ' is not "removed"
            for key, mine, theirs in (("remove", rm, h[0]), ("space", sp, h[1]), ("punct", pu, h[2]),
                                      ("strip", st, h[3]), ("lower", lo, h[4])):
                if mine != theirs:
                    overlay[key][cp] = theirs
            rm, sp, pu, st, lo = h
        f = (F_REMOVE if rm else 0) | (F_SPACE if sp else 0) | (F_PUNCT if pu else 0)
        if st != c:
            f |= F_STRIP
            if hangul_nfd(cp) != st:  # Hangul syllables decompose by formula in C++
                strip_map[cp] = st
        if lo != c:
            f |= F_LOWER
            lower_map[cp] = lo
        ccc = unicodedata.combining(c)
        if ccc and st == c:
            f |= F_REORDER
            reorder[cp] = ccc
        flags[cp] = f

    write_cpp(flags, strip_map, lower_map, reorder, hf is not None)
    write_py(overlay, hf is not None)
    for key, val in overlay.items():
        print(f"overlay {key}: {len(val)} code points differ from unicodedata "
              f"{unicodedata.unidata_version}", file=sys.stderr)
    print(f"wrote {CPP_OUT} and {PY_OUT}", file=sys.stderr)


def write_cpp(flags, strip_map, lower_map, reorder, overlaid) -> None:
    blocks: dict[bytes, int] = {}
    stage1 = []
    stage2 = []
    for b in range(MAX_CP // 256):
        blk = bytes(flags[b * 256:(b + 1) * 256])
        if blk not in blocks:
            blocks[blk] = len(blocks)
            stage2.append(blk)
        stage1.append(blocks[blk])

    def mapping(name, m):
        pool = []
        rows = []
        for cp in sorted(m):
            s = [ord(x) for x in m[cp]]
            rows.append(f"{{0x{cp:X}, {len(pool)}, {len(s)}}}")
            pool.extend(s)
        lines = [f"constexpr MapEntry k{name}Map[] = {{"]
        lines += ["  " + ", ".join(rows[i:i + 6]) + "," for i in range(0, len(rows), 6)]
        lines.append("};")
        lines.append(f"constexpr char32_t k{name}Pool[] = {{")
        lines += ["  " + ", ".join(f"0x{x:X}" for x in pool[i:i + 12]) + "," for i in range(0, len(pool), 12)]
        if not pool:
            lines.append("  0")
        lines.append("};")
        return lines

    out = [
        "// GENERATED by tools/gen_unicode_tables.py -- do not edit.",
        f"// Base: Python unicodedata {unicodedata.unidata_version}"
        + ("; overlaid with the behaviour of HF tokenizers (see the script)." if overlaid else "."),
        "// Included by unicode.cpp only.",
        "",
        f"constexpr uint16_t kStage1[{len(stage1)}] = {{",
    ]
    out += ["  " + ", ".join(str(x) for x in stage1[i:i + 24]) + "," for i in range(0, len(stage1), 24)]
    out.append("};")
    out.append(f"constexpr uint8_t kStage2[{len(stage2)}][256] = {{")
    for blk in stage2:
        out.append("  {")
        out += ["    " + ", ".join(str(x) for x in blk[i:i + 32]) + "," for i in range(0, 256, 32)]
        out.append("  },")
    out.append("};")
    out += mapping("Strip", strip_map)
    out += mapping("Lower", lower_map)
    out.append("constexpr CccEntry kReorderClass[] = {")
    rows = [f"{{0x{cp:X}, {ccc}}}" for cp, ccc in sorted(reorder.items())]
    out += ["  " + ", ".join(rows[i:i + 8]) + "," for i in range(0, len(rows), 8)]
    out.append("};")
    with open(CPP_OUT, "w") as f:
        f.write("\n".join(out) + "\n")


def write_py(overlay, overlaid) -> None:
    out = [
        '"""GENERATED by tools/gen_unicode_tables.py -- do not edit.',
        "",
        "Where HF tokenizers' Unicode data (other Unicode versions) differs from",
        f"Python's unicodedata {unicodedata.unidata_version}: code point -> tokenizers' value.",
        '"""',
        f"UNIDATA_VERSION = {unicodedata.unidata_version!r}",
        f"OVERLAID = {overlaid!r}",
    ]
    for key, val in overlay.items():
        out.append(f"{key.upper()} = {{")
        items = [f"0x{cp:X}: {v!r}" for cp, v in sorted(val.items())]
        out += ["    " + ", ".join(items[i:i + 4]) + "," for i in range(0, len(items), 4)]
        out.append("}")
    with open(PY_OUT, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
