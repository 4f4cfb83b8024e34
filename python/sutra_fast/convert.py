"""Convert a Hugging Face BERT-family folder into an ONNX embedding model.

No torch, no `onnx` package: the weights are read from ``model.safetensors``
with numpy (:mod:`sutra_fast.safetensors_io`) and the graph is written as
protobuf by :mod:`sutra_fast.onnx_proto` (so a fresh ``pip install sutra_fast``
can convert the default model; runtime deps stay numpy + onnxruntime).

Source folder (a sentence-transformers model or a plain HF BERT)::

    config.json  model.safetensors  tokenizer.json and/or vocab.txt
    [modules.json  1_Pooling/config.json  sentence_bert_config.json]

Output folder::

    model.onnx              inputs input_ids / attention_mask / token_type_ids
                            (int64 [batch, sequence]), output last_hidden_state
    model.onnx.data         its weights (ONNX external data; ORT memory-maps them:
                            measured 0.15 s instead of 0.34 s to create the
                            session, 107 MB instead of 190 MB peak RSS)
    tokenizer.json|vocab.txt, config.json, modules.json, 1_Pooling/config.json,
    sentence_bert_config.json   (copied when present)
    sutra_manifest.json     model id, dimension, max_length, pooling, normalize,
                            quantize, graph form and version, calibration
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from sutra_fast import onnx_graph, onnx_proto
from sutra_fast._version import __version__
from sutra_fast.model_folder import (  # noqa: F401  (re-exported: public names)
    EXTERNAL_DATA, GRAPH_VERSION, INT8_RECIPE_VERSION, MANIFEST, MANIFEST_FORMAT, POOLING_MODES,
    QUANTIZE_MODES, hub_name_hint, read_json as _read_json, sentence_transformers_settings,
    shared_temp_dir)
from sutra_fast.safetensors_io import SafetensorsFile
from sutra_fast.wordpiece import WordPieceTokenizer

_COPY = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
         "config.json", "modules.json", "sentence_bert_config.json",
         "config_sentence_transformers.json")


def _require(folder: Path, *names: str) -> Path:
    for n in names:
        if (folder / n).is_file():
            return folder / n
    what = " or ".join(names)
    raise FileNotFoundError(f"{what} not found in {folder}")


def _weights(folder: Path):
    if not (folder / "model.safetensors").is_file():
        if (folder / "pytorch_model.bin").is_file():
            raise FileNotFoundError(
                f"model.safetensors not found in {folder} (only pytorch_model.bin, which needs "
                "torch to read; save the model as safetensors first)")
        if (folder / "model.safetensors.index.json").is_file():
            raise ValueError(f"{folder}: sharded safetensors checkpoints are not supported")
        _require(folder, "model.safetensors")
    st = SafetensorsFile(folder / "model.safetensors")
    names = set(st.names())
    prefix = "bert." if "bert.embeddings.word_embeddings.weight" in names else ""
    if prefix + "embeddings.word_embeddings.weight" not in names:
        raise ValueError(f"{folder / 'model.safetensors'}: no BERT embeddings "
                         "(embeddings.word_embeddings.weight) found")

    def get(name: str) -> np.ndarray:
        if prefix + name not in st:
            raise ValueError(f"{folder / 'model.safetensors'}: no tensor {prefix + name!r} "
                             "(is config.json's layer count or layout right?)")
        return st.get(prefix + name)
    return get


def bert_weight_shapes(cfg: onnx_graph.BertConfig) -> dict[str, tuple[int, ...]]:
    """Every checkpoint tensor the graph reads (HF names, no ``bert.`` prefix) and
    the shape config.json implies for it."""
    H, I = cfg.hidden_size, cfg.intermediate_size
    want = {"embeddings.word_embeddings.weight": (cfg.vocab_size, H),
            "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, H),
            "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, H),
            "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(cfg.num_layers):
        b = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            want[b + n + ".weight"], want[b + n + ".bias"] = (H, H), (H,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            want[b + n + ".weight"], want[b + n + ".bias"] = (H,), (H,)
        want[b + "intermediate.dense.weight"], want[b + "intermediate.dense.bias"] = (I, H), (I,)
        want[b + "output.dense.weight"], want[b + "output.dense.bias"] = (H, I), (H,)
    return want


def _check_weights(cfg, weight, path: Path) -> None:
    """Every BERT tensor the graph reads has the shape config.json implies and
    finite values: a mismatch would otherwise convert fine and fail (or give NaN
    vectors) only when the model runs."""
    want = bert_weight_shapes(cfg)
    for name, shape in want.items():
        t = weight(name)
        if tuple(t.shape) != shape:
            raise ValueError(f"{path}: tensor {name!r} has shape {tuple(t.shape)}, but config.json "
                             f"implies {shape}")
        if not np.isfinite(t).all():
            raise ValueError(f"{path}: tensor {name!r} holds NaN or infinite values")


# ------------------------------------------------------------------ convert

def convert(src: str | os.PathLike, dst: str | os.PathLike, *, quantize: Optional[str] = None,
            model_id: Optional[str] = None, form: str = "plain",
            calibration_texts: Optional[Iterable[str]] = None, overwrite: bool = False) -> Path:
    """Convert ``src`` (HF/sentence-transformers BERT folder) into ``dst``.

    Arguments:
        quantize: None (fp32) or ``"int8"`` (see :class:`sutra_fast.onnx_graph.Int8Recipe`).
        model_id: recorded in the manifest (default: the source folder's name).
        form: graph form, ``"plain"`` (default, fastest measured) or the
            alternatives kept for benchmarking (``"plain_qkv"``, ``"fused"``).
        calibration_texts: texts for int8 calibration (default: the packaged data/calibration_texts.txt).
        overwrite: replace an existing ``dst``.

    The folder appears atomically: it is written under a temporary name next
    to ``dst`` and renamed. If another process finished the same ``dst``
    first, its result is kept. Returns ``dst`` as a Path.
    """
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    src, dst = Path(src), Path(dst)
    if src.is_file():
        raise ValueError(f"{src} is a file: pass the model folder that holds it (config.json + "
                         "model.safetensors + tokenizer)")
    if not src.is_dir():
        raise FileNotFoundError(f"source folder {src} not found{hub_name_hint(str(src))}")
    rsrc, rdst = src.resolve(), dst.resolve()
    if rsrc == rdst or rsrc.is_relative_to(rdst):  # overwrite would delete the source
        what = "the source folder" if rsrc == rdst else "a parent of the source folder"
        raise ValueError(f"the output folder {dst} is {what} {src}; choose another output folder")
    if Path.cwd().resolve().is_relative_to(rdst):  # the rename would move the working directory
        raise ValueError(f"the output folder {dst} is the current directory or a parent of it; "
                         "choose a new folder")
    dst = rdst  # "." or "x/.." have no usable name for the temp folder beside them
    if dst.exists():
        if not overwrite:
            raise FileExistsError(f"{dst} already exists (pass overwrite=True, or --overwrite on "
                                  "the command line, to replace it)")
        _check_replaceable(dst)
    cfg_path = _require(src, "config.json")
    cfg_dict = _read_json(cfg_path)
    cfg = onnx_graph.BertConfig.from_dict(cfg_dict, source=str(cfg_path))
    tok_path = _require(src, "tokenizer.json", "vocab.txt")
    # Parse it now: a damaged tokenizer would otherwise be copied and only fail at load.
    tokenizer = WordPieceTokenizer.from_file(tok_path)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise ValueError(f"{tok_path} has {tokenizer.vocab_size} tokens but {cfg_path} says "
                         f"vocab_size {cfg.vocab_size}: they do not belong together")
    weight = _weights(src)
    _check_weights(cfg, weight, src / "model.safetensors")
    st_settings = sentence_transformers_settings(src)
    max_length = st_settings["max_length"] or min(cfg.max_position_embeddings, 512)
    if max_length > cfg.max_position_embeddings:
        raise ValueError(f"max_seq_length {max_length} exceeds the model's "
                         f"max_position_embeddings {cfg.max_position_embeddings}")
    # Made before the graph is built, so an output that cannot be written fails in a
    # moment; after the source checks, so a bad source makes no folders.
    tmp = _temp_beside(dst)
    try:
        calibration = None
        int8 = None
        if quantize == "int8":
            int8, calibration = _int8_recipe(cfg, weight, tok_path, max_length,
                                             calibration_texts)
        external = onnx_proto.ExternalData(EXTERNAL_DATA)
        model_bytes = onnx_graph.build_bert(cfg, weight, form=form, int8=int8, external=external)
        manifest = {
            "format": MANIFEST_FORMAT,
            "model_id": model_id or src.resolve().name,
            "architecture": cfg_dict.get("model_type", "bert"),
            "dimension": cfg.hidden_size,
            "max_length": int(max_length),
            "pooling": st_settings["pooling"],
            "normalize": bool(st_settings["normalize"]),
            "quantize": quantize,
            "graph_form": form,
            "graph_version": GRAPH_VERSION,
            "calibration": calibration,
            "converted_by": f"sutra_fast {__version__}",
        }
        (tmp / "model.onnx").write_bytes(model_bytes)
        external.write(tmp / EXTERNAL_DATA)
        del model_bytes, external
        for name in _COPY:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        pool_cfg = src / st_settings["pooling_dir"] / "config.json"
        if pool_cfg.is_file():
            (tmp / st_settings["pooling_dir"]).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pool_cfg, tmp / st_settings["pooling_dir"] / "config.json")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(tmp, dst, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dst


def _temp_beside(dst: Path) -> Path:
    """The temp folder the output is written in, beside ``dst``; an OSError naming
    the output when it cannot be made (an unwriteable place, a parent that is a file)."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        return shared_temp_dir(dst.parent, f".{dst.name}.tmp-")
    except OSError as e:
        above = next((p for p in dst.parents if p.exists()), None)
        why = f"{above} is a file" if above is not None and not above.is_dir() else e.strerror or e
        raise OSError(e.errno, f"cannot write the output folder {dst} ({why}); choose "
                               "another output folder") from None


def _check_replaceable(dst: Path) -> None:
    """``overwrite`` replaces only an earlier output: a folder holding nothing but
    what a conversion writes (a damaged one included). Anything else is refused,
    since it is deleted: a file, or a folder with other content."""
    if not dst.is_dir():
        raise ValueError(f"{dst} is a file, not an earlier conversion; overwrite replaces only "
                         "an output folder of sutra-fast convert: choose another output folder")
    ours = {*_COPY, "model.onnx", EXTERNAL_DATA, MANIFEST}
    foreign = [p.name for p in dst.iterdir()
               if not (p.name in ours and p.is_file()
                       or p.is_dir() and {q.name for q in p.iterdir()} <= {"config.json"})]
    if foreign:
        raise ValueError(f"{dst} holds files that sutra-fast convert does not write "
                         f"({', '.join(sorted(foreign)[:5])}); overwrite replaces only an "
                         "earlier output: choose another output folder or empty this one")


def _publish(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``dst``; keep a complete ``dst`` another process made first."""
    if overwrite and dst.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        os.replace(dst, old / "x")
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, dst)
    except OSError:
        # dst appeared meanwhile (a concurrent conversion): keep it if complete.
        if not (dst / MANIFEST).is_file():
            raise


def _int8_recipe(cfg, weight, tok_path: Path, max_length: int, texts):
    from sutra_fast import calibrate
    from sutra_fast.wordpiece import WordPieceTokenizer

    tokenizer = WordPieceTokenizer.from_file(tok_path)
    calib_model = onnx_graph.build_bert(cfg, weight, calibration_outputs=True)
    maxima, source = calibrate.activation_maxima(
        calib_model, tokenizer, cfg.vocab_size, max_length,
        None if texts is None else list(texts))
    del calib_model
    W = onnx_graph._Weights(cfg, weight)
    rows = {}
    for i in range(cfg.num_layers):
        rows[f"layer.{i}.attn"] = np.abs(W.qkv(i)[0]).max(axis=1)
        rows[f"layer.{i}.ffn"] = np.abs(W.linear(f"encoder.layer.{i}.intermediate.dense")[0]).max(axis=1)
    k = onnx_graph.Int8Recipe.DOWN_OUTLIERS
    outliers = {i: np.sort(np.argsort(-maxima[f"calib.layer.{i}.down"], kind="stable")[:k])
                for i in range(cfg.num_layers)}
    recipe = onnx_graph.Int8Recipe(smooth=calibrate.smoothing_factors(maxima, rows),
                                   down_outliers=outliers)
    return recipe, {"recipe_version": INT8_RECIPE_VERSION, "source": source,
                    "alpha": calibrate.ALPHA, "down_fp32_channels": k}
