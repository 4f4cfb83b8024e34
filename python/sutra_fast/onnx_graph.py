"""Build a BERT-family encoder as an ONNX graph straight from its weights.

The default ``form="plain"`` uses standard ONNX ops (opset 17) laid out the way
ONNX Runtime's own session optimiser recognises (it fuses the erf-GELU with its
bias into BiasGelu, folds constants, drops the Identity). It was chosen by
measurement against the alternatives kept here for the benchmark record:
``"plain_qkv"`` (one [D, 3D] MatMul for Q/K/V) and ``"fused"`` (the ORT contrib
ops EmbedLayerNormalization / Attention / SkipLayerNormalization / BiasGelu that
ORT's offline transformer optimiser aims for); all three ran within noise of
each other single-threaded, and plain is the most portable (README, "Conversion").

Changes versus a literal export, exact in real arithmetic: the
1/sqrt(head_dim) attention scale is folded into the query weights and bias;
in the plain form the key bias is dropped (it adds the same q.bk to every
score of a query row, which softmax ignores) and the value bias is moved into
the attention-output bias (bv @ Wo; rows of probabilities sum to 1) - two
Adds per layer fewer, measured +1.4% fp32 throughput, -3% batch-1 latency,
same min cosine vs sentence-transformers.

``int8=Int8Recipe(...)`` writes the quantised variant (see :class:`Int8Recipe`;
opset 21, for QuantizeLinear with one block per row).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sutra_fast import onnx_proto as op


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str

    @classmethod
    def from_dict(cls, cfg: dict, source: str = "config.json") -> "BertConfig":
        """The encoder's shape from a HF config; every damaged or out-of-range
        value is a ValueError naming ``source`` and the key."""
        if not isinstance(cfg, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(cfg).__name__}")

        def size(key, default=None, lo=1):
            v = cfg.get(key, default)
            if v is None:
                raise ValueError(f"{source}: {key!r} is missing")
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{source}: {key!r} must be an integer >= {lo}, got {v!r:.60}")
            return v

        model_type = cfg.get("model_type", "bert")
        if model_type != "bert":
            raise ValueError(
                f"unsupported model_type {model_type!r}: only BERT-family encoders "
                "(model_type 'bert': MiniLM, bge, e5, gte-base, ...) can be converted")
        pet = cfg.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ValueError(f"unsupported position_embedding_type {pet!r} (only 'absolute')")
        act = cfg.get("hidden_act", "gelu")
        if not isinstance(act, str) or act not in _ACTIVATIONS:
            raise ValueError(f"unsupported hidden_act {act!r} (supported: {sorted(_ACTIVATIONS)})")
        eps = cfg.get("layer_norm_eps", 1e-12)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"{source}: 'layer_norm_eps' must be a number in (0, 1), got {eps!r:.60}")
        c = cls(
            hidden_size=size("hidden_size"),
            num_layers=size("num_hidden_layers"),
            num_heads=size("num_attention_heads"),
            intermediate_size=size("intermediate_size"),
            vocab_size=size("vocab_size"),
            max_position_embeddings=size("max_position_embeddings", 512, lo=2),
            type_vocab_size=size("type_vocab_size", 2),
            layer_norm_eps=float(eps),
            hidden_act=act,
        )
        if c.hidden_size % c.num_heads:
            raise ValueError(f"hidden_size {c.hidden_size} is not a multiple of "
                             f"num_attention_heads {c.num_heads}")
        return c


class _Graph:
    """Collects nodes and initializers; names outputs automatically."""

    # Tensors at least this big go to the external data file (when there is one).
    EXTERNAL_MIN_BYTES = 64 * 1024

    def __init__(self, external: "op.ExternalData | None" = None) -> None:
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self._n = 0
        self.external = external

    def const(self, name: str, array) -> str:
        array = np.asarray(array)
        ext = self.external if array.nbytes >= self.EXTERNAL_MIN_BYTES else None
        self.inits.append(op.tensor(name, array, ext))
        return name

    def add(self, op_type: str, *inputs: str, n_out: int = 1, domain: str = "", **attrs):
        self._n += 1
        outs = [f"{op_type.lower()}_{self._n}" + (f"_{i}" if n_out > 1 else "")
                for i in range(n_out)]
        self.nodes.append(op.node(op_type, inputs, outs, name=f"{op_type}_{self._n}",
                                  domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs


def _gelu_erf(g: _Graph, x: str) -> str:
    # 0.5 * x * (1 + erf(x / sqrt(2))), the exact GELU BERT uses; ORT fuses it.
    t = g.add("Div", x, g.const(f"{x}_sqrt2", np.float32(math.sqrt(2.0))))
    t = g.add("Erf", t)
    t = g.add("Add", t, g.const(f"{x}_one", np.float32(1.0)))
    t = g.add("Mul", x, t)
    return g.add("Mul", t, g.const(f"{x}_half", np.float32(0.5)))


def _gelu_tanh(g: _Graph, x: str) -> str:
    # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    x3 = g.add("Pow", x, g.const(f"{x}_three", np.float32(3.0)))
    t = g.add("Mul", x3, g.const(f"{x}_c", np.float32(0.044715)))
    t = g.add("Add", x, t)
    t = g.add("Mul", t, g.const(f"{x}_k", np.float32(math.sqrt(2.0 / math.pi))))
    t = g.add("Tanh", t)
    t = g.add("Add", t, g.const(f"{x}_one", np.float32(1.0)))
    t = g.add("Mul", x, t)
    return g.add("Mul", t, g.const(f"{x}_half", np.float32(0.5)))


def _relu(g: _Graph, x: str) -> str:
    return g.add("Relu", x)


_ACTIVATIONS: dict[str, Callable[[_Graph, str], str]] = {
    "gelu": _gelu_erf,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": _relu,
}


@dataclass
class Int8Recipe:
    """How the int8 graph is built (measured in the README, "int8").

    * Q/K/V (one [D, 3D] MatMul, so its input is quantised once),
      attention-output and FFN-up MatMuls: int8 weights per output column,
      activations quantised per row (each token its own scale, max|row| / 127)
      at run time: QuantizeLinear (opset 21, one block per row) + ORT
      MatMulIntegerToFloat (u8 x s8 on VNNI/AVX2 integer units). Per-row
      scales make a text's vector independent of the texts batched with it
      (recipe 1-2 had one scale per ORT call).
    * Before the Q/K/V and FFN-up MatMuls the activation channels are divided
      by SmoothQuant factors ``smooth[...]`` (and the weight rows multiplied by
      them), which tames BERT's outlier channels; the factors come from
      calibration (:mod:`sutra_fast.calibrate`).
    * FFN-down (input: the GELU output, the most outlier-heavy): the channels
      in ``down_outliers[layer]`` (the calibrated largest, ``DOWN_OUTLIERS``
      of them) stay fp32 in a small MatMul; with them out of the way the
      other channels take per-row dynamic int8 like the rest (no
      smoothing). The FFN-up MatMul is cut in two the same way (its outlier
      columns and the rest, both int8 from the same quantised input), so there
      is no Split or gather of the intermediate activations at run time.
    """
    DOWN_OUTLIERS = 64

    smooth: dict[str, np.ndarray] = field(default_factory=dict)  # "layer.{i}.attn|ffn"
    down_outliers: dict[int, np.ndarray] = field(default_factory=dict)


def build_bert(cfg: BertConfig, weight: Callable[[str], np.ndarray], *,
               form: str = "plain", int8: Int8Recipe | None = None,
               calibration_outputs: bool = False, external: "op.ExternalData | None" = None,
               opset: int = 17) -> bytes:
    """Serialised ONNX ModelProto of a BERT encoder.

    Arguments:
        cfg: the architecture.
        weight: returns the array of a checkpoint tensor by its HF name (without
            any ``bert.`` prefix), e.g. ``"encoder.layer.0.attention.self.query.weight"``.
        form: ``"plain"``, ``"plain_qkv"`` or ``"fused"`` (see the module doc).
        int8: build the int8 variant (plain form only).
        calibration_outputs: also output the inputs of each layer's attention
            (``calib.layer.{i}.attn``), FFN-up (``calib.layer.{i}.ffn``) and
            FFN-down (``calib.layer.{i}.down``) MatMuls, for :mod:`sutra_fast.calibrate`.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64
    [batch, sequence]); output ``last_hidden_state`` (float32 [batch, sequence, hidden]).
    """
    if form not in ("plain", "plain_qkv", "fused"):
        raise ValueError(f"form must be 'plain', 'plain_qkv' or 'fused', got {form!r}")
    if form == "fused" and (int8 is not None or calibration_outputs):
        raise ValueError("form='fused' has no int8 or calibration variant; use form='plain'")
    g = _Graph(external)
    W = _Weights(cfg, weight)
    opsets = {"": opset}
    extra: list[bytes] = []
    if form == "fused":
        if cfg.hidden_act != "gelu":
            raise ValueError("form='fused' supports hidden_act 'gelu' only")
        x = _fused_body(g, cfg, W)
        opsets["com.microsoft"] = 1
    else:
        taps: list[str] = []
        x = _plain_body(g, cfg, W, fuse_qkv=form == "plain_qkv" or int8 is not None, int8=int8,
                        taps=taps if calibration_outputs else None)
        if int8 is not None:
            opsets["com.microsoft"] = 1
            opsets[""] = max(opset, 21)  # QuantizeLinear with one block per row
        for name in taps:
            width = cfg.intermediate_size if name.endswith(".down") else cfg.hidden_size
            extra.append(op.value_info(name, op.FLOAT, ["batch", "sequence", width]))
    g.nodes.append(op.node("Identity", [x], ["last_hidden_state"], name="output"))
    inputs = [op.value_info(n, op.INT64, ["batch", "sequence"])
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [op.value_info("last_hidden_state", op.FLOAT,
                             ["batch", "sequence", cfg.hidden_size])] + extra
    graph = op.graph("bert_encoder", g.nodes, inputs, outputs, g.inits)
    return op.model(graph, opsets)


class _Weights:
    """Checkpoint tensors as float32, Linear weights transposed to [in, out]."""

    def __init__(self, cfg: BertConfig, weight: Callable[[str], np.ndarray]):
        self._get = weight
        self.scale = np.float32(1.0 / math.sqrt(cfg.hidden_size // cfg.num_heads))

    def __call__(self, name: str) -> np.ndarray:
        return np.asarray(self._get(name), dtype=np.float32)

    def linear(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        # HF Linear stores [out, in]; MatMul wants [in, out].
        return np.ascontiguousarray(self(prefix + ".weight").T), self(prefix + ".bias")

    def qkv(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated [D, 3D] Q/K/V weight with the attention scale folded into Q."""
        p = f"encoder.layer.{layer}.attention.self"
        wq, bq = self.linear(p + ".query")
        wk, bk = self.linear(p + ".key")
        wv, bv = self.linear(p + ".value")
        return (np.concatenate([wq * self.scale, wk, wv], axis=1),
                np.concatenate([bq * self.scale, bk, bv]))


