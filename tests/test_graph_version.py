"""GRAPH_VERSION / INT8_RECIPE_VERSION: a graph change cannot land without a bump,
and a bump names new cache entries (today's names unchanged, older ones kept)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import graph_fingerprint as gf
from sutra_fast import convert as convert_module, model_folder, onnx_graph
from sutra_fast.embedder import Embedder


@pytest.fixture(scope="module")
def now(tmp_path_factory):
    return gf.current(tmp_path_factory.mktemp("graphs"))


def test_graph_changes_come_with_a_version_bump(now):
    """Change-detector: the recorded fingerprints (tests/data/graph_fingerprints.json)
    are today's graphs. On failure, the message says which version to bump and the
    command that records the new graph."""
    problems = gf.problems(now, gf.load_record())
    assert not problems, "\n".join(problems)


def _gelu_half_as_0_49(monkeypatch):
    # a constant both graphs hold (the int8 one has no additive mask since recipe 3)
    const = onnx_graph._Graph.const
    monkeypatch.setattr(onnx_graph._Graph, "const", lambda g, name, a: const(
        g, name, np.float32(0.49) if name.endswith("_half") else a))


@pytest.mark.parametrize("change, bump", [
    # an op changed (the tanh GELU for the erf one): both graphs change
    (lambda mp: mp.setitem(onnx_graph._ACTIVATIONS, "gelu", onnx_graph._gelu_tanh), "GRAPH_VERSION"),
    (_gelu_half_as_0_49, "GRAPH_VERSION"),   # a constant's value, same structure
    (lambda mp: mp.setattr(onnx_graph.Int8Recipe, "DOWN_OUTLIERS", 32), "INT8_RECIPE_VERSION"),
], ids=["op", "constant", "int8-recipe"])
def test_the_guard_sees_a_changed_graph_and_names_the_bump(tmp_path, monkeypatch, now, change,
                                                           bump):
    record = {q: {key: now[q]} for q, key in gf.keys().items()}
    change(monkeypatch)
    problems = gf.problems(gf.current(tmp_path), record)
    changed = ["fp32", "int8"] if bump == "GRAPH_VERSION" else ["int8"]
    assert [p.split(" graph ")[0] for p in problems] == [f"the {q}" for q in changed]
    for p in problems:
        assert f"bump {bump} in python/sutra_fast/model_folder.py" in p
        assert f"`{gf.RECORD_COMMAND}`" in p


def test_weight_values_do_not_change_the_fingerprint(tmp_path, monkeypatch, now):
    # Other random weights stand for another machine's calibration and rounding.
    monkeypatch.setattr(gf, "SEEDS", (7, 8))
    assert gf.current(tmp_path) == now


def test_a_version_without_a_record_says_to_record_it(now, monkeypatch):
    monkeypatch.setattr(model_folder, "GRAPH_VERSION", 2)
    monkeypatch.setattr(model_folder, "INT8_RECIPE_VERSION", 2)
    problems = gf.problems(now, {"fp32": {"g1": now["fp32"]}, "int8": {"g1-int8r2": now["int8"]}})
    assert problems == [f"no fingerprint of the {q} graph is recorded for {key} in "
                        f"tests/data/graph_fingerprints.json: record it with `{gf.RECORD_COMMAND}`"
                        for q, key in (("fp32", "g2"), ("int8", "g2-int8r2"))]


# ------------------------------------------------------------ cache names

@pytest.mark.parametrize("version, fp32, int8", [
    (1, "", "-int8r2"),          # the names of the caches installs have today
    (2, "-g2", "-g2-int8r2"),
])
def test_cache_suffix(monkeypatch, version, fp32, int8):
    monkeypatch.setattr(model_folder, "INT8_RECIPE_VERSION", 2)
    monkeypatch.setattr(model_folder, "GRAPH_VERSION", version)
    assert (model_folder.cache_suffix(None), model_folder.cache_suffix("int8")) == (fp32, int8)


def _bump_graph_version(monkeypatch) -> int:
    """The next GRAPH_VERSION, as a later sutra_fast would have it."""
    version = model_folder.GRAPH_VERSION + 1
    monkeypatch.setattr(model_folder, "GRAPH_VERSION", version)
    monkeypatch.setattr(convert_module, "GRAPH_VERSION", version)
    return version


def test_a_new_graph_version_converts_a_hf_folder_again_and_keeps_the_old_entries(
        tmp_path, monkeypatch):
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    src = gf.tiny_bert_folder(tmp_path / "tiny", seed=1)
    old = [Embedder.load(src, quantize=q) for q in (None, "int8")]
    stem = old[0].folder.name.removesuffix(model_folder.cache_suffix(None))
    was = model_folder.GRAPH_VERSION
    v = _bump_graph_version(monkeypatch)
    new = [Embedder.load(src, quantize=q) for q in (None, "int8")]
    r = model_folder.INT8_RECIPE_VERSION
    assert [e.folder.name for e in new] == [f"{stem}-g{v}", f"{stem}-g{v}-int8r{r}"]
    for e, version in ((old[0], was), (old[1], was), (new[0], v), (new[1], v)):
        assert json.loads((e.folder / model_folder.MANIFEST).read_text())["graph_version"] == version
        assert e.embed(["the cat"]).shape == (1, 32)
    models = tmp_path / "cache" / "models"
    assert sorted(p.name for p in models.iterdir() if not p.name.startswith(".")) == \
        sorted(e.folder.name for e in old + new)


def test_a_new_graph_version_converts_the_default_model_again(tmp_path, monkeypatch):
    """Into all-MiniLM-L6-v2-g<N>; the older entry stays for the sutra_fast that uses it."""
    from sutra_fast.default_model import ensure_default_model

    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "cache" / "models"
    old = models / ("all-MiniLM-L6-v2" + model_folder.cache_suffix(None))
    old.mkdir(parents=True)
    (old / model_folder.MANIFEST).write_text("{}")
    converted = []

    def convert(src, dst, **kw):   # the real one is tested on the default model elsewhere
        dst.mkdir()
        (dst / model_folder.MANIFEST).write_text("{}")
        converted.append(dst.name)
    monkeypatch.setattr(convert_module, "convert", convert)
    assert ensure_default_model() == old
    assert converted == []
    v, r = _bump_graph_version(monkeypatch), model_folder.INT8_RECIPE_VERSION
    assert ensure_default_model() == models / f"all-MiniLM-L6-v2-g{v}"
    assert ensure_default_model("int8") == models / f"all-MiniLM-L6-v2-g{v}-int8r{r}"
    assert converted == [f"all-MiniLM-L6-v2-g{v}", f"all-MiniLM-L6-v2-g{v}-int8r{r}"]
    assert (old / model_folder.MANIFEST).is_file()
