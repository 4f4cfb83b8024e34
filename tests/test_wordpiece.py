"""sutra_fast.WordPieceTokenizer vs HF tokenizers (the external reference) and
the pure-Python twin, on a real corpus, Unicode edge cases, every code point
and hypothesis-generated text."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from tokenizers.implementations import BertWordPieceTokenizer

sys.path.insert(0, os.path.dirname(__file__))
import text_corpus  # noqa: E402

import sutra_fast as sf  # noqa: E402
from sutra_fast import reference  # noqa: E402

# Option sets for a tokenizer built from vocab.txt (HF BertWordPieceTokenizer kwargs).
VOCAB_VARIANTS = {
    "cased": dict(lowercase=False),
    "cased_strip": dict(lowercase=False, strip_accents=True),
    "lower_keep_accents": dict(lowercase=True, strip_accents=False),
    "no_clean_no_chinese": dict(lowercase=True, clean_text=False, handle_chinese_chars=False),
}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def minilm_dir():
    return text_corpus.minilm_model_dir()


@pytest.fixture(scope="session")
def json_path(minilm_dir):
    return os.path.join(minilm_dir, "tokenizer.json")


@pytest.fixture(scope="session")
def hf(json_path):
    tok = Tokenizer.from_file(json_path)
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="session")
def ours(json_path):
    return sf.WordPieceTokenizer.from_file(json_path)


@pytest.fixture(scope="session")
def twin(json_path):
    return reference.WordPieceTokenizer.from_file(json_path)


@pytest.fixture(scope="session")
def corpus():
    texts = text_corpus.real_corpus()
    assert len(texts) > 7000 and sum(map(len, texts)) > 1_500_000
    return texts


@pytest.fixture(scope="session")
def cased_vocab(tmp_path_factory, minilm_dir):
    """The MiniLM vocab plus capitalised / upper-case / accented word pieces, so
    that a cased tokenizer has cased tokens to find."""
    with open(os.path.join(minilm_dir, "vocab.txt"), encoding="utf-8") as f:
        base = f.read().split("\n")
    while base and base[-1] == "":
        base.pop()
    extra, seen = [], set(base)
    for tok in base[1000:9000]:
        for variant in (tok.capitalize(), tok.upper(), "##" + tok.upper() if not tok.startswith("##") else tok):
            if variant not in seen:
                seen.add(variant)
                extra.append(variant)
    extra += ["Café", "café", "naïve", "Ünïcödé", "ǅ", "Σ", "σ", "ς", "İ", "i̇"]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(base + extra) + "\n", encoding="utf-8")
    return str(path)


def hf_vocab(path, **options):
    tok = BertWordPieceTokenizer.from_file(path, **options)._tokenizer
    tok.no_truncation()
    tok.no_padding()
    return tok


def hf_ids(tok, texts):
    return [e.ids for e in tok.encode_batch(list(texts))]


def assert_same(ours_ids, ref_ids, texts, label):
    bad = [i for i, (a, b) in enumerate(zip(ours_ids, ref_ids)) if list(a) != list(b)]
    assert len(ours_ids) == len(ref_ids)
    if bad:
        i = bad[0]
        pytest.fail(f"{label}: {len(bad)} of {len(texts)} texts differ; first {texts[i]!r}:\n"
                    f" ours {list(ours_ids[i])}\n  ref {list(ref_ids[i])}")


# ------------------------------------------------------------ parity: HF json

def test_real_corpus_parity(ours, hf, corpus):
    assert_same([ours.encode(t) for t in corpus], hf_ids(hf, corpus), corpus, "corpus")


def test_real_corpus_batch_matches_encode(ours, hf, corpus):
    texts = corpus[:3000]
    rows = ours.encode_batch(texts, pad=False)["input_ids"]
    assert_same(rows, hf_ids(hf, texts), texts, "encode_batch")


def test_non_ascii_real_texts(ours, hf):
    texts = text_corpus.non_ascii_licence_texts()
    assert len(texts) > 100
    assert_same([ours.encode(t) for t in texts], hf_ids(hf, texts), texts, "non-ascii")


def test_edge_cases(ours, hf):
    texts = text_corpus.EDGE_CASES
    assert_same([ours.encode(t) for t in texts], hf_ids(hf, texts), texts, "edge cases")


def _code_point_texts(sep, planes=None):
    ranges = planes or [range(0x110000)]
    chars = [chr(c) for r in ranges for c in r if not 0xD800 <= c < 0xE000]
    # each code point inside a word ("a?b") and, in the second half, alone
    return [sep.join("a" + ch + "b" for ch in chars[i:i + 512]) for i in range(0, len(chars), 512)] + \
           [sep.join(chars[i:i + 512]) for i in range(0, len(chars), 512)]


def test_every_code_point(ours, hf):
    texts = _code_point_texts(" ")
    assert_same(ours.encode_batch(texts, pad=False)["input_ids"], hf_ids(hf, texts), texts, "code points")


def _combining_marks():
    import unicodedata

    return [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and unicodedata.combining(chr(c))]


def test_combining_mark_pairs(tmp_path):
    """Every ordered pair of characters with a non-zero canonical combining class,
    after a base letter, through strip_accents (NFD's canonical reordering, then
    Mn removed). Each mark is its own vocabulary piece, so the ids show the order."""
    marks = _combining_marks()
    vocab = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3}
    for m in marks:
        vocab.setdefault(m, len(vocab))
        vocab.setdefault("##" + m, len(vocab))
    ref = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    ref.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=True)
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    pairs = ["a" + x + y for x in marks for y in marks]
    texts = [" ".join(pairs[i:i + 2000]) for i in range(0, len(pairs), 2000)]
    ours = sf.WordPieceTokenizer.from_file(path)
    assert_same(ours.encode_batch(texts, pad=False)["input_ids"], hf_ids(ref, texts), texts, "mark pairs")
    twin = reference.WordPieceTokenizer.from_file(path)
    few = [" ".join(pairs[i:i + 3]) for i in range(0, len(pairs), 997)]
    assert_same([twin.encode(t) for t in few], hf_ids(ref, few), few, "mark pairs twin")


# -------------------------------------------------------- parity: vocab.txt

@pytest.mark.parametrize("variant", sorted(VOCAB_VARIANTS))
def test_vocab_txt_variants(variant, cased_vocab, corpus):
    opts = VOCAB_VARIANTS[variant]
    ours = sf.WordPieceTokenizer.from_file(cased_vocab, **opts)
    ref = hf_vocab(cased_vocab, **opts)
    texts = corpus[::7] + text_corpus.non_ascii_licence_texts() + text_corpus.EDGE_CASES
    assert_same(ours.encode_batch(texts, pad=False)["input_ids"], hf_ids(ref, texts), texts, variant)
    assert ours.vocab_size == ref.get_vocab_size()


@pytest.mark.parametrize("variant", ["cased", "no_clean_no_chinese"])
def test_vocab_txt_every_code_point(variant, cased_vocab):
    opts = VOCAB_VARIANTS[variant]
    ours = sf.WordPieceTokenizer.from_file(cased_vocab, **opts)
    ref = hf_vocab(cased_vocab, **opts)
    texts = _code_point_texts(" ")
    assert_same(ours.encode_batch(texts, pad=False)["input_ids"], hf_ids(ref, texts), texts, variant)


def test_bert_processing_json(tmp_path, cased_vocab, corpus):
    """A tokenizer.json saved by HF BertWordPieceTokenizer (BertProcessing post-processor)."""
    ref = hf_vocab(cased_vocab, lowercase=False)
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    assert json.loads(path.read_text())["post_processor"]["type"] == "BertProcessing"
    ours = sf.WordPieceTokenizer.from_file(path)
    texts = corpus[:2000] + text_corpus.EDGE_CASES
    assert_same([ours.encode(t) for t in texts], hf_ids(ref, texts), texts, "BertProcessing json")


def test_lstrip_rstrip_and_roberta_processing(tmp_path, json_path, corpus):
    """Added tokens with lstrip/rstrip, and a RobertaProcessing post-processor
    (all-mpnet-base-v2's layout) with other special tokens."""
    with open(json_path, encoding="utf-8") as f:
        spec = json.load(f)
    spec["added_tokens"] = [dict(t, lstrip=t["content"] in ("[MASK]", "[SEP]"),
                                 rstrip=t["content"] in ("[MASK]", "[CLS]")) for t in spec["added_tokens"]]
    spec["post_processor"] = {"type": "RobertaProcessing", "sep": ["[MASK]", 103], "cls": ["[PAD]", 0],
                              "trim_offsets": True, "add_prefix_space": False}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    ref = Tokenizer.from_file(str(path))
    ref.no_truncation()
    ref.no_padding()
    texts = corpus[:500] + text_corpus.EDGE_CASES + [
        "a [MASK] b", "a[MASK]b", "  [MASK]  ", "x \t[SEP]\u3000y", "[CLS]   z", "\u00a0[MASK]\u2028w"]
    for tok in (sf.WordPieceTokenizer.from_file(path), reference.WordPieceTokenizer.from_file(path)):
        assert_same([tok.encode(t) for t in texts], hf_ids(ref, texts), texts, "lstrip/rstrip/roberta")


@pytest.mark.parametrize("prefix,max_chars", [("", 100), ("@@", 7)])
def test_models_api_tokenizer(tmp_path, cased_vocab, corpus, prefix, max_chars):
    """A tokenizer built with tokenizers' models/normalizers API: other continuing
    prefix (empty too), a small max_input_chars_per_word, a template with type ids."""
    from tokenizers import processors

    with open(cased_vocab, encoding="utf-8") as f:
        lines = f.read().split("\n")[:-1]
    vocab = {}
    for i, tok in enumerate(lines):
        vocab.setdefault(prefix + tok[2:] if tok.startswith("##") else tok, i)
    ref = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix=prefix,
                                     max_input_chars_per_word=max_chars))
    ref.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=True)
    ref.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    ref.post_processor = processors.TemplateProcessing(
        single="[CLS] [MASK]:1 $A:1 [SEP]:1", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                                          ("[SEP]", vocab["[SEP]"]), ("[MASK]", vocab["[MASK]"])])
    ref.add_special_tokens(["[MASK]", "[SEP]"])
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    texts = corpus[:800] + text_corpus.EDGE_CASES
    for tok in (sf.WordPieceTokenizer.from_file(path), reference.WordPieceTokenizer.from_file(path)):
        assert_same([tok.encode(t) for t in texts], hf_ids(ref, texts), texts, f"prefix {prefix!r}")
    ours = sf.WordPieceTokenizer.from_file(path)
    ref.enable_padding(pad_id=0)
    ref.enable_truncation(12)
    got = ours.encode_batch(texts[:50], max_length=12)
    enc = ref.encode_batch(texts[:50])
    np.testing.assert_array_equal(got["input_ids"], [e.ids for e in enc])
    np.testing.assert_array_equal(got["token_type_ids"], [e.type_ids for e in enc])
    np.testing.assert_array_equal(got["attention_mask"], [e.attention_mask for e in enc])