class _RowQuantizedMatMul:
    """x @ wt (+ b) with int8 weights per column and x quantised per row at run time.

    Each row (token) of x gets its own scale, max|row| / 127, so a text's result
    does not depend on the other texts in the batch. x is quantised once per
    tensor however many MatMuls read it. The int8 activations are u8 around a
    zero point of 128: MLAS runs u8 x s8 on the VNNI units, while s8 x s8 took
    a path ~10x slower. ORT's MatMulIntegerToFloat applies a per-row A scale
    after adding its bias input (which would scale the bias too), so the bias
    is a separate Add.
    """

    def __init__(self, g: _Graph):
        self.g = g
        self._quantised: dict[str, tuple[str, str]] = {}
        self._axes = g.const("rowq.axes_last", np.array([-1], np.int64))
        self._tiny = g.const("rowq.tiny", np.float32(1e-30))  # an all-zero row: no 0/0
        self._inv127 = g.const("rowq.inv127", np.float32(1.0 / 127.0))
        self._zero_point = g.const("rowq.zero_point", np.uint8(128))
        rows = g.add("Concat", g.add("Shape", "input_ids"), g.const("rowq.one", np.array([1], np.int64)),
                     axis=0)  # [batch, sequence, 1]: the shape of every per-row scale
        self._zero_points = g.add("ConstantOfShape", rows, value=np.array([128], np.uint8))

    def _quantise(self, x: str, k: int) -> tuple[str, str]:
        if x not in self._quantised:
            g = self.g
            amax = g.add("ReduceMax", g.add("Abs", x), self._axes, keepdims=1)
            scale = g.add("Mul", g.add("Max", amax, self._tiny), self._inv127)
            xq = g.add("QuantizeLinear", x, scale, self._zero_points, axis=-1, block_size=k)
            self._quantised[x] = (xq, scale)
        return self._quantised[x]

    def __call__(self, x: str, name: str, wt: np.ndarray, b: np.ndarray | None) -> str:
        amax = np.abs(wt).max(axis=0)
        w_scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(wt / w_scale), -127, 127).astype(np.int8)
        xq, x_scale = self._quantise(x, wt.shape[0])
        g = self.g
        y = g.add("MatMulIntegerToFloat", xq, g.const(name + ".weight_q8", q), x_scale,
                  g.const(name + ".weight_scale", w_scale), self._zero_point, domain="com.microsoft")
        return y if b is None else g.add("Add", y, g.const(name + ".bias", b))


