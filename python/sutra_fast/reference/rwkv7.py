"""Pure-Python (numpy) twin of the compiled RWKV-7 forward.

Written to be read next to shared/RWKV_MATH.md §2, one token at a time, in
float32. numpy does the matrix products; everything else is spelled out.
The state layout equals the compiled one and the `rwkv` package's:
att_x_prev [L, C], att_kv [L, H, N, N] (row = value dim, column = key dim),
ffn_x_prev [L, C].
"""
from __future__ import annotations

import numpy as np

f32 = np.float32


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean()
    var = ((x - mu) ** 2).mean()
    return (x - mu) / np.sqrt(var + f32(eps)) * w + b


def _sigmoid(x):
    return f32(1) / (f32(1) + np.exp(-x))


QBLOCK = 32            # int8 block along the input dimension (as the compiled core)
XMAX = 127 * 254       # int8 activations: integers in [-XMAX, XMAX] per token and block
RESCORE = 64           # int8: the best logits recomputed from the head's own rows


def top_k_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest x; among equal values the lower index wins."""
    return np.argsort(-x, kind="stable")[:k]


def _bf16_round_up(x: np.ndarray) -> np.ndarray:
    """Positive float32 -> nearest bf16 value >= x."""
    u = np.ascontiguousarray(x, dtype=f32).view(np.uint32)
    return (((u + np.uint32(0xFFFF)) >> 16) << 16).astype(np.uint32).view(f32)


class Int8Matrix:
    """The compiled core's int8 scheme, spelled out: symmetric int8 weights with one
    bf16 scale per block of 32 inputs of a row (rounded up, and the weights rounded
    against the stored scale); activations per token and block rounded to integers
    in [-XMAX, XMAX] (~15 bits; the core feeds them to u8 x s8 dot products as two
    u8 digits, an exact rewrite of the same integer sum)."""

    def __init__(self, w: np.ndarray):
        R, K = w.shape
        self.K = K
        nb = -(-K // QBLOCK)
        pad = np.zeros((R, nb * QBLOCK), f32)
        pad[:, :K] = w
        blocks = pad.reshape(R, nb, QBLOCK)
        amax = np.abs(blocks).max(2)
        self.scale = np.where(amax > 0, _bf16_round_up(amax / f32(127)), f32(1)).astype(f32)  # R x nb
        self.q = np.clip(np.rint(blocks / self.scale[:, :, None]), -127, 127).astype(np.int64)

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        nb = self.scale.shape[1]
        xp = np.zeros(nb * QBLOCK, f32)
        xp[: self.K] = x
        xb = xp.reshape(nb, QBLOCK)
        amax = np.abs(xb).max(1)
        xs = np.where(amax > 0, amax / f32(XMAX), f32(1)).astype(f32)
        xq = np.clip(np.rint(xb * (f32(1) / xs)[:, None]), -XMAX, XMAX).astype(np.int64)
        dots = (self.q * xq[None, :, :]).sum(2)                          # exact integer sums
        return ((self.scale * xs[None, :]) * dots.astype(f32)).sum(1).astype(f32)


class Rwkv7Reference:
    """weights: {name: float32 array} with checkpoint names/shapes (see rwkv_loader).
    dtype "int8" replaces the large matrices of the layers and the head by
    Int8Matrix, then recomputes the RESCORE largest logits with the head's own
    (checkpoint) rows, as the compiled core does."""

    def __init__(self, weights: dict[str, np.ndarray], dtype: str = "fp32"):
        z = {k: np.asarray(v, dtype=f32) for k, v in weights.items()}
        self.V, self.C = z["emb.weight"].shape
        self.H, self.N = z["blocks.0.att.r_k"].shape
        self.L = 1 + max(int(k.split(".")[1]) for k in z if k.startswith("blocks."))
        # Squeeze (1,1,C) vectors; flatten r_k.
        self.z = {k: (v.reshape(-1) if (v.ndim == 3 or k.endswith("r_k")) else v) for k, v in z.items()}
        # The embedding is pre-normalised with ln0 once (as the reference package does).
        e = self.z["emb.weight"]
        mu = e.mean(1, keepdims=True)
        var = ((e - mu) ** 2).mean(1, keepdims=True)
        self.emb = ((e - mu) / np.sqrt(var + f32(1e-5)) * self.z["blocks.0.ln0.weight"]
                    + self.z["blocks.0.ln0.bias"]).astype(f32)
        self.head_int8 = None
        if dtype == "int8":
            for k, v in list(self.z.items()):
                if v.ndim == 2 and k.endswith(".weight") and k not in ("emb.weight", "head.weight"):
                    self.z[k] = Int8Matrix(v)
            self.head_int8 = Int8Matrix(self.z["head.weight"])
        elif dtype != "fp32":
            raise ValueError(f"dtype must be 'fp32' or 'int8', got {dtype!r}")

    def new_state(self):
        return {"att_x_prev": np.zeros((self.L, self.C), f32),
                "att_kv": np.zeros((self.L, self.H, self.N, self.N), f32),
                "ffn_x_prev": np.zeros((self.L, self.C), f32)}

    def forward(self, tokens, state) -> np.ndarray:
        """Feed tokens one by one; update `state` in place; return the last logits."""
        for t in tokens:
            x = self.emb[int(t)].copy()
            v_first = None
            for i in range(self.L):
                x, v_first = self._block(i, x, v_first, state)
        z = self.z
        xn = _layer_norm(x, z["ln_out.weight"], z["ln_out.bias"])
        if self.head_int8 is None:
            return (z["head.weight"] @ xn).astype(f32)
        logits = self.head_int8 @ xn
        best = top_k_indices(logits, min(RESCORE, self.V))
        logits[best] = z["head.weight"][best] @ xn
        return logits.astype(f32)

    def _block(self, i, x, v_first, state):
        z, H, N = self.z, self.H, self.N
        p, a = f"blocks.{i}.", f"blocks.{i}.att."
        # --- time mix
        xa = _layer_norm(x, z[p + "ln1.weight"], z[p + "ln1.bias"])
        d = state["att_x_prev"][i] - xa
        xr, xw, xk, xv, xaa, xg = (xa + d * z[a + "x_" + m] for m in "rwkvag")
        r = z[a + "receptance.weight"] @ xr
        k = z[a + "key.weight"] @ xk
        v = z[a + "value.weight"] @ xv
        dec = np.tanh(xw @ z[a + "w1"]) @ z[a + "w2"]
        aa = _sigmoid(z[a + "a0"] + (xaa @ z[a + "a1"]) @ z[a + "a2"])
        g = _sigmoid(xg @ z[a + "g1"]) @ z[a + "g2"]
        kk = (k * z[a + "k_k"]).reshape(H, N)
        kk = (kk / np.maximum(np.sqrt((kk * kk).sum(1, keepdims=True)), f32(1e-12))).reshape(-1)
        k = k * (f32(1) + (aa - f32(1)) * z[a + "k_a"])
        if i == 0:
            v_first = v
        else:
            v = v + (v_first - v) * _sigmoid(z[a + "v0"] + (xv @ z[a + "v1"]) @ z[a + "v2"])
        w = np.exp(f32(-0.606531) * _sigmoid(z[a + "w0"] + dec))
        S = state["att_kv"][i]  # H x N x N, updated in place below
        out = np.empty(H * N, f32)
        for h in range(H):
            sl = slice(h * N, (h + 1) * N)
            Sh = S[h]
            sk = Sh @ kk[sl]                                    # S κ (old state)
            Sh[:] = Sh * w[sl][None, :] - np.outer(sk, kk[sl] * aa[sl]) + np.outer(v[sl], k[sl])
            o = Sh @ r[sl]                                      # read-out after the update
            mu = o.mean()
            var = ((o - mu) ** 2).mean()
            y = (o - mu) / np.sqrt(var + f32(64e-5)) * z[a + "ln_x.weight"][sl] + z[a + "ln_x.bias"][sl]
            y = y + (r[sl] * k[sl] * z[a + "r_k"][sl]).sum() * v[sl]
            out[sl] = y
        x = x + z[a + "output.weight"] @ (out * g)
        state["att_x_prev"][i] = xa
        # --- channel mix
        xf = _layer_norm(x, z[p + "ln2.weight"], z[p + "ln2.bias"])
        kf = xf + (state["ffn_x_prev"][i] - xf) * z[p + "ffn.x_k"]
        hdn = np.maximum(z[p + "ffn.key.weight"] @ kf, f32(0)) ** 2
        x = x + z[p + "ffn.value.weight"] @ hdn
        state["ffn_x_prev"][i] = xf
        return x.astype(f32), v_first
