"""RWKV World tokenizer, single thread: sutra_fast vs pyrwkv-tokenizer (Rust)
vs the rwkv package's TRIE_TOKENIZER vs the pure-Python twin, same text.

Run:  python -m pytest benchmarks/bench_world_tokenizer.py --benchmark-only
Each row's extra_info holds MB/s. "sutra_fast (numpy)" returns an int32 array
instead of a list: the gap between the two rows is the cost of building the
Python list of ints.
"""
import glob
import os
import sys
from pathlib import Path

import pytest

import pyrwkv_tokenizer
import rwkv
import sutra_fast as sf
from sutra_fast.reference.world_tokenizer import WorldTokenizer as Twin
from sutra_fast.world_tokenizer import DEFAULT_VOCAB

sys.path.insert(0, os.path.dirname(rwkv.__file__))
from rwkv_tokenizer import TRIE_TOKENIZER  # noqa: E402


@pytest.fixture(scope="module")
def text(quick):
    """~1 MB of mixed text: Python source, licence texts, multilingual lines."""
    read = lambda p: Path(p).read_text(encoding="utf-8", errors="replace")  # noqa: E731
    parts = [read(p) for p in sorted(glob.glob("/usr/lib/python3*/*.py"))[:40]]
    parts += [read(p) for p in sorted(glob.glob("/usr/share/common-licenses/*")) if os.path.isfile(p)][:6]
    parts.append("日本語のテキスト。中文文本。한국어. Ünïcödé — “quotes” 😀🎉 Русский. العربية.\n" * 300)
    t = "\n".join(parts)
    return t[:20_000] if quick else t[:1_000_000]


@pytest.fixture(scope="module")
def contenders():
    ours = sf.WorldTokenizer.default()
    rust = pyrwkv_tokenizer.RWKVTokenizer()
    trie = TRIE_TOKENIZER(str(DEFAULT_VOCAB))
    twin = Twin(DEFAULT_VOCAB)
    return {
        "sutra_fast": ours.encode,
        "sutra_fast (numpy)": lambda t: ours.encode(t, as_numpy=True),
        "pyrwkv-tokenizer (Rust)": rust.encode,
        "rwkv TRIE_TOKENIZER": trie.encode,
        "Python twin": twin.encode,
    }


SLOW = {"rwkv TRIE_TOKENIZER", "Python twin"}


@pytest.mark.benchmark(group="world encode (1 MB, 1 thread)")
@pytest.mark.parametrize("name", ["sutra_fast", "sutra_fast (numpy)", "pyrwkv-tokenizer (Rust)",
                                  "rwkv TRIE_TOKENIZER", "Python twin"])
def test_encode(benchmark, text, contenders, name):
    fn = contenders[name]
    benchmark.extra_info["contender"] = name
    if name in SLOW:
        out = benchmark.pedantic(fn, args=(text,), rounds=2, iterations=1)
    else:
        out = benchmark(fn, text)
    ids = out.tolist() if hasattr(out, "tolist") else out
    assert ids == contenders["sutra_fast"](text)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["MB/s"] = round(len(text.encode()) / benchmark.stats.stats.median / 1e6, 1)


@pytest.mark.benchmark(group="world decode (1 MB of ids)")
@pytest.mark.parametrize("name", ["sutra_fast", "pyrwkv-tokenizer (Rust)", "rwkv TRIE_TOKENIZER"])
def test_decode(benchmark, text, name):
    ours = sf.WorldTokenizer.default()
    ids = ours.encode(text)
    fn = {"sutra_fast": ours.decode, "pyrwkv-tokenizer (Rust)": pyrwkv_tokenizer.RWKVTokenizer().decode,
          "rwkv TRIE_TOKENIZER": TRIE_TOKENIZER(str(DEFAULT_VOCAB)).decode}[name]
    benchmark.extra_info["contender"] = name
    assert benchmark(fn, ids) == text


@pytest.mark.benchmark(group="world load vocabulary")
def test_load(benchmark):
    benchmark.extra_info["contender"] = "sutra_fast"
    tok = benchmark(sf.WorldTokenizer.from_file, DEFAULT_VOCAB)
    assert tok.vocab_size == 65530
