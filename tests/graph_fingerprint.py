"""Fingerprints of the graphs sutra_fast.convert writes, for the graph-version guard.

A cached conversion is reused as long as its folder name matches
(``model_folder.cache_suffix``: GRAPH_VERSION, INT8_RECIPE_VERSION), so a change
to the graph needs a version bump. tests/test_graph_version.py compares the
fingerprints of today's graphs with the ones recorded per version in
tests/data/graph_fingerprints.json; tools/record_graph_fingerprint.py records
them.

A fingerprint is the sha256 of the graph's structure: opsets, inputs/outputs,
nodes in order (domain, op type, input/output names, attributes) and
initializers (name, dtype, shape). The values of initializers are included
only for the constants (shapes, the mask value, GELU's factors, zero points):
the tensors that come out equal from two random-weight models. Weight values
are left out, and with them everything that depends on the machine (the int8
calibration runs ONNX Runtime); float attributes are float32 in the file, so
their Python repr is the same everywhere.

Graphs: tiny random-weight BERTs (2 layers, hidden 32, intermediate 128, so the
int8 graph keeps its 64 fp32 outlier channels apart) with each documented
activation, converted by the real ``convert()`` in fp32 and int8 (the packaged
calibration texts), i.e. the plain form that the cache holds.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "data" / "graph_fingerprints.json"
RECORD_COMMAND = "PYTHONPATH=python python tools/record_graph_fingerprint.py"
ACTIVATIONS = ("gelu", "gelu_new", "relu")   # the README's supported hidden_act values
SEEDS = (1, 2)
_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz",
          "the", "of", "and", "to", "is", "##s", "##ed", "##ing"]


def tiny_bert_folder(folder: Path, *, seed: int, hidden_act: str = "gelu") -> Path:
    """A HF BERT folder (config.json, vocab.txt, model.safetensors) with random weights."""
    from safetensors.numpy import save_file

    from sutra_fast.convert import bert_weight_shapes
    from sutra_fast.onnx_graph import BertConfig

    H, I, L, P = 32, 128, 2, 64
    cfg = {"model_type": "bert", "hidden_size": H, "num_hidden_layers": L,
           "num_attention_heads": 4, "intermediate_size": I, "vocab_size": len(_VOCAB),
           "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
           "hidden_act": hidden_act}
    rng = np.random.default_rng(seed)
    shapes = bert_weight_shapes(BertConfig.from_dict(cfg))
    weights = {n: (rng.standard_normal(s) * 0.2 + n.endswith("LayerNorm.weight")).astype(np.float32)
               for n, s in shapes.items()}
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(_VOCAB) + "\n", encoding="utf-8")
    save_file(weights, str(folder / "model.safetensors"))
    return folder


def _tensor(t) -> tuple[list, str]:
    """([name, dtype, dims], sha256 of the values) of a TensorProto."""
    from onnx import numpy_helper

    values = np.ascontiguousarray(numpy_helper.to_array(t))
    return [t.name, t.data_type, list(t.dims)], hashlib.sha256(values.tobytes()).hexdigest()


def _structure(model) -> tuple[dict, dict[str, str]]:
    """(the graph's structure as JSON-able data, value hash of each initializer)."""
    import onnx

    def value_info(v):
        t = v.type.tensor_type
        return [v.name, t.elem_type, [d.dim_param or d.dim_value for d in t.shape.dim]]

    def attribute(a):
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, onnx.TensorProto):
            v = _tensor(v)
        return [a.name, a.type, v]

    g = model.graph
    inits = {t.name: _tensor(t) for t in g.initializer}
    structure = {
        "ir_version": model.ir_version,
        "opsets": sorted([o.domain, o.version] for o in model.opset_import),
        "inputs": [value_info(v) for v in g.input],
        "outputs": [value_info(v) for v in g.output],
        "nodes": [[n.domain, n.op_type, list(n.input), list(n.output),
                   sorted(attribute(a) for a in n.attribute)] for n in g.node],
        "initializers": sorted(head for head, _ in inits.values()),
    }
    return structure, {name: digest for name, (_, digest) in inits.items()}


