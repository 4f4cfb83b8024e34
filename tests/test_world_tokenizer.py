"""RWKV World tokenizer: ids identical to the rwkv package's TRIE_TOKENIZER,
to the pure-Python twin and to pyrwkv-tokenizer; round trips; errors."""
import glob
import os
import random
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sutra_fast as sf
from sutra_fast.reference.world_tokenizer import WorldTokenizer as TwinTokenizer
from sutra_fast.world_tokenizer import DEFAULT_VOCAB

import rwkv  # noqa: F401  (the reference package must be installed)
sys.path.insert(0, os.path.dirname(rwkv.__file__))
from rwkv_tokenizer import TRIE_TOKENIZER  # noqa: E402

import pyrwkv_tokenizer  # noqa: E402

RWKV_VOCAB = os.path.join(os.path.dirname(rwkv.__file__), "rwkv_vocab_v20230424.txt")


@pytest.fixture(scope="module")
def tok():
    return sf.WorldTokenizer.default()


@pytest.fixture(scope="module")
def ref():
    return TRIE_TOKENIZER(RWKV_VOCAB)


@pytest.fixture(scope="module")
def twin():
    return TwinTokenizer(DEFAULT_VOCAB)


def _read(path, limit=None):
    with open(path, "rb") as f:
        return f.read(limit)


MULTILINGUAL = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "Ünïcödé façade naïve coöperate — “quotes” ‘single’ … €100 £5 ¥20",
    "日本語のテキストです。東京は日本の首都です。ひらがな カタカナ 漢字",
    "中文文本：北京是中华人民共和国的首都。繁體中文：臺灣。",
    "한국어 텍스트입니다. 서울은 대한민국의 수도입니다.",
    "Русский текст: Москва — столица России. Українська: Київ.",
    "Ελληνικά: Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "العربية: القاهرة عاصمة مصر. עברית: ירושלים.",
    "हिन्दी: नई दिल्ली भारत की राजधानी है। বাংলা: ঢাকা। தமிழ்: சென்னை.",
    "ไทย: กรุงเทพมหานคร. Tiếng Việt: Hà Nội là thủ đô.",
    "Emoji: 😀🎉👍🏽👨‍👩‍👧‍👦🇯🇵🏳️‍🌈 ❤️ ✨ 🤖 and symbols ∑∫√∞ ≠ ≤ ≥ → ⇒ ♠♣",
    "Code: def f(x):\n\treturn {'a': [1, 2, 3]}  # comment\r\n\x00\x01\x7f",
    "Math: e^{iπ} + 1 = 0; ∀x∈ℝ, x² ≥ 0. Zalgo: Z̷̢a̸l̵g̶o̴",
    "  leading and trailing spaces   \n\n\n   ",
]


def _corpus() -> bytes:
    """~3 MB of varied real text: Python stdlib source, licence texts, Debian
    copyright files, plus multilingual samples and random code points."""
    parts = []
    for p in sorted(glob.glob("/usr/lib/python3*/*.py"))[:120]:
        parts.append(_read(p))
    for p in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(p):
            parts.append(_read(p))
    for p in sorted(glob.glob("/usr/share/doc/*/copyright"))[:200]:
        parts.append(_read(p, 20000))
    parts.extend(s.encode() * 20 for s in MULTILINGUAL)
    rnd = random.Random(0)
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
              (0x900, 0x97F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1F300, 0x1FAFF), (0x10000, 0x1007F)]
    for _ in range(200):
        lo, hi = rnd.choice(blocks)
        parts.append("".join(chr(rnd.randint(lo, hi)) for _ in range(rnd.randint(1, 300))).encode())
    data = b"\n".join(parts)
    assert len(data) > 2_000_000, "corpus too small: test data missing on this machine"
    return data


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


def test_default_is_cached_and_sized(tok):
    assert sf.WorldTokenizer.default() is tok
    assert tok.vocab_size == 65530  # ids 1..65529, plus 0 = end of text
    assert len(tok) == 65530


