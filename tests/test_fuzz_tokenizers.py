"""Property tests for the tokenizers that tests/test_wordpiece.py and
tests/test_world_tokenizer.py do not already make: arbitrary *bytes* turned
into text for WordPiece, batch calls against single calls on random batches,
truncation, and decoding arbitrary id lists.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sutra_fast as sf

import rwkv  # noqa: F401  (the reference package must be installed)
sys.path.insert(0, os.path.dirname(rwkv.__file__))
from rwkv_tokenizer import TRIE_TOKENIZER  # noqa: E402

RWKV_VOCAB = os.path.join(os.path.dirname(rwkv.__file__), "rwkv_vocab_v20230424.txt")
SLOW_OK = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
_cache: dict = {}


def cached(key, make):
    if key not in _cache:
        _cache[key] = make()
    return _cache[key]


@pytest.fixture(scope="module")
def wp(source_dir):
    from tokenizers import Tokenizer

    path = Path(source_dir) / "tokenizer.json"
    hf = Tokenizer.from_file(str(path))
    hf.no_padding()
    hf.no_truncation()
    return Pair((sf.WordPieceTokenizer.from_file(path), hf))


class Pair(tuple):
    def __repr__(self) -> str:  # hypothesis prints fixture arguments of a failing example
        return "<ours, hf>"


def world():
    return cached("world", sf.WorldTokenizer.default)


def world_ref():
    return cached("ref", lambda: TRIE_TOKENIZER(RWKV_VOCAB))


texts_no_surrogates = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@SLOW_OK
@given(data=st.binary(max_size=300), codec=st.sampled_from(["latin-1", "utf-8", "cp1252", "utf-16-le"]))
def test_wordpiece_bytes_as_text_match_hf(wp, data, codec):
    ours, hf = wp
    text = data.decode(codec, errors="replace")
    assert ours.encode(text) == hf.encode(text).ids


@SLOW_OK
@given(texts=st.lists(texts_no_surrogates, max_size=8),
       max_length=st.one_of(st.none(), st.integers(2, 40)), left=st.booleans())
def test_wordpiece_batch_is_encode_truncated(wp, texts, max_length, left):
    ours, hf = wp
    got = ours.encode_batch(texts, max_length=max_length, truncation="left" if left else "right",
                            pad=False)["input_ids"]
    assert len(got) == len(texts)
    for t, row in zip(texts, got):
        full = ours.encode(t)
        if max_length is not None and len(full) > max_length:
            body = full[1:-1]
            keep = max_length - 2
            body = body[len(body) - keep:] if left else body[:keep]
            full = [full[0]] + body + [full[-1]]
        assert row.tolist() == full


@SLOW_OK
@given(texts=st.lists(texts_no_surrogates, max_size=10), threads=st.sampled_from([None, 1, 2, 7]))
def test_world_batch_is_encode(texts, threads):
    tok = world()
    assert tok.encode_batch(texts, threads) == [tok.encode(t) for t in texts]


@SLOW_OK
@given(ids=st.lists(st.integers(1, 65529), max_size=40))
def test_world_decode_any_ids_matches_reference(ids):
    tok = world()
    want = world_ref().decodeBytes(ids)
    assert tok.decode_bytes(ids) == want
    assert tok.decode_bytes(np.array(ids, dtype=np.int64)) == want
    assert tok.decode(ids) == want.decode("utf-8", errors="replace")


@SLOW_OK
@given(data=st.binary(max_size=120), cut=st.integers(0, 120))
def test_world_prefix_stability(data, cut):
    """Encoding a prefix and the rest separately round-trips to the same bytes."""
    tok = world()
    a, b = data[:cut], data[cut:]
    assert tok.decode_bytes(tok.encode_bytes(a) + tok.encode_bytes(b)) == data