def test_normalized_added_tokens(tmp_path, json_path, corpus):
    """Tokens added with tokenizer.add_tokens() (normalized=true: matched in the
    lowercased, accent-stripped text) next to the special ones."""
    ref = Tokenizer.from_file(json_path)
    ref.no_truncation()
    ref.no_padding()
    ref.add_tokens(["Hello World", "licence", "Café", "newword", "ΣΑΣ", "中文", "a-b", "GNU General"])
    path = tmp_path / "tokenizer.json"
    ref.save(str(path))
    assert any(t.get("normalized") for t in json.loads(path.read_text())["added_tokens"])
    texts = corpus[:1500] + text_corpus.EDGE_CASES + [
        "hello world HELLO WORLD hello  world", "cafe CAFÉ café newwordnewword", "σας ΣΑΣ", "a-b a - b",
        "[MASK]licence[SEP]", "the gnu general public license"]
    for tok in (sf.WordPieceTokenizer.from_file(path), reference.WordPieceTokenizer.from_file(path)):
        assert_same([tok.encode(t) for t in texts], hf_ids(ref, texts), texts, "normalized added tokens")
        assert tok.vocab_size == ref.get_vocab_size()
        assert tok.token_to_id("newword") == ref.token_to_id("newword")
        assert tok.id_to_token(ref.token_to_id("Café")) == "Café"