def test_vocab_file_matches_rwkv_package():
    assert _read(str(DEFAULT_VOCAB)) == _read(RWKV_VOCAB)


def test_every_token_bytes_match_reference(tok, ref):
    for i, b in ref.idx2token.items():
        assert tok.token_to_bytes(i) == b
    assert tok.token_to_bytes(0) == b""


def test_corpus_ids_identical_to_reference(tok, ref, corpus):
    text = corpus.decode("utf-8", errors="replace")
    expected = ref.encode(text)
    assert tok.encode(text) == expected
    assert tok.encode(text, as_numpy=True).tolist() == expected
    assert pyrwkv_tokenizer.RWKVTokenizer().encode(text) == expected
    assert tok.decode(expected) == text


def test_corpus_bytes_identical_to_reference(tok, ref, twin, corpus):
    expected = ref.encodeBytes(corpus)
    assert tok.encode_bytes(corpus) == expected
    assert tok.decode_bytes(expected) == corpus
    sample = corpus[:300_000]
    assert twin.encode_bytes(sample) == ref.encodeBytes(sample)


def test_each_line_identical(tok, ref, twin, corpus):
    lines = corpus.split(b"\n")[:3000]
    got = [tok.encode_bytes(line) for line in lines]
    assert got == [ref.encodeBytes(line) for line in lines]
    assert got[:500] == [twin.encode_bytes(line) for line in lines[:500]]


def test_multilingual(tok, ref, twin):
    for s in MULTILINGUAL:
        assert tok.encode(s) == ref.encode(s) == twin.encode(s), s
        assert tok.decode(tok.encode(s)) == s


def test_random_bytes_with_invalid_utf8(tok, ref, twin):
    rnd = random.Random(1)
    for _ in range(300):
        n = rnd.randint(0, 400)
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        expected = ref.encodeBytes(data)
        assert tok.encode_bytes(data) == expected == twin.encode_bytes(data)
        assert tok.decode_bytes(expected) == data
        assert tok.decode(expected) == data.decode("utf-8", errors="replace")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_hypothesis_bytes(data):
    tok = sf.WorldTokenizer.default()
    ids = tok.encode_bytes(data)
    assert ids == _ref_cached().encodeBytes(data)
    assert tok.decode_bytes(ids) == data


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_hypothesis_text(text):
    tok = sf.WorldTokenizer.default()
    ids = tok.encode(text)
    assert ids == _ref_cached().encode(text)
    assert tok.decode(ids) == text


_REF = []


def _ref_cached():
    if not _REF:
        _REF.append(TRIE_TOKENIZER(RWKV_VOCAB))
    return _REF[0]


def test_encode_batch_matches_encode(tok, corpus, threads):
    texts = corpus.decode("utf-8", errors="replace").split("\n")[:2000]
    expected = [tok.encode(t) for t in texts]
    assert tok.encode_batch(texts) == expected
    assert tok.encode_batch(texts, num_threads=1) == expected
    assert tok.encode_batch(iter(texts), num_threads=2) == expected
    arrays = tok.encode_batch(texts[:50], as_numpy=True)
    assert [a.tolist() for a in arrays] == expected[:50]
    assert all(a.dtype == np.int32 for a in arrays)
    assert tok.encode_batch([]) == []


def test_empty_and_end_of_text(tok):
    assert tok.encode("") == []
    assert tok.encode_bytes(b"") == []
    assert tok.decode([]) == ""
    assert tok.decode_bytes([0, 0]) == b""  # id 0 = end of text, no bytes
    assert tok.decode([0] + tok.encode("hi") + [0]) == "hi"


def test_decode_accepts_arrays_and_sequences(tok):
    ids = tok.encode("numpy ids")
    for form in (ids, tuple(ids), np.array(ids, np.int64), np.array(ids, np.int32),
                 np.array(ids, np.uint16)):
        assert tok.decode(form) == "numpy ids"