def _plain_body(g: _Graph, cfg: BertConfig, W: _Weights, *, fuse_qkv: bool,
                int8: Int8Recipe | None, taps: list[str] | None) -> str:
    D, H = cfg.hidden_size, cfg.num_heads
    dh = D // H
    eps = cfg.layer_norm_eps

    def layer_norm(x: str, prefix: str) -> str:
        return g.add("LayerNormalization", x, g.const(prefix + ".weight", W(prefix + ".weight")),
                     g.const(prefix + ".bias", W(prefix + ".bias")), axis=-1, epsilon=eps)

    row_q8 = _RowQuantizedMatMul(g) if int8 is not None else None

    def dense(x: str, name: str, wt: np.ndarray, b: np.ndarray) -> str:
        if row_q8 is not None:
            return row_q8(x, name, wt, b)
        y = g.add("MatMul", x, g.const(name + ".weight_t", wt))
        return g.add("Add", y, g.const(name + ".bias", b))

    def ffn(i: int, xf: str, name_up: str, w1: np.ndarray, b1: np.ndarray, name_down: str,
            w2: np.ndarray, b2: np.ndarray, n_fp32: int) -> str:
        act = _ACTIVATIONS[cfg.hidden_act]
        if int8 is None or not n_fp32:
            h = act(g, dense(xf, name_up, w1, b1))
            tap(h, f"calib.layer.{i}.down")
            return dense(h, name_down, w2, b2)
        # int8 with outlier channels: the first n_fp32 intermediate channels are made by
        # their own (int8) MatMul and meet FFN-down in fp32; the rest go int8 throughout.
        h32 = act(g, dense(xf, name_up + ".fp32part", np.ascontiguousarray(w1[:, :n_fp32]), b1[:n_fp32]))
        h8 = act(g, dense(xf, name_up, np.ascontiguousarray(w1[:, n_fp32:]), b1[n_fp32:]))
        y32 = g.add("MatMul", h32, g.const(name_down + ".weight_fp32", np.ascontiguousarray(w2[:n_fp32])))
        return g.add("Add", dense(h8, name_down, np.ascontiguousarray(w2[n_fp32:]), b2), y32)

    def smooth(x: str, key: str, weights: list[np.ndarray]) -> tuple[str, list[np.ndarray]]:
        # x / s feeds the MatMuls, whose weight rows are multiplied by s: same product.
        if int8 is None or key not in int8.smooth:
            return x, weights
        s = np.asarray(int8.smooth[key], np.float32)
        x = g.add("Mul", x, g.const(key + ".smooth_inv", (1.0 / s).astype(np.float32)))
        return x, [w * s[:, None] for w in weights]

    def tap(x: str, name: str) -> None:
        if taps is not None:
            g.nodes.append(op.node("Identity", [x], [name], name=name))
            taps.append(name)

    # ---- embeddings: word + position + token type, then LayerNorm
    word = g.add("Gather", g.const("embeddings.word_embeddings.weight",
                                   W("embeddings.word_embeddings.weight")), "input_ids", axis=0)
    seq_len = g.add("Shape", "input_ids", start=1, end=2)  # [S] as a 1-D tensor
    pos = g.add("Slice", g.const("embeddings.position_embeddings.weight",
                                 W("embeddings.position_embeddings.weight")),
                g.const("zero_1d", np.array([0], np.int64)), seq_len,
                g.const("axes_0", np.array([0], np.int64)))
    typ = g.add("Gather", g.const("embeddings.token_type_embeddings.weight",
                                  W("embeddings.token_type_embeddings.weight")),
                "token_type_ids", axis=0)
    x = g.add("Add", g.add("Add", word, pos), typ)
    x = layer_norm(x, "embeddings.LayerNorm")

    if int8 is not None:  # MultiHeadAttention's key padding mask (it adds -10000 too)
        mask_i32 = g.add("Cast", "attention_mask", to=op.INT32)
    else:
        # ---- additive attention mask [B, 1, 1, S]: 0 where attended, -10000 where padded
        m = g.add("Cast", "attention_mask", to=op.FLOAT)
        m = g.add("Unsqueeze", m, g.const("axes_1_2", np.array([1, 2], np.int64)))
        m = g.add("Sub", g.const("one_f", np.float32(1.0)), m)
        mask_bias = g.add("Mul", m, g.const("mask_neg", np.float32(-10000.0)))
        heads_shape = g.const("heads_shape", np.array([0, 0, H, dh], np.int64))
        merged_shape = g.const("merged_shape", np.array([0, 0, D], np.int64))

    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}"
        tap(x, f"calib.layer.{i}.attn")
        wqkv, bqkv = W.qkv(i)
        xa, (wqkv,) = smooth(x, f"layer.{i}.attn", [wqkv])
        v_bias = None
        if int8 is not None:
            # One int8 MatMul (its input quantised once), then ORT's MultiHeadAttention adds
            # the Q/K/V bias and runs the whole attention in one node instead of 13: the
            # same vectors, ~0.2 ms less per text at batch 1 (not faster for fp32).
            qkv = row_q8(xa, f"{p}.attention.self.qkv", wqkv, None)
            q, k, v = g.add("Split", qkv, g.const(f"{p}.qkv_split", np.array([D, D, D], np.int64)),
                            n_out=3, axis=-1)
            ctx = g.add("MultiHeadAttention", q, k, v, g.const(f"{p}.attention.self.qkv.bias", bqkv),
                        mask_i32, num_heads=H, scale=1.0, domain="com.microsoft")
        elif fuse_qkv:
            qkv = dense(xa, f"{p}.attention.self.qkv", wqkv, bqkv)
            q, k, v = g.add("Split", qkv, g.const(f"{p}.qkv_split", np.array([D, D, D], np.int64)),
                            n_out=3, axis=-1)
        else:
            # Exact in real arithmetic, two Adds per layer fewer: K's bias adds q.bk to
            # every score of a query row, which softmax ignores; V's bias passes through
            # the attention unchanged (each row of probabilities sums to 1), so it joins
            # the output dense layer's bias as bv @ Wo. (Not in the int8 graph: without
            # V's bias the attention output quantised worse, min cosine vs fp32 on the
            # 2000 sentences 0.9977 instead of 0.9985.)
            q = dense(xa, f"{p}.attention.self.query", wqkv[:, :D], bqkv[:D])
            k = g.add("MatMul", xa, g.const(f"{p}.attention.self.key.weight_t", wqkv[:, D:2 * D]))
            v = g.add("MatMul", xa, g.const(f"{p}.attention.self.value.weight_t", wqkv[:, 2 * D:]))
            v_bias = bqkv[2 * D:]
        if int8 is None:
            q = g.add("Transpose", g.add("Reshape", q, heads_shape), perm=[0, 2, 1, 3])  # B,H,S,dh
            k = g.add("Transpose", g.add("Reshape", k, heads_shape), perm=[0, 2, 3, 1])  # B,H,dh,S
            v = g.add("Transpose", g.add("Reshape", v, heads_shape), perm=[0, 2, 1, 3])  # B,H,S,dh
            scores = g.add("Add", g.add("MatMul", q, k), mask_bias)
            probs = g.add("Softmax", scores, axis=-1)
            ctx = g.add("MatMul", probs, v)
            ctx = g.add("Reshape", g.add("Transpose", ctx, perm=[0, 2, 1, 3]), merged_shape)
        wo, bo = W.linear(f"{p}.attention.output.dense")
        if v_bias is not None:
            bo = (bo + v_bias @ wo).astype(np.float32)
        a = g.add("Add", dense(ctx, f"{p}.attention.output.dense", wo, bo), x)
        x = layer_norm(a, f"{p}.attention.output.LayerNorm")

        tap(x, f"calib.layer.{i}.ffn")
        w1, b1 = W.linear(f"{p}.intermediate.dense")
        w2, b2 = W.linear(f"{p}.output.dense")
        outliers = np.asarray(int8.down_outliers.get(i, []) if int8 is not None else [], np.int64)
        if outliers.size:  # intermediate channels reordered: the fp32 ones first
            order = np.concatenate([outliers, np.setdiff1d(np.arange(w1.shape[1]), outliers)])
            w1, b1, w2 = w1[:, order], b1[order], w2[order]
        xf, (w1,) = smooth(x, f"layer.{i}.ffn", [w1])
        a = g.add("Add", ffn(i, xf, f"{p}.intermediate.dense", w1, b1, f"{p}.output.dense", w2, b2,
                             int(outliers.size)), x)
        x = layer_norm(a, f"{p}.output.LayerNorm")
    return x