# ------------------------------------------------------------ parity: twin

def test_twin_matches_hf(twin, hf, corpus):
    texts = corpus[:600] + text_corpus.non_ascii_licence_texts()[:300] + text_corpus.EDGE_CASES
    assert_same([twin.encode(t) for t in texts], hf_ids(hf, texts), texts, "twin")


# The twin is slow: planes 0-3 (everything assigned but the tags/variation selectors) + plane 14.
TWIN_PLANES = [range(0x40000), range(0xE0000, 0xE1000)]


def test_twin_every_code_point(json_path, cased_vocab):
    for twin, ref in ((reference.WordPieceTokenizer.from_file(json_path), Tokenizer.from_file(json_path)),
                      (reference.WordPieceTokenizer.from_file(cased_vocab, lowercase=False),
                       hf_vocab(cased_vocab, lowercase=False))):
        ref.no_truncation()
        ref.no_padding()
        texts = _code_point_texts(" ", TWIN_PLANES)
        assert_same([twin.encode(t) for t in texts], hf_ids(ref, texts), texts, "twin code points")


@pytest.mark.parametrize("variant", sorted(VOCAB_VARIANTS))
def test_twin_vocab_variants(variant, cased_vocab):
    opts = VOCAB_VARIANTS[variant]
    twin = reference.WordPieceTokenizer.from_file(cased_vocab, **opts)
    ours = sf.WordPieceTokenizer.from_file(cased_vocab, **opts)
    texts = text_corpus.EDGE_CASES + text_corpus.non_ascii_licence_texts()[:100]
    assert_same([twin.encode(t) for t in texts], [ours.encode(t) for t in texts], texts, variant)


