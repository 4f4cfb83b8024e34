"""Random-weight RWKV-7 ("x070") checkpoints for tests and benchmarks.

The tensors carry the real names, shapes and dtype (bf16) of BlinkDL's
checkpoints; the values are random, scaled so that activations stay O(1)
through the layers. Writing a .pth needs torch, so this module is test-only
(the runtime never imports it). .safetensors files are written with our own
few lines (header + raw little-endian data) and need no torch.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Shape:
    n_layer: int
    n_embd: int
    head_size: int
    vocab: int
    d_w: int
    d_a: int
    d_v: int
    d_g: int
    layer0_v: bool = False  # released checkpoints have no v0/v1/v2 in layer 0

    @property
    def n_head(self) -> int:
        return self.n_embd // self.head_size


TINY = Shape(n_layer=2, n_embd=64, head_size=16, vocab=97, d_w=8, d_a=8, d_v=4, d_g=16)
# 3 heads (not a power of two), layer 0 carries v0/v1/v2 like some training dumps.
ODD_HEADS = Shape(n_layer=3, n_embd=96, head_size=32, vocab=211, d_w=16, d_a=16, d_v=8, d_g=24,
                  layer0_v=True)
# The World vocabulary (65536) at a tiny size: text prompts go through the World
# tokenizer, yet the model loads and steps in milliseconds.
WORLD_TINY = Shape(n_layer=2, n_embd=32, head_size=16, vocab=65536, d_w=8, d_a=8, d_v=4, d_g=8)
MID = Shape(n_layer=4, n_embd=256, head_size=64, vocab=1000, d_w=32, d_a=32, d_v=16, d_g=64)
WORLD_0B1 = Shape(n_layer=12, n_embd=768, head_size=64, vocab=65536, d_w=64, d_a=64, d_v=32, d_g=128)
WORLD_0B4 = Shape(n_layer=24, n_embd=1024, head_size=64, vocab=65536, d_w=64, d_a=64, d_v=32, d_g=128)


def bf16_round(a: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest bf16 (ties to even); returns the uint16 bit patterns."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    u = u + (0x7FFF + ((u >> 16) & 1))
    return (u >> 16).astype(np.uint16)


def make_state_dict(shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
    """Ordered {name: float32 array} with the x070 names/shapes, values exactly bf16-representable."""
    rng = np.random.default_rng(seed)
    C, H, N, V = shape.n_embd, shape.n_head, shape.head_size, shape.vocab
    F = 4 * C

    def normal(*dims, scale=1.0):
        return rng.standard_normal(dims, dtype=np.float32) * np.float32(scale)

    def uniform(lo, hi, *dims):
        return rng.uniform(lo, hi, dims).astype(np.float32)

    def vec(lo, hi):
        return uniform(lo, hi, 1, 1, C)

    sd: dict[str, np.ndarray] = {"emb.weight": normal(V, C, scale=0.5)}
    for i in range(shape.n_layer):
        b = f"blocks.{i}."
        sd[b + "ln1.weight"] = uniform(0.7, 1.3, C)
        sd[b + "ln1.bias"] = normal(C, scale=0.05)
        sd[b + "ln2.weight"] = uniform(0.7, 1.3, C)
        sd[b + "ln2.bias"] = normal(C, scale=0.05)
        if i == 0:
            sd[b + "ln0.weight"] = uniform(0.7, 1.3, C)
            sd[b + "ln0.bias"] = normal(C, scale=0.05)
        a = b + "att."
        for m in "rwkvag":
            sd[a + "x_" + m] = vec(0.0, 1.0)
        sd[a + "w0"] = vec(-6.0, 1.0)
        sd[a + "w1"] = normal(C, shape.d_w, scale=C ** -0.5)
        sd[a + "w2"] = normal(shape.d_w, C, scale=shape.d_w ** -0.5)
        sd[a + "a0"] = vec(-1.0, 1.0)
        sd[a + "a1"] = normal(C, shape.d_a, scale=C ** -0.5)
        sd[a + "a2"] = normal(shape.d_a, C, scale=shape.d_a ** -0.5)
        if i > 0 or shape.layer0_v:
            sd[a + "v0"] = vec(-1.0, 1.0)
            sd[a + "v1"] = normal(C, shape.d_v, scale=C ** -0.5)
            sd[a + "v2"] = normal(shape.d_v, C, scale=shape.d_v ** -0.5)
        sd[a + "g1"] = normal(C, shape.d_g, scale=C ** -0.5)
        sd[a + "g2"] = normal(shape.d_g, C, scale=shape.d_g ** -0.5)
        sd[a + "k_k"] = vec(0.5, 1.5)
        sd[a + "k_a"] = vec(0.0, 1.0)
        sd[a + "r_k"] = normal(H, N, scale=0.3)
        sd[a + "receptance.weight"] = normal(C, C, scale=C ** -0.5)
        sd[a + "key.weight"] = normal(C, C, scale=C ** -0.5)
        sd[a + "value.weight"] = normal(C, C, scale=C ** -0.5)
        sd[a + "output.weight"] = normal(C, C, scale=0.5 * C ** -0.5)
        sd[a + "ln_x.weight"] = uniform(0.3, 1.0, C)
        sd[a + "ln_x.bias"] = normal(C, scale=0.05)
        f = b + "ffn."
        sd[f + "x_k"] = vec(0.0, 1.0)
        sd[f + "key.weight"] = normal(F, C, scale=C ** -0.5)
        sd[f + "value.weight"] = normal(C, F, scale=0.5 * F ** -0.5)
    sd["ln_out.weight"] = uniform(0.7, 1.3, C)
    sd["ln_out.bias"] = normal(C, scale=0.05)
    sd["head.weight"] = normal(V, C, scale=2.0 * C ** -0.5)
    # Make every value exactly representable in bf16, as in a real checkpoint.
    return {k: (bf16_round(v).astype(np.uint32) << 16).view(np.float32) for k, v in sd.items()}


def write_safetensors(path: str | Path, sd: dict[str, np.ndarray], dtype: str = "BF16") -> Path:
    """Write {name: float32} as .safetensors with dtype BF16, F16 or F32 (no torch needed)."""
    header, blobs, offset = {}, [], 0
    for name, arr in sd.items():
        if dtype == "BF16":
            raw = bf16_round(arr).tobytes()
        elif dtype == "F16":
            raw = arr.astype("<f2").tobytes()
        elif dtype == "F32":
            raw = arr.astype("<f4").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    return path


def write_pth(path: str | Path, sd: dict[str, np.ndarray], dtype: str = "bf16") -> Path:
    """Write {name: float32} as a torch zip .pth (bf16 by default), like BlinkDL's files."""
    import torch

    tdt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)).to(tdt) for k, v in sd.items()}
    path = Path(path)
    torch.save(tensors, str(path))
    return path


def make_checkpoint(directory: str | Path, shape: Shape, seed: int = 0, fmt: str = "pth",
                    name: str = "model") -> Path:
    """Write one checkpoint (fmt 'pth' or 'safetensors') and return its path."""
    sd = make_state_dict(shape, seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "pth":
        return write_pth(directory / f"{name}.pth", sd)
    if fmt == "safetensors":
        return write_safetensors(directory / f"{name}.safetensors", sd)
    raise ValueError(fmt)