def test_decode_invalid_utf8_replaced(tok, ref):
    ids = tok.encode_bytes(b"ok \xff\xfe and \xe6\x97")  # broken bytes + a cut character
    assert tok.decode(ids) == "ok \ufffd\ufffd and \ufffd"
    assert "\ufffd" in ref.decode(ids)  # the reference collapses the whole string to "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        tok.decode(ids, errors="strict")


@pytest.mark.parametrize("bad_id", [-1, 65530, 65536, 2**40])
def test_decode_out_of_range(tok, bad_id):
    with pytest.raises(ValueError, match=str(bad_id)):
        tok.decode([1, bad_id])
    with pytest.raises(ValueError, match=str(bad_id)):
        tok.decode_bytes(np.array([bad_id], np.int64))
    with pytest.raises(ValueError, match=str(bad_id)):
        tok.token_to_bytes(bad_id)


def test_decode_huge_and_non_int(tok):
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([2**70])
    with pytest.raises(TypeError):
        tok.decode(["1"])
    with pytest.raises(TypeError):
        tok.decode([1.0])
    with pytest.raises(TypeError):
        tok.decode(np.array([1.0]))
    with pytest.raises(TypeError):
        tok.token_to_bytes("3")


def test_type_errors(tok):
    with pytest.raises(TypeError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(TypeError, match="str"):
        tok.encode(None)
    with pytest.raises(TypeError):
        tok.encode_bytes("text")
    with pytest.raises(TypeError):
        tok.encode_batch("not a list")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok.encode_batch(["a", 3])
    with pytest.raises(ValueError):
        tok.encode_batch(["a"], num_threads=0)


def test_lone_surrogate(tok):
    with pytest.raises(ValueError, match="surrogate"):
        tok.encode("abc\ud800def")
    with pytest.raises(ValueError, match=r"texts\[1\].*surrogate"):
        tok.encode_batch(["fine", "bad \udfff"])


def test_bytes_like_inputs(tok):
    data = "bytearray and memoryview ✓".encode()
    expected = tok.encode_bytes(data)
    assert tok.encode_bytes(bytearray(data)) == expected
    assert tok.encode_bytes(memoryview(data)) == expected


# ---- custom vocabulary files -------------------------------------------------

def _write_vocab(tmp_path, lines, name="vocab.txt"):
    p = tmp_path / name
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return p


def _bytes_vocab_lines():
    return [f"{i + 1} {bytes([i])!r} 1" for i in range(256)]


def test_literal_escapes_match_python(tmp_path):
    tokens = ["'\\x41\\x42'", "'\\u00e9t\\u00e9'", "'\\U0001F600'", "b'\\xff\\xfe'", '"it\'s"',
              "'\\''", "'\\\\'", "'\\101\\102\\103'", "'\\t\\n\\r'", "'caf\u00e9'", "b'\\\\u00e9'",
              "'\\a\\b\\f\\v'", "B'\\x00'", "'a b'", "' '"]
    import ast
    lines = _bytes_vocab_lines()
    for k, lit in enumerate(tokens):
        v = ast.literal_eval(lit)
        b = v.encode() if isinstance(v, str) else v
        lines.append(f"{300 + k} {lit} {len(b)}")
    path = _write_vocab(tmp_path, lines)
    tok = sf.WorldTokenizer.from_file(path)
    twin = TwinTokenizer(path)
    ref = TRIE_TOKENIZER(str(path))
    for k, lit in enumerate(tokens):
        assert tok.token_to_bytes(300 + k) == ref.idx2token[300 + k] == twin.id_to_bytes[300 + k], lit
    text = "AB été 😀 it's \\ ABC\t\n\r café a b \x00 xyz"
    assert tok.encode(text) == ref.encode(text) == twin.encode(text)


def test_duplicate_bytes_later_line_wins(tmp_path):
    lines = _bytes_vocab_lines() + ["300 'ab' 2", "301 b'ab' 2", "302 'abc' 3"]
    path = _write_vocab(tmp_path, lines)
    tok = sf.WorldTokenizer.from_file(path)
    ref = TRIE_TOKENIZER(str(path))
    assert ref.encode("ab abc") == tok.encode("ab abc") == TwinTokenizer(path).encode("ab abc")
    assert tok.encode("ab")[0] == 301
    assert tok.decode_bytes([300, 301]) == b"abab"


def test_crlf_and_missing_ids(tmp_path):
    lines = _bytes_vocab_lines() + ["1000 'hello' 5"]
    path = tmp_path / "crlf.txt"
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())
    tok = sf.WorldTokenizer.from_file(path)
    assert tok.vocab_size == 1001
    assert tok.encode("hello!") == [1000, ord("!") + 1]
    with pytest.raises(ValueError, match="500"):
        tok.decode([500])  # an id without a token