def _fused_body(g: _Graph, cfg: BertConfig, W: _Weights) -> str:
    ms = "com.microsoft"
    eps = cfg.layer_norm_eps
    ids = g.add("Cast", "input_ids", to=op.INT32)
    seg = g.add("Cast", "token_type_ids", to=op.INT32)
    mask = g.add("Cast", "attention_mask", to=op.INT32)
    x, _mask_index = g.add(
        "EmbedLayerNormalization", ids, seg,
        *(g.const(n, W(n)) for n in ("embeddings.word_embeddings.weight",
                                      "embeddings.position_embeddings.weight",
                                      "embeddings.token_type_embeddings.weight",
                                      "embeddings.LayerNorm.weight",
                                      "embeddings.LayerNorm.bias")),
        mask, n_out=2, domain=ms, epsilon=eps)

    def skip_layer_norm(h: str, x: str, ln: str, bias_name: str, bias) -> str:
        """LayerNorm(h + bias + x) as one fused op (the dense layer's bias folded in)."""
        return g.add("SkipLayerNormalization", h, x, g.const(ln + ".weight", W(ln + ".weight")),
                     g.const(ln + ".bias", W(ln + ".bias")), g.const(bias_name, bias),
                     domain=ms, epsilon=eps)

    for i in range(cfg.num_layers):
        p = f"encoder.layer.{i}"
        wqkv, bqkv = W.qkv(i)
        # scale=1: the 1/sqrt(head_dim) factor is already folded into Q.
        a = g.add("Attention", x, g.const(f"{p}.qkv.weight_t", wqkv),
                  g.const(f"{p}.qkv.bias", bqkv), mask, domain=ms,
                  num_heads=cfg.num_heads, scale=1.0)
        wo, bo = W.linear(f"{p}.attention.output.dense")
        a = g.add("MatMul", a, g.const(f"{p}.attention.output.dense.weight_t", wo))
        x = skip_layer_norm(a, x, f"{p}.attention.output.LayerNorm",
                            f"{p}.attention.output.dense.bias", bo)
        w1, b1 = W.linear(f"{p}.intermediate.dense")
        h = g.add("MatMul", x, g.const(f"{p}.intermediate.dense.weight_t", w1))
        h = g.add("BiasGelu", h, g.const(f"{p}.intermediate.dense.bias", b1), domain=ms)
        w2, b2 = W.linear(f"{p}.output.dense")
        h = g.add("MatMul", h, g.const(f"{p}.output.dense.weight_t", w2))
        x = skip_layer_norm(h, x, f"{p}.output.LayerNorm", f"{p}.output.dense.bias", b2)
    return x
