"""Calibration for the int8 graph: SmoothQuant factors from real activations.

Per-tensor int8 activations lose too much on BERT because a few hidden
channels carry values 10-15x larger than the rest. SmoothQuant (Xiao et al.,
2022) divides each such channel by ``s_j = max|X_j|**alpha / max|W_j|**(1-alpha)``
and multiplies the matching weight row by ``s_j``: the product is unchanged,
but the activation range shrinks. ``max|X_j|`` is measured here by running the
fp32 graph on calibration text.

Calibration text: ``data/calibration_texts.txt``, 264 texts taken once from
the docstrings of the Python standard library's *packages* (asyncio, email,
json, unittest, ...) by ``tools/make_calibration_texts.py``. Shipped as a file
because the docstrings differ between Python builds, and the int8 graph should
not. Random vocabulary tokens stand in only when a caller passes no texts at all
(an empty list).
"""
from __future__ import annotations

import os
import re

import numpy as np

ALPHA = 0.7
CALIBRATION_FILE = os.path.join(os.path.dirname(__file__), "data", "calibration_texts.txt")


def calibration_texts() -> list[str]:
    """The packaged calibration texts (one per line): 256 sentences and 8 long
    paragraphs (so late positions are seen). A file, not read from the running
    Python, so that every install converts to the same int8 graph."""
    with open(CALIBRATION_FILE, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def _batches_from_texts(tokenizer, texts: list[str], max_length: int, batch_size: int = 32):
    enc = tokenizer.encode_batch(texts, max_length=max_length)
    lengths = enc["attention_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        width = int(lengths[rows].max())
        yield {k: np.ascontiguousarray(v[rows, :width]) for k, v in enc.items()}


def _random_batches(tokenizer, vocab_size: int, max_length: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ordinary = np.array([i for i in range(vocab_size)
                         if not re.fullmatch(r"\[.*\]", tokenizer.id_to_token(i) or "[x]")])
    cls = tokenizer.cls_token_id or 0
    sep = tokenizer.sep_token_id or 0
    for length in [16] * 4 + [32] * 4 + [64] * 2 + [min(max_length, 256)] * 1:
        ids = rng.choice(ordinary, size=(16, length))
        ids[:, 0], ids[:, -1] = cls, sep
        yield {"input_ids": ids.astype(np.int64), "attention_mask": np.ones_like(ids, np.int64),
               "token_type_ids": np.zeros_like(ids, np.int64)}


def activation_maxima(calib_model: bytes, tokenizer, vocab_size: int, max_length: int,
                      texts: list[str] | None = None) -> tuple[dict[str, np.ndarray], str]:
    """Per-channel max |x| at each tap of a graph built with ``calibration_outputs=True``.

    Returns (maxima by tap name, source description).
    """
    import onnxruntime as ort

    packaged = texts is None
    if packaged:
        texts = calibration_texts()
    if texts:
        batches, source = _batches_from_texts(tokenizer, texts, max_length), \
            f"{len(texts)} texts" + (" (data/calibration_texts.txt, stdlib docstrings)"
                                    if packaged else "")
    else:
        batches, source = _random_batches(tokenizer, vocab_size, max_length), "random vocabulary tokens"
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(calib_model, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs() if o.name.startswith("calib.")]
    maxima: dict[str, np.ndarray] = {}
    for feed in batches:
        for name, value in zip(names, sess.run(names, feed)):
            m = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = m if name not in maxima else np.maximum(maxima[name], m)
    return maxima, source


def smoothing_factors(maxima: dict[str, np.ndarray], weight_rows_max: dict[str, np.ndarray],
                      alpha: float = ALPHA) -> dict[str, np.ndarray]:
    """``s = max|X|**alpha / max|W_row|**(1-alpha)`` per group (keys ``layer.{i}.attn|ffn``)."""
    out = {}
    for key, wmax in weight_rows_max.items():
        xmax = maxima["calib." + key]
        s = np.power(np.maximum(xmax, 1e-5), alpha) / np.power(np.maximum(wmax, 1e-5), 1 - alpha)
        out[key] = s.astype(np.float32)
    return out