def _fingerprint(models_by_seed: list[list]) -> dict:
    """{"sha256", "ops"} of the same graphs converted from each seed's weights."""
    per_seed = [[_structure(m) for m in models] for models in models_by_seed]
    graphs = []
    for k, (structure, values) in enumerate(per_seed[0]):
        for other, other_values in (seed[k] for seed in per_seed[1:]):
            if other != structure:  # the fingerprint could then differ between machines
                raise AssertionError("the graph's structure depends on the weight values; "
                                     "graph_fingerprint cannot describe it")
            # equal whatever the weights: a constant, whose value belongs to the graph
            values = {n: v for n, v in values.items() if other_values[n] == v}
        graphs.append({**structure, "constants": values})
    text = json.dumps(graphs, sort_keys=True, separators=(",", ":"))
    ops = Counter(n[1] for s, _ in per_seed[0] for n in s["nodes"])
    return {"sha256": hashlib.sha256(text.encode()).hexdigest(), "ops": dict(sorted(ops.items()))}


def current(workdir: Path) -> dict:
    """Fingerprints of today's graphs: ``{"fp32": {...}, "int8": {...}}``."""
    import onnx

    from sutra_fast.convert import convert

    models = {"fp32": [[] for _ in SEEDS], "int8": [[] for _ in SEEDS]}   # [seed][graph]
    for i, seed in enumerate(SEEDS):
        for act in ACTIVATIONS:
            src = tiny_bert_folder(workdir / f"src-{act}-{seed}", seed=seed, hidden_act=act)
            for q, by_seed in models.items():
                out = convert(src, workdir / f"{q}-{act}-{seed}", quantize=None if q == "fp32" else q)
                by_seed[i].append(onnx.load(str(out / "model.onnx")))
    return {q: _fingerprint(by_seed) for q, by_seed in models.items()}


def keys() -> dict[str, str]:
    """The record's key of each graph: the versions its cache entries are named by."""
    from sutra_fast.model_folder import GRAPH_VERSION, INT8_RECIPE_VERSION

    return {"fp32": f"g{GRAPH_VERSION}", "int8": f"g{GRAPH_VERSION}-int8r{INT8_RECIPE_VERSION}"}


def load_record(path: Path = RECORD) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def problems(now: dict, record: dict) -> list[str]:
    """What is wrong between today's fingerprints and the record, each with its fix."""
    out = []
    changed = {q for q, key in keys().items()
               if key in record.get(q, {}) and record[q][key]["sha256"] != now[q]["sha256"]}
    for q, key in keys().items():
        if key not in record.get(q, {}):
            out.append(f"no fingerprint of the {q} graph is recorded for {key} in "
                       f"{RECORD.relative_to(ROOT)}: record it with `{RECORD_COMMAND}`")
        elif q in changed:
            # A graph change shows in both graphs; one only the int8 graph shows is the recipe's.
            bump = "GRAPH_VERSION" if "fp32" in changed else "INT8_RECIPE_VERSION"
            was, now_ops = Counter(record[q][key]["ops"]), Counter(now[q]["ops"])
            ops = ", ".join(f"{op} {was[op]} -> {now_ops[op]}" for op in sorted(was | now_ops)
                            if was[op] != now_ops[op]) or "same op counts"
            out.append(
                f"the {q} graph differs from the one recorded for {key} ({ops}). Cached "
                f"conversions are reused by their name, which only the versions change: bump "
                f"{bump} in python/sutra_fast/model_folder.py, then record the new fingerprint "
                f"with `{RECORD_COMMAND}` (and say in the README what the new version changed). "
                f"Only if the change cannot alter any converted model's output (e.g. a renamed "
                f"tensor), re-record the same version instead: `{RECORD_COMMAND} --replace`.")
    return out