def test_vocab_without_some_bytes(tmp_path):
    path = _write_vocab(tmp_path, ["1 'a' 1", "2 'ab' 2", "3 'bc' 2"])
    tok = sf.WorldTokenizer.from_file(path)
    twin = TwinTokenizer(path)
    assert tok.encode("abbc") == [2, 3] == twin.encode("abbc")
    with pytest.raises(ValueError, match="0x20 at offset 2"):
        tok.encode("ab c")
    with pytest.raises(ValueError, match="0x20 at offset 2"):
        twin.encode("ab c")


@pytest.mark.parametrize("line, why", [
    ("abc 'x' 1", "id"),
    ("5 'x' one", "byte length"),
    ("5 'xy' 1", "bytes but the line says 1"),
    ("5 x 1", "quoted"),
    ("5 'x 1", "quoted"),
    ("5 'a'b' 3", "quote"),
    ("5 '\\x4' 1", "truncated"),
    ("5 '\\xg1' 1", "hex"),
    ("5 '\\ud800' 3", "surrogate"),
    ("5 b'\u00e9' 2", "non-ASCII"),
    ("0 'x' 1", "out of range"),
    ("5 '' 0", "empty"),
    ("5", "expected"),
])
def test_malformed_line_names_line_number(tmp_path, line, why):
    path = _write_vocab(tmp_path, ["1 'a' 1", "2 'b' 1", line])
    with pytest.raises(ValueError, match=f"line 3.*{why}"):
        sf.WorldTokenizer.from_file(path)


def test_duplicate_id_and_missing_file(tmp_path):
    path = _write_vocab(tmp_path, ["1 'a' 1", "1 'b' 1"])
    with pytest.raises(ValueError, match="line 2.*duplicate id 1"):
        sf.WorldTokenizer.from_file(path)
    with pytest.raises(RuntimeError, match="cannot open"):
        sf.WorldTokenizer.from_file(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="empty"):
        sf.WorldTokenizer.from_file(_write_vocab(tmp_path, [""], name="empty.txt"))


# ---------------------------------------------------------------- thread counts
@pytest.mark.parametrize("n", [2**31, 2**70, sf._core.MAX_NUM_THREADS + 1])
def test_encode_batch_num_threads_too_large_is_value_error(tok, n):
    # a count past the thread cap (or past a C int) is named, not a pybind11 dump
    with pytest.raises(ValueError, match="num_threads must be >= 1 and <= 1024") as e:
        tok.encode_batch(["a"], num_threads=n)
    assert "incompatible" not in str(e.value)


def test_encode_batch_num_threads_numpy_int_and_bad_types(tok):
    expected = [tok.encode("a"), tok.encode("bc")]
    assert tok.encode_batch(["a", "bc"], num_threads=np.int64(2)) == expected
    assert tok.encode_batch(["a", "bc"], num_threads=sf._core.MAX_NUM_THREADS) == expected
    for bad in [True, np.bool_(True), 1.0, "2"]:
        with pytest.raises(TypeError, match="num_threads must be an int"):
            tok.encode_batch(["a"], num_threads=bad)
    with pytest.raises(TypeError, match="texts must be an iterable of str"):
        tok.encode_batch(None)