def test_twin_batch_api(twin, ours):
    texts = ["Hello world", "", "a much longer text with many words in it", "中文"]
    for kw in ({}, {"max_length": 5}, {"max_length": 5, "truncation": "left"}):
        a, b = ours.encode_batch(texts, **kw), twin.encode_batch(texts, **kw)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            np.testing.assert_array_equal(a[key], b[key])


# ------------------------------------------------------------ hypothesis

_any_char = st.characters(blacklist_categories=("Cs",))
_words = st.sampled_from(["the", "The", "THE", "un", "##able", "café", "naïve", "中", "[MASK]", "[SEP]", "don't",
                          "e-mail", "123", "x" * 101, "😀", "\u0301", "\u200b", "\x00", " ", "\t", "\n", "ǅ", "İ",
                          "ΣΑΣ", "ﬁ", "Ａ", "\u3000", "\u0890", "\u2e4f", "\U0002b820",
                          "\u0316", "\u1dfa", "\u0c3c", "\u07fd", "\U00016ff0", "\U0001d165", "\U0001d16d",
                          "\u302e", "\u0344", "\u0f73", "\u1e9b", "ǖ", "가"])
_texts = st.one_of(st.text(_any_char, max_size=60),
                   st.lists(st.one_of(_words, st.text(_any_char, max_size=4)), max_size=20).map("".join))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts)
def test_hypothesis_parity(ours, hf, twin, text):
    ref = hf.encode(text).ids
    assert ours.encode(text) == ref
    assert twin.encode(text) == ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_texts)
def test_hypothesis_parity_cased(cased_vocab, text):
    ours = _cached(cased_vocab, "ours", lambda: sf.WordPieceTokenizer.from_file(cased_vocab, lowercase=False))
    ref = _cached(cased_vocab, "hf", lambda: hf_vocab(cased_vocab, lowercase=False))
    assert ours.encode(text) == ref.encode(text).ids


_CACHE = {}


def _cached(path, kind, make):
    key = (path, kind)
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


# ------------------------------------------------------------ encode_batch

def test_encode_batch_arrays_match_hf_padding_and_truncation(json_path, ours, corpus):
    texts = corpus[:200] + ["", "short", "中文 text"]
    for max_length, direction in ((None, "right"), (16, "right"), (16, "left"), (2, "right"), (3, "left")):
        ref = Tokenizer.from_file(json_path)
        if max_length is None:
            ref.no_truncation()
        else:
            ref.enable_truncation(max_length, direction=direction)
        ref.enable_padding(pad_id=0, pad_token="[PAD]")
        enc = ref.encode_batch(texts)
        got = ours.encode_batch(texts, max_length=max_length, truncation=direction)
        for key, attr in (("input_ids", "ids"), ("attention_mask", "attention_mask"),
                          ("token_type_ids", "type_ids")):
            arr = got[key]
            assert arr.dtype == np.int64 and arr.flags["C_CONTIGUOUS"] and arr.ndim == 2
            np.testing.assert_array_equal(arr, np.array([getattr(e, attr) for e in enc], dtype=np.int64))


