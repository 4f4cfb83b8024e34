"""What a model folder says about itself: the sutra_fast manifest's constants and
the sentence-transformers settings (pooling, normalisation, max length).

Kept apart from :mod:`sutra_fast.convert` so that loading an already converted
model imports none of the graph-building code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

MANIFEST = "sutra_manifest.json"
EXTERNAL_DATA = "model.onnx.data"  # weights beside the graph (memory-mapped by ORT)
MANIFEST_FORMAT = "sutra_fast.embedding/1"
QUANTIZE_MODES = (None, "int8")
POOLING_MODES = ("mean", "cls", "max")
# Versions of what a conversion writes; both are part of a cached conversion's
# folder name, so conversions made by an older sutra_fast are not reused.
# GRAPH_VERSION: the graph onnx_graph.build_bert writes (fp32 and int8 alike).
# INT8_RECIPE_VERSION: the int8 recipe on top of it (2: fused Q/K/V; FFN-down
# dynamic int8 with its outlier channels in fp32, no MatMulNBits; 3: activations
# quantised per row instead of per ORT call, so vectors do not depend on batching).
# tests/test_graph_version.py fails when the graph changes without a bump (its
# message says what to bump and how to record the new graph).
GRAPH_VERSION = 1
INT8_RECIPE_VERSION = 3


def cache_suffix(quantize) -> str:
    """Suffix of a cached conversion's folder name: ``-g<GRAPH_VERSION>`` from
    graph version 2 on, then ``-int8r<INT8_RECIPE_VERSION>`` for int8. Version
    1's entries ("", "-int8r3") predate the graph version and keep their names,
    so the caches of existing installs stay valid."""
    graph = f"-g{GRAPH_VERSION}" if GRAPH_VERSION > 1 else ""
    return graph + (f"-{quantize}r{INT8_RECIPE_VERSION}" if quantize == "int8" else "")


def hub_name_hint(text: str) -> str:
    """What to do instead, when a missing path looks like a model hub name ("org/model")."""
    if text.startswith(("/", ".", "~")) or text.count("/") != 1:
        return ""
    return ("; sutra_fast does not download models by name: pass a local folder (a Hugging "
            "Face model folder: config.json + model.safetensors + tokenizer); the default "
            "model, all-MiniLM-L6-v2, needs no path")


def shared_temp_dir(parent: Path, prefix: str) -> Path:
    """A new folder in ``parent`` with the mode a plain mkdir gives (umask
    applied): mkdtemp makes it 0700, and a cache built by one user (an image
    built as root) must stay readable by the user who serves from it."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def read_json(path: Path):
    """A JSON file of the model folder; damage is a ValueError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None


def read_json_object(path: Path) -> dict:
    """read_json, and the file must hold a JSON object."""
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_manifest(folder: Path) -> dict:
    """The folder's sutra_manifest.json ({} when it has none), with the keys the
    embedder uses checked: a hand-edited value is a ValueError naming the file and
    key instead of a KeyError or a wrong vector later."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    m = read_json_object(path)

    def positive_int(v, least):
        return isinstance(v, int) and not isinstance(v, bool) and v >= least

    checks = {
        "model_id": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        "dimension": (lambda v: positive_int(v, 1), "an integer >= 1"),
        "max_length": (lambda v: positive_int(v, 2), "an integer >= 2 (room for [CLS] and [SEP])"),
        "pooling": (lambda v: v in POOLING_MODES, "one of " + ", ".join(POOLING_MODES)),
        "normalize": (lambda v: isinstance(v, bool), "true or false"),
        "quantize": (lambda v: v in QUANTIZE_MODES, "null or \"int8\""),
    }
    for key, (ok, expected) in checks.items():
        if key in m and m[key] is not None and not ok(m[key]):
            raise ValueError(f"{path}: {key!r} must be {expected}, got {m[key]!r:.40} (the file "
                             "is written by sutra-fast convert: convert the model again)")
    return m


def sentence_transformers_settings(folder: str | os.PathLike) -> dict:
    """Pooling, normalisation and max length the way sentence-transformers reads them.

    Returns ``{"pooling", "normalize", "max_length", "pooling_dir"}``;
    ``max_length`` is None when the folder does not say (no sentence_bert_config.json).
    """
    folder = Path(folder)
    pooling_dir, normalize = "1_Pooling", None
    modules_path = folder / "modules.json"
    if modules_path.is_file():
        modules = read_json(modules_path)
        if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
            raise ValueError(f"{modules_path}: expected a JSON list of module objects")
        types = [str(m.get("type", "")) for m in modules]
        normalize = any(t.endswith(".Normalize") for t in types)
        for m in modules:
            t = str(m.get("type", ""))
            if t.endswith(".Pooling"):
                pooling_dir = m.get("path") or pooling_dir
            elif not (t.endswith(".Transformer") or t.endswith(".Normalize")):
                raise ValueError(f"{modules_path}: unsupported sentence-transformers module {t!r} "
                                 "(supported: Transformer, Pooling, Normalize)")
    pooling = "mean"
    pool_cfg_path = folder / pooling_dir / "config.json"
    if pool_cfg_path.is_file():
        pc = read_json_object(pool_cfg_path)
        mode = pc.get("pooling_mode")
        if mode is None:
            on = [k for k in ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens",
                              "weightedmean_tokens", "lasttoken") if pc.get("pooling_mode_" + k)]
            if len(on) != 1:
                raise ValueError(f"{pool_cfg_path}: expected exactly one pooling mode, got {on}")
            mode = on[0]
        mode = {"cls_token": "cls", "mean_tokens": "mean", "max_tokens": "max"}.get(mode, mode)
        if mode not in POOLING_MODES:
            raise ValueError(f"{pool_cfg_path}: unsupported pooling mode {mode!r} "
                             f"(supported: {', '.join(POOLING_MODES)})")
        pooling = mode
    max_length = None
    sbc = folder / "sentence_bert_config.json"
    if sbc.is_file():
        v = read_json_object(sbc).get("max_seq_length")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
            raise ValueError(f"{sbc}: max_seq_length must be an integer >= 2 (room for [CLS] "
                             f"and [SEP]), got {v!r:.40}")
        max_length = v or None
    return {"pooling": pooling, "normalize": True if normalize is None else normalize,
            "max_length": max_length, "pooling_dir": pooling_dir}
