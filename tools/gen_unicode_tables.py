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
  strip_accents         : NFD (decomposition + canonical reordering), then drop category Mn
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
F_NFD = 8      # NFD decomposes it (entry in the NFD map, or Hangul by formula)
F_LOWER = 16   # lowercase changes it (entry in the lower map)
F_MN = 32      # category Mn: dropped after NFD by strip_accents
F_NONSTARTER = 64  # non-zero canonical combining class (entry in the class table)


def base_remove(c: str) -> bool:
    if c in "\t\n\r":
        return False
    return ord(c) in (0, 0xFFFD) or unicodedata.category(c) in ("Cc", "Cf", "Co")


def base_space(c: str) -> bool:
    return c in "\t\n\r" or (c.isspace() and not 0x1C <= ord(c) <= 0x1F)


def base_punct(c: str) -> bool:
    return c in ASCII_PUNCT or unicodedata.category(c).startswith("P")


def base_nfd(c: str) -> str:
    return unicodedata.normalize("NFD", c)


def base_mn(c: str) -> bool:
    return unicodedata.category(c) == "Mn"


def base_ccc(c: str) -> int:
    return unicodedata.combining(c)


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

    nfd = normalizers.NFD()  # the same NFD data as BertNormalizer's strip_accents

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
        decomposed = nfd.normalize_str(c)
        stripped = strip.normalize_str(s)[1:-1]
        # Mn (as tokenizers sees it) only matters for characters NFD leaves alone
        mn = decomposed == c and stripped == ""
        # Its combining class: does NFD move it past a mark of class 1 (or 240)?
        ccc = base_ccc(c)
        if ccc and decomposed == c:
            if ccc > 1:
                known = nfd.normalize_str("a" + c + "\u0334") == "a\u0334" + c
            else:
                known = nfd.normalize_str("a\u0345" + c) == "a" + c + "\u0345"
            ccc = ccc if known else 0
        out[cp] = (
            cl == "ab",                       # removed
            len(pieces) == 2,                 # whitespace
            len(pieces) == 3,                 # punctuation
            decomposed,
            mn,
            ccc,
            lower.normalize_str(s)[1:-1],
            stripped,
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
    nfd_map: dict[int, str] = {}
    lower_map: dict[int, str] = {}
    ccc_map: dict[int, int] = {}
    overlay = {"remove": {}, "space": {}, "punct": {}, "nfd": {}, "mn": {}, "ccc": {}, "lower": {}}
    for cp in range(MAX_CP):
        if cp in SURROGATES:
            continue
        c = chr(cp)
        values = (base_remove(c), base_space(c), base_punct(c), base_nfd(c), base_mn(c), base_ccc(c),
                  base_lower(c))
        if hf is not None:
            for key, mine, theirs in zip(overlay, values, hf[cp][:7]):
                if mine != theirs:
                    overlay[key][cp] = theirs
            values = hf[cp][:7]
        rm, sp, pu, nfd, mn, ccc, lo = values
        f = (F_REMOVE if rm else 0) | (F_SPACE if sp else 0) | (F_PUNCT if pu else 0)
        f |= (F_MN if mn else 0) | (F_NONSTARTER if ccc else 0)
        if nfd != c:
            f |= F_NFD
            if hangul_nfd(cp) != nfd:  # Hangul syllables decompose by formula in C++
                nfd_map[cp] = nfd
        if lo != c:
            f |= F_LOWER
            lower_map[cp] = lo
        if ccc:
            ccc_map[cp] = ccc
        flags[cp] = f
    if hf is not None:  # NFD + Mn must explain what strip_accents did to each character
        mn_of = lambda ch: bool(flags[ord(ch)] & F_MN)  # noqa: E731
        bad = [cp for cp in hf if "".join(d for d in hf[cp][3] if not mn_of(d)) != hf[cp][7]]
        if bad:
            sys.exit(f"inconsistent strip_accents model for {len(bad)} code points, e.g. {bad[:10]}")

    write_cpp(flags, nfd_map, lower_map, ccc_map, hf is not None)
    write_py(overlay, hf is not None)
    for key, val in overlay.items():
        print(f"overlay {key}: {len(val)} code points differ from unicodedata "
              f"{unicodedata.unidata_version}", file=sys.stderr)
    print(f"wrote {CPP_OUT} and {PY_OUT}", file=sys.stderr)


def write_cpp(flags, nfd_map, lower_map, ccc_map, overlaid) -> None:
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
    out += mapping("Nfd", nfd_map)
    out += mapping("Lower", lower_map)
    out.append("constexpr CccEntry kCombiningClass[] = {")
    rows = [f"{{0x{cp:X}, {ccc}}}" for cp, ccc in sorted(ccc_map.items())]
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