def test_encode_batch_empty_and_single(ours):
    out = ours.encode_batch([])
    assert out["input_ids"].shape == (0, 0) and out["input_ids"].dtype == np.int64
    one = ours.encode_batch(["hello"])
    assert one["input_ids"].tolist() == [ours.encode("hello")]
    assert ours.encode_batch(("a", "b"))["input_ids"].shape == (2, 3)


def test_encode_batch_threads_agree(ours, corpus):
    texts = corpus[:4000]
    before = sf.get_num_threads()
    try:
        sf.set_num_threads(1)
        one = ours.encode_batch(texts, max_length=256)
        sf.set_num_threads(2)
        two = ours.encode_batch(texts, max_length=256)
    finally:
        sf.set_num_threads(before)
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])


def test_concurrent_callers(ours, corpus):
    """Several Python threads encoding at once (GIL released, pool shared)."""
    from concurrent.futures import ThreadPoolExecutor

    chunks = [corpus[i:i + 300] for i in range(0, 2400, 300)]
    want = [ours.encode_batch(c, max_length=128)["input_ids"] for c in chunks]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda c: ours.encode_batch(c, max_length=128)["input_ids"], chunks))
        singles = list(pool.map(ours.encode, corpus[:500]))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert singles == [ours.encode(t) for t in corpus[:500]]


def test_unpadded_rows(ours):
    out = ours.encode_batch(["one two three", "x"], pad=False, max_length=4)
    assert [r.tolist() for r in out["input_ids"]] == [ours.encode("one two")[:3] + [102], ours.encode("x")]
    assert [r.tolist() for r in out["attention_mask"]] == [[1] * 4, [1] * 3]


# ------------------------------------------------------------ properties

def test_vocab_properties(ours, hf):
    assert ours.vocab_size == hf.get_vocab_size() == 30522
    for token in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]", "hello", "##ing", "中", "notinvocab__"):
        assert ours.token_to_id(token) == hf.token_to_id(token)
    for i in (0, 100, 101, 102, 103, 999, 7592, 30521, 30522, -1, 10**12, 2**70, -(2**70)):
        assert ours.id_to_token(i) == hf.id_to_token(i) if 0 <= i < 2**32 else ours.id_to_token(i) is None
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id, ours.unk_token_id) == (
        hf.token_to_id("[CLS]"), hf.token_to_id("[SEP]"), hf.token_to_id("[PAD]"), hf.token_to_id("[UNK]"))
    assert ours.lowercase and ours.strip_accents and ours.clean_text and ours.handle_chinese_chars
    assert ours.max_input_chars_per_word == 100 and ours.continuing_subword_prefix == "##"


def test_from_directory(minilm_dir, ours):
    assert sf.WordPieceTokenizer.from_file(minilm_dir).encode("Hello there") == ours.encode("Hello there")


# ------------------------------------------------------------ errors

def test_missing_file_names_it(tmp_path):
    missing = tmp_path / "nope" / "tokenizer.json"
    for cls in (sf.WordPieceTokenizer, reference.WordPieceTokenizer):
        with pytest.raises(FileNotFoundError, match="nope"):
            cls.from_file(missing)
        with pytest.raises(FileNotFoundError, match=str(tmp_path.name)):
            cls.from_file(tmp_path)  # a folder without tokenizer files


def _save(tok, tmp_path, name="tokenizer.json"):
    path = tmp_path / name
    tok.save(str(path))
    return path


def test_bpe_model_rejected(tmp_path):
    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "ab": 2, "[UNK]": 3}, merges=[("a", "b")], unk_token="[UNK]"))
    path = _save(bpe, tmp_path)
    for cls in (sf.WordPieceTokenizer, reference.WordPieceTokenizer):
        with pytest.raises(ValueError, match="BPE"):
            cls.from_file(path)


