"""Pure-Python pooling, L2 normalisation and Matryoshka truncation.

Same contracts as :mod:`sutra_fast.kernels`: numpy arrays in (read with
``tolist()``), float32 numpy arrays out; arithmetic in Python floats (double).
"""
from __future__ import annotations

import math

import numpy as np

LAYER_NORM_EPS = 1e-5  # torch.nn.functional.layer_norm default
L2_EPS = 1e-12  # torch.nn.functional.normalize default


def _rows(hidden, mask):
    h = np.asarray(hidden, dtype=np.float32)
    m = np.asarray(mask)
    if h.ndim != 3 or m.shape != h.shape[:2]:
        raise ValueError(f"expected hidden [B, T, H] and mask [B, T], got {h.shape} and {m.shape}")
    return h.tolist(), m.tolist(), h.shape[2]


def _out(rows, width):
    return np.array(rows, dtype=np.float32).reshape(len(rows), width)


def mean_pool(hidden, mask):
    hs, ms, width = _rows(hidden, mask)
    out = []
    for tokens, keep in zip(hs, ms):
        acc = [0.0] * width
        count = 0
        for vec, k in zip(tokens, keep):
            if k:
                count += 1
                for i, v in enumerate(vec):
                    acc[i] += v
        out.append([a / count for a in acc] if count else acc)
    return _out(out, width)


def cls_pool(hidden, mask):
    hs, ms, width = _rows(hidden, mask)
    out = []
    for tokens, keep in zip(hs, ms):
        first = next((vec for vec, k in zip(tokens, keep) if k), None)
        out.append(list(first) if first is not None else [0.0] * width)
    return _out(out, width)


def max_pool(hidden, mask):
    hs, ms, width = _rows(hidden, mask)
    out = []
    for tokens, keep in zip(hs, ms):
        kept = [vec for vec, k in zip(tokens, keep) if k]
        if not kept:
            out.append([0.0] * width)
            continue
        acc = list(kept[0])
        for vec in kept[1:]:
            acc = [v if v > a else a for a, v in zip(acc, vec)]
        out.append(acc)
    return _out(out, width)


def _normalize_row(row, eps):
    norm = math.sqrt(sum(v * v for v in row))
    denom = max(norm, float(np.float32(eps)))  # the kernel takes eps as a float32
    if denom == 0.0:  # eps = 0 and a zero row: 0 / 0, NaN as in the kernel and numpy
        return [math.nan] * len(row)
    return [v / denom for v in row]


def l2_normalize(x, eps=L2_EPS, *, inplace=False):
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected x [N, D], got shape {a.shape}")
    out = _out([_normalize_row(row, eps) for row in a.tolist()], a.shape[1])
    if inplace:
        x[...] = out
        return x
    return out


def matryoshka(x, dim, layer_norm=False):
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 2 or not 1 <= dim <= a.shape[1]:
        raise ValueError(f"expected x [N, D] and 1 <= dim <= D, got {a.shape} and {dim}")
    out = []
    for row in a.tolist():
        if layer_norm:
            mean = sum(row) / len(row)
            var = sum((v - mean) ** 2 for v in row) / len(row)
            inv_std = 1.0 / math.sqrt(var + LAYER_NORM_EPS)
            row = [(v - mean) * inv_std for v in row]
        out.append(_normalize_row(row[:dim], L2_EPS))
    return _out(out, dim)
