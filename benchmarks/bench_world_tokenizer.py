"""RWKV World tokenizer, single thread: sutra_fast vs pyrwkv-tokenizer (Rust)
vs the rwkv package's TRIE_TOKENIZER vs the pure-Python twin, same text.

Run:  python -m pytest benchmarks/bench_world_tokenizer.py --benchmark-only
Each row's extra_info holds MB/s. "sutra_fast (numpy)" returns an int32 array
instead of a list: the gap between the two rows is the cost of building the
Python list of ints. Every encode row must give exactly the ids of the
pure-Python twin (the twin's own row: those of pyrwkv-tokenizer); every decode
row must give back the text.
"""
import os
import sys

import pytest

import pyrwkv_tokenizer
import rwkv
import sutra_fast as sf
from sutra_fast.reference.world_tokenizer import WorldTokenizer as Twin
from sutra_fast.world_tokenizer import DEFAULT_VOCAB

sys.path.insert(0, os.path.dirname(rwkv.__file__))
from rwkv_tokenizer import TRIE_TOKENIZER  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import corpus  # noqa: E402
import text_corpus  # noqa: E402  (tests/, put on the path by corpus)


@pytest.fixture(scope="module")
def text(quick):
    """The benchmark corpus (benchmarks/corpus.py: licence texts, stdlib docstrings) plus the
    licence paragraphs with non-ASCII characters, ~1 MB (20 kB under --benchmark-disable)."""
    n = 20_000 if quick else 1_000_000
    extra = "\n\n".join(text_corpus.non_ascii_licence_texts())[: n // 10]
    return corpus.text(n - len(extra)) + "\n\n" + extra


@pytest.fixture(scope="module")
def trie():
    """The rwkv package's pure-Python trie: seconds to build, so built once."""
    return TRIE_TOKENIZER(str(DEFAULT_VOCAB))


@pytest.fixture(scope="module")
def contenders(trie):
    ours = sf.WorldTokenizer.default()
    rust = pyrwkv_tokenizer.RWKVTokenizer()
    twin = Twin(DEFAULT_VOCAB)
    return {
        "sutra_fast": ours.encode,
        "sutra_fast (numpy)": lambda t: ours.encode(t, as_numpy=True),
        "pyrwkv-tokenizer (Rust)": rust.encode,
        "rwkv TRIE_TOKENIZER": trie.encode,
        "Python twin": twin.encode,
    }


SLOW = {"rwkv TRIE_TOKENIZER", "Python twin"}


@pytest.fixture(scope="module")
def expected_ids(text):
    """Ids from implementations independent of the compiled one, computed once:
    the pure-Python twin, and the Rust package (to check the twin's own row)."""
    return {"Python twin": Twin(DEFAULT_VOCAB).encode(text),
            "pyrwkv-tokenizer (Rust)": pyrwkv_tokenizer.RWKVTokenizer().encode(text)}


@pytest.mark.benchmark(group="world encode (1 MB, 1 thread)")
@pytest.mark.parametrize("name", ["sutra_fast", "sutra_fast (numpy)", "pyrwkv-tokenizer (Rust)",
                                  "rwkv TRIE_TOKENIZER", "Python twin"])
def test_encode(benchmark, text, contenders, expected_ids, name):
    fn = contenders[name]
    benchmark.extra_info["contender"] = name
    if name in SLOW:
        out = benchmark.pedantic(fn, args=(text,), rounds=2, iterations=1)
    else:
        out = benchmark(fn, text)
    ids = out.tolist() if hasattr(out, "tolist") else out
    reference = "pyrwkv-tokenizer (Rust)" if name == "Python twin" else "Python twin"
    assert ids == expected_ids[reference], f"{name} disagrees with {reference}"
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["MB/s"] = round(len(text.encode()) / benchmark.stats.stats.median / 1e6, 1)


@pytest.mark.benchmark(group="world decode (1 MB of ids)")
@pytest.mark.parametrize("name", ["sutra_fast", "pyrwkv-tokenizer (Rust)", "rwkv TRIE_TOKENIZER"])
def test_decode(benchmark, text, trie, name):
    ours = sf.WorldTokenizer.default()
    ids = ours.encode(text)
    fn = {"sutra_fast": lambda: ours.decode,
          "pyrwkv-tokenizer (Rust)": lambda: pyrwkv_tokenizer.RWKVTokenizer().decode,
          "rwkv TRIE_TOKENIZER": lambda: trie.decode}[name]()
    benchmark.extra_info["contender"] = name
    assert benchmark(fn, ids) == text


@pytest.mark.benchmark(group="world load vocabulary")
def test_load(benchmark):
    benchmark.extra_info["contender"] = "sutra_fast"
    tok = benchmark(sf.WorldTokenizer.from_file, DEFAULT_VOCAB)
    assert tok.vocab_size == 65530