def test_other_normalizer_and_pretokenizer_rejected(tmp_path, json_path):
    with open(json_path, encoding="utf-8") as f:
        spec = json.load(f)
    bad_norm = dict(spec, normalizer={"type": "NFKC"})
    p1 = tmp_path / "n.json"
    p1.write_text(json.dumps(bad_norm))
    bad_pre = dict(spec, pre_tokenizer={"type": "Whitespace"})
    p2 = tmp_path / "p.json"
    p2.write_text(json.dumps(bad_pre))
    single = dict(spec, added_tokens=[dict(spec["added_tokens"][0], single_word=True)])
    p3 = tmp_path / "s.json"
    p3.write_text(json.dumps(single))
    for cls in (sf.WordPieceTokenizer, reference.WordPieceTokenizer):
        with pytest.raises(ValueError, match="NFKC"):
            cls.from_file(p1)
        with pytest.raises(ValueError, match="Whitespace"):
            cls.from_file(p2)
        with pytest.raises(ValueError, match="single_word"):
            cls.from_file(p3)


def test_malformed_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "WordPiece", "vocab": {"a": 0,}}')
    with pytest.raises(ValueError, match="JSON"):
        sf.WordPieceTokenizer.from_file(path)


def test_other_objects_named_vocab_do_not_leak_into_the_vocabulary(tmp_path, json_path, ours, corpus):
    """The loader streams model.vocab out of the parse; objects elsewhere with
    the same key (before and after it) must leave the ids unchanged."""
    with open(json_path, encoding="utf-8") as f:
        spec = json.load(f)
    extra = {"vocab": {"hello": 7, "zzz": 3}}
    spec = {"vocab": {"x": 1}, **spec, "decoder": dict(spec.get("decoder") or {}, **extra)}
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    tok = sf.WordPieceTokenizer.from_file(path)
    assert tok.vocab_size == ours.vocab_size
    for text in corpus[:300]:
        assert tok.encode(text) == ours.encode(text)


@pytest.mark.parametrize("bad", ['"3"', "1.5", "-1", '{"n": 1}', '{"vocab": {"b": 1}}', "1e400", "null", "[4]"])
def test_vocab_ids_must_be_token_ids(tmp_path, bad):
    path = tmp_path / "tokenizer.json"
    spec = json.loads(_SMALL_JSON)
    text = json.dumps(spec).replace('"a\\u00e9": 3', f'"a\\u00e9": {bad}')
    assert text != json.dumps(spec)
    path.write_text(text)
    with pytest.raises(ValueError, match=r"vocab id of 'a\u00e9' is not a valid token id"):
        sf.WordPieceTokenizer.from_file(path)


_SMALL_JSON = json.dumps({
    "version": "1.0", "added_tokens": [{"id": 1, "content": "[CLS]", "single_word": False, "lstrip": False,
                                        "rstrip": False, "normalized": False, "special": True}],
    "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                   "strip_accents": None, "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a\u00e9": 3}},
})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupt_json_never_crashes(tmp_path_factory, data):
    """Truncated / mutated tokenizer.json: it loads or raises ValueError, nothing else."""
    raw = bytearray(_SMALL_JSON.encode())
    cut = data.draw(st.integers(0, len(raw)))
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[:cut] if data.draw(st.booleans()) else raw
    path = tmp_path_factory.mktemp("corrupt") / "tokenizer.json"
    path.write_bytes(bytes(raw))
    try:
        tok = sf.WordPieceTokenizer.from_file(path)
    except ValueError:
        return
    tok.encode("aé [CLS] x")


def test_deeply_nested_json(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text("[" * 100_000)
    with pytest.raises(ValueError, match="deep"):
        sf.WordPieceTokenizer.from_file(path)


def test_unk_missing(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[CLS]\n[SEP]\nhello\n")
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        sf.WordPieceTokenizer.from_file(path)


def test_options_for_json_rejected(json_path, minilm_dir):
    with pytest.raises(TypeError, match="vocab.txt"):
        sf.WordPieceTokenizer.from_file(json_path, lowercase=False)
    with pytest.raises(TypeError, match="bogus"):
        sf.WordPieceTokenizer.from_file(os.path.join(minilm_dir, "vocab.txt"), bogus=1)


def test_bad_texts(ours, twin):
    for tok in (ours, twin):
        with pytest.raises(TypeError, match=r"texts\[2\]"):
            tok.encode_batch(["a", "b", 3])
        with pytest.raises(TypeError, match=r"texts\[0\]"):
            tok.encode_batch([b"bytes"])
        with pytest.raises(TypeError, match="single str"):
            tok.encode_batch("not a list")
        with pytest.raises(TypeError):
            tok.encode(None)
        with pytest.raises(ValueError, match="max_length"):
            tok.encode_batch(["a"], max_length=1)
        with pytest.raises(ValueError, match="truncation"):
            tok.encode_batch(["a"], truncation="middle")
        for bad in (True, 8.0, "8"):
            with pytest.raises(TypeError, match="max_length must be an int or None"):
                tok.encode_batch(["a"], max_length=bad)
        for bad in (None, "no", 0):   # pad=None must not silently mean "unpadded"
            with pytest.raises(TypeError, match="pad must be True or False"):
                tok.encode_batch(["a"], pad=bad)
        np.testing.assert_array_equal(   # numpy integers are ints
            tok.encode_batch(["a b c d"], max_length=np.int64(4), pad=np.bool_(True))["input_ids"],
            tok.encode_batch(["a b c d"], max_length=4)["input_ids"])
    with pytest.raises(TypeError, match="token must be a str"):
        ours.token_to_id(None)
    with pytest.raises(TypeError, match="id must be an int"):
        ours.id_to_token("a")
    huge = ours.encode_batch(["a b c"], max_length=2**64)["input_ids"]  # beyond any text: no cut
    np.testing.assert_array_equal(huge, ours.encode_batch(["a b c"])["input_ids"])


def test_lone_surrogate(ours, twin, hf):
    text = "abc\ud800def"
    # HF tokenizers refuses it too (with a TypeError).
    with pytest.raises(TypeError):
        hf.encode(text)
    with pytest.raises(ValueError, match="surrogate"):
        ours.encode(text)
    with pytest.raises(ValueError, match=r"texts\[1\].*surrogate"):
        ours.encode_batch(["ok", text])
    with pytest.raises(ValueError, match="surrogate"):
        twin.encode(text)
    # a valid surrogate *pair* written as two code points is not a str issue:
    assert ours.encode("😀") == hf.encode("😀").ids


@pytest.mark.parametrize("name", ["tokenizer.json", "vocab.txt"])
def test_path_undecodable_in_the_locale_loads(tmp_path, minilm_dir, ours, name):
    # Under LC_ALL=C (ascii filesystem encoding) a non-ASCII folder name decodes with
    # surrogate escapes; such a str has no UTF-8 form for the compiled side.
    folder = os.path.join(str(tmp_path), os.fsdecode(b"caf\xe9"))
    assert "\udce9" in folder
    try:
        os.mkdir(folder)
    except (OSError, UnicodeEncodeError):  # a filesystem without byte names: the str alone
        folder = str(tmp_path)
    with open(os.path.join(minilm_dir, name), "rb") as src:
        data = src.read()
    with open(os.path.join(folder, name), "wb") as dst:
        dst.write(data)
    tok = sf.WordPieceTokenizer.from_file(os.path.join(folder, name))
    assert tok.path == os.path.join(folder, name)
    assert tok.encode("Hello, wörld!") == ours.encode("Hello, wörld!")
    if name == "tokenizer.json":   # a bad file's message names it, readable
        bad = os.path.join(folder, "bad.json")
        with open(bad, "w") as f:
            f.write("{")
        with pytest.raises(ValueError, match=r"bad\.json"):
            sf.WordPieceTokenizer.from_file(bad)


def test_pickles_as_its_file_and_options(json_path, minilm_dir, tmp_path):
    """multiprocessing and datasets.map pickle the tokenizer: it comes back as the
    same file loaded with the same options (vocab.txt options included)."""
    import multiprocessing
    import pickle

    vocab = os.path.join(minilm_dir, "vocab.txt")
    texts = ["Héllo WORLD, naïve café", "a b c"]
    for tok in (sf.WordPieceTokenizer.from_file(json_path),
                sf.WordPieceTokenizer.from_file(vocab, lowercase=False, strip_accents=False)):
        back = pickle.loads(pickle.dumps(tok))
        assert back.path == tok.path and back.lowercase == tok.lowercase
        assert [back.encode(t) for t in texts] == [tok.encode(t) for t in texts]
    cased = sf.WordPieceTokenizer.from_file(vocab, lowercase=False, strip_accents=False)
    with multiprocessing.get_context("spawn").Pool(1) as pool:   # a fresh process
        assert pool.map(cased.encode, texts) == [cased.encode(t) for t in texts]
