"""Torch-free conversion: protobuf writer, safetensors reader, graph vs transformers."""
from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnx.helper as oh
import onnxruntime as ort
import pytest

from sutra_fast import onnx_proto
from sutra_fast.convert import MANIFEST, convert, sentence_transformers_settings
from sutra_fast.embedder import Embedder
from sutra_fast.safetensors_io import SafetensorsFile


# ----------------------------------------------------------- protobuf writer

def test_tensor_proto_matches_onnx_helper():
    for arr in (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([-5, 0, 7], np.int64),
                np.array(2.5, np.float32), np.array([[-128, 127]], np.int8),
                np.zeros((0, 3), np.float32), np.array([1, 255], np.uint8)):
        ours = onnx.TensorProto()
        ours.ParseFromString(onnx_proto.tensor("t", arr))
        assert ours.name == "t"
        assert list(ours.dims) == list(arr.shape)
        assert ours.data_type == oh.np_dtype_to_tensor_dtype(arr.dtype)
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(ours), arr)


def test_attribute_and_node_proto_match_onnx_helper():
    ours = onnx.NodeProto()
    ours.ParseFromString(onnx_proto.node("Foo", ["a", "b"], ["c"], name="n", domain="com.x",
                                         i=-3, f=0.5, s="hi", ints=[1, -2, 3], floats=[0.25, 1.0]))
    ref = oh.make_node("Foo", ["a", "b"], ["c"], name="n", domain="com.x",
                       i=-3, f=0.5, s="hi", ints=[1, -2, 3], floats=[0.25, 1.0])
    ref.attribute.sort(key=lambda a: a.name)
    assert ours == ref


def test_value_info_with_symbolic_dims():
    ours = onnx.ValueInfoProto()
    ours.ParseFromString(onnx_proto.value_info("x", onnx_proto.INT64, ["batch", 7]))
    assert ours == oh.make_tensor_value_info("x", onnx.TensorProto.INT64, ["batch", 7])


def test_converted_model_passes_onnx_checker(converted):
    # Weights live in model.onnx.data (external data), the graph in a small model.onnx.
    assert (converted / "model.onnx").stat().st_size < 1_000_000
    model = onnx.load(str(converted / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    ins = {i.name: i for i in model.graph.input}
    assert set(ins) == {"input_ids", "attention_mask", "token_type_ids"}
    for vi in ins.values():
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in vi.type.tensor_type.shape.dim] == ["batch", "sequence"]
    (out,) = model.graph.output
    assert out.name == "last_hidden_state"
    dims = out.type.tensor_type.shape.dim
    assert [dims[0].dim_param, dims[1].dim_param, dims[2].dim_value] == ["batch", "sequence", 384]


# -------------------------------------------------------- safetensors reader

def test_safetensors_reader_matches_package(source_dir):
    from safetensors.numpy import load_file

    ref = load_file(str(source_dir / "model.safetensors"))
    ours = SafetensorsFile(source_dir / "model.safetensors")
    assert set(ours.names()) == set(ref)
    for name, arr in ref.items():
        np.testing.assert_array_equal(ours.get(name), arr)


def test_safetensors_reader_dtypes(tmp_path):
    import torch
    from safetensors.torch import save_file

    t = {"f16": torch.tensor([1.5, -2.0], dtype=torch.float16),
         "bf16": torch.tensor([[3.140625, -0.5]], dtype=torch.bfloat16),
         "i64": torch.tensor([-1, 2**40]), "u8": torch.tensor([0, 255], dtype=torch.uint8)}
    save_file(t, str(tmp_path / "x.safetensors"))
    f = SafetensorsFile(tmp_path / "x.safetensors")
    for name, v in t.items():
        got = f.get(name)
        want = v.float().numpy() if name == "bf16" else v.numpy()
        np.testing.assert_array_equal(got, want)
    assert f.get("bf16").dtype == np.float32


def test_safetensors_reader_rejects_garbage(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(ValueError, match="not a safetensors file"):
        SafetensorsFile(tmp_path / "bad.safetensors")
    (tmp_path / "short.safetensors").write_bytes(b"abc")
    with pytest.raises(ValueError, match="too short"):
        SafetensorsFile(tmp_path / "short.safetensors")
    # malformed entries: were KeyError / numpy errors from get()
    for header, match in ((b"[1, 2]", "header is not a JSON object"),
                          (b'{"w": {"shape": [1], "data_offsets": [0, 4]}}', "'w' is malformed: it has no dtype"),
                          (b'{"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 4]}}',
                           "'w': shape must be a list of non-negative integers"),
                          (b'{"w": "x"}', "'w' is malformed")):
        (tmp_path / "m.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 4)
        with pytest.raises(ValueError, match=match):
            SafetensorsFile(tmp_path / "m.safetensors")


# ------------------------------------------------------- graph vs transformers

def _hf_inputs(source_dir, texts):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(source_dir / "tokenizer.json"))
    tok.no_truncation()
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    return {"input_ids": np.array([e.ids for e in enc], np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}


@pytest.fixture(scope="module")
def hf_hidden(source_dir, texts):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(source_dir)).eval()
    sample = texts[:24] + texts[-2:]           # short sentences and two > 256-token paragraphs
    feed = _hf_inputs(source_dir, sample)
    feed = {k: v[:, :300] for k, v in feed.items()}  # positions past 256 too
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).last_hidden_state
    return feed, out.numpy()


@pytest.mark.parametrize("form", ["plain", "plain_qkv", "fused"])
def test_hidden_states_match_transformers(form, converted, source_dir, hf_hidden, tmp_path):
    feed, want = hf_hidden
    if form == "plain":
        path = converted / "model.onnx"
    else:
        path = convert(source_dir, tmp_path / form, form=form) / "model.onnx"
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["last_hidden_state"], feed)[0]
    valid = feed["attention_mask"].astype(bool)
    assert np.abs(got - want)[valid].max() < 2e-4


def test_manifest_and_copied_files(converted, source_dir):
    m = json.loads((converted / MANIFEST).read_text())
    # Expected values from the model's own sentence-transformers configs.
    sbc = json.loads((source_dir / "sentence_bert_config.json").read_text())
    cfg = json.loads((source_dir / "config.json").read_text())
    assert m["max_length"] == sbc["max_seq_length"] == 256
    assert m["dimension"] == cfg["hidden_size"]
    assert m["pooling"] == "mean" and m["normalize"] is True
    assert m["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert m["quantize"] is None
    for name in ("tokenizer.json", "vocab.txt", "modules.json", "1_Pooling/config.json"):
        assert (converted / name).read_bytes() == (source_dir / name).read_bytes()
    assert not list(converted.parent.glob(".*tmp*"))


def test_int8_manifest(converted_int8):
    m = json.loads((converted_int8 / MANIFEST).read_text())
    assert m["quantize"] == "int8"
    assert m["calibration"]["source"].startswith("264 texts (data/calibration_texts.txt")
    model = onnx.load(str(converted_int8 / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    # Per layer: one Q/K/V MatMul, attention output, FFN-up (two parts), FFN-down in int8; the
    # FFN-down's outlier channels in one small fp32 MatMul; the attention in one node.
    assert ops.count("MatMulIntegerToFloat") == 6 * 5
    assert ops.count("MatMul") == 6
    assert ops.count("MultiHeadAttention") == 6 and "Softmax" not in ops
    # Activations quantised per row, each input once: Q/K/V's, attention output's, the
    # two FFN-up parts' shared one, FFN-down's (recipe 3; 2 had DynamicQuantizeMatMul).
    assert ops.count("QuantizeLinear") == 6 * 4
    assert "MatMulNBits" not in ops and "DynamicQuantizeMatMul" not in ops
    assert {o.domain: o.version for o in model.opset_import}[""] == 21


# ------------------------------------------------------------------ errors

def _copy_model(source_dir, dst, skip=()):
    dst.mkdir()
    for p in source_dir.rglob("*"):
        rel = p.relative_to(source_dir)
        if p.is_file() and str(rel) not in skip:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            if p.name == "model.safetensors":
                (dst / rel).symlink_to(p)
            else:
                shutil.copyfile(p, dst / rel)
    return dst


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file_is_named(missing, source_dir, tmp_path):
    src = _copy_model(source_dir, tmp_path / "src", skip={missing})
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_tokenizer_is_named(source_dir, tmp_path):
    src = _copy_model(source_dir, tmp_path / "src", skip={"tokenizer.json", "vocab.txt"})
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json or vocab\.txt"):
        convert(src, tmp_path / "out")


def test_pytorch_bin_only_is_explained(source_dir, tmp_path):
    src = _copy_model(source_dir, tmp_path / "src", skip={"model.safetensors"})
    (src / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="needs torch"):
        convert(src, tmp_path / "out")


def test_unsupported_model_type(source_dir, tmp_path):
    src = _copy_model(source_dir, tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"] = "llama"
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="model_type 'llama'"):
        convert(src, tmp_path / "out")


def test_existing_destination(converted, source_dir):
    with pytest.raises(FileExistsError):
        convert(source_dir, converted)
    with pytest.raises(ValueError, match="quantize"):
        convert(source_dir, converted.parent / "x", quantize="int4")


def test_unwriteable_destination_fails_before_the_work(source_dir, tmp_path, monkeypatch):
    import sutra_fast.convert as conv

    def never(*a, **k):
        raise AssertionError("the graph was built for an output that cannot be written")
    monkeypatch.setattr(conv.onnx_graph, "build_bert", never)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OSError, match=r"cannot write the output folder .*afile is a file"):
        convert(source_dir, tmp_path / "afile" / "sub" / "out")
    with pytest.raises(OSError, match="cannot write the output folder /proc/x"):
        convert(source_dir, "/proc/x")
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]   # no temp folder left
    bad = tmp_path / "bad"   # a bad source: refused before any output folder is made
    bad.mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        convert(bad, tmp_path / "new" / "out")
    assert not (tmp_path / "new").exists()


def test_a_model_name_is_not_downloaded(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not download models by name"):
        convert("BAAI/bge-small-en-v1.5", tmp_path / "out")


def test_overwrite_never_deletes_the_source(source_dir, tmp_path):
    """convert SRC SRC --overwrite (or a parent of SRC) used to replace the
    source folder with the output: the weights were gone."""
    (tmp_path / "m").mkdir()
    src = _copy_model(source_dir, tmp_path / "m" / "src")
    before = sorted(p.name for p in src.iterdir())
    for dst in (src, src.parent, tmp_path / "m" / "src" / ".." / "src"):
        with pytest.raises(ValueError, match="choose another output folder"):
            convert(src, dst, overwrite=True)
    assert sorted(p.name for p in src.iterdir()) == before


def test_overwrite_replaces_only_an_earlier_output(source_dir, tmp_path, monkeypatch):
    """--overwrite used to delete whatever was at DST: a project folder, a file."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "notes.txt").write_text("important")
    (project / "sub" / "code.py").write_text("x = 1")
    results = tmp_path / "out.jsonl"
    results.write_text("{}\n")
    for dst, match in ((project, r"holds files .*notes\.txt, sub"), (results, "is a file")):
        with pytest.raises(ValueError, match=match):
            convert(source_dir, dst, overwrite=True)
    assert (project / "notes.txt").read_text() == "important"
    assert (project / "sub" / "code.py").is_file() and results.read_text() == "{}\n"
    # the working directory (".") cannot be replaced
    monkeypatch.chdir(project)
    with pytest.raises(ValueError, match="current directory"):
        convert(source_dir, ".", overwrite=True)
    with pytest.raises(ValueError, match="is a file: pass the model folder"):
        convert(source_dir / "model.safetensors", tmp_path / "x")


def test_overwrite_replaces_an_earlier_or_damaged_output(source_dir, tmp_path):
    out = tmp_path / "out"
    convert(source_dir, out)
    (out / "sutra_manifest.json").unlink()          # damaged: still only convert's files
    (out / "model.onnx.data").write_bytes(b"junk")
    convert(source_dir, out, overwrite=True)
    assert (out / "sutra_manifest.json").is_file()
    assert Embedder.load(out).embed("a text").shape == (1, 384)
    empty = tmp_path / "empty"
    empty.mkdir()
    convert(source_dir, empty, overwrite=True)
    assert (empty / "model.onnx").is_file()


@pytest.mark.parametrize("edit,match", [
    (lambda c: [1, 2], "expected a JSON object"),
    (lambda c: {k: v for k, v in c.items() if k != "hidden_size"}, "'hidden_size' is missing"),
    (lambda c: {**c, "num_attention_heads": 0}, "'num_attention_heads' must be an integer >= 1"),
    (lambda c: {**c, "hidden_size": "384"}, "'hidden_size' must be an integer"),
    (lambda c: {**c, "hidden_size": 384.7}, "'hidden_size' must be an integer"),
    (lambda c: {**c, "num_hidden_layers": 0}, "'num_hidden_layers' must be an integer >= 1"),
    (lambda c: {**c, "layer_norm_eps": -1}, "'layer_norm_eps' must be a number in"),
    (lambda c: {**c, "hidden_act": ["gelu"]}, "unsupported hidden_act"),
    (lambda c: {**c, "num_hidden_layers": 99}, "no tensor 'encoder.layer.6"),
    (lambda c: {**c, "hidden_size": 768, "num_attention_heads": 12}, "implies"),
    (lambda c: {**c, "vocab_size": 100}, "30522 tokens but"),
])
def test_damaged_config_is_a_value_error_naming_it(source_dir, tmp_path, edit, match):
    """Each of these was a traceback (AttributeError, KeyError, ZeroDivisionError),
    a message naming nothing, or a model that converted and then failed or gave
    NaN vectors."""
    src = _copy_model(source_dir, tmp_path / "src")
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(edit(cfg)))
    with pytest.raises(ValueError, match=match):
        convert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,content,match", [
    ("modules.json", '["x"]', r"modules\.json: expected a JSON list of module objects"),
    ("1_Pooling/config.json", "[1]", r"config\.json: expected a JSON object"),
    ("sentence_bert_config.json", '{"max_seq_length": 1}', "max_seq_length must be an integer >= 2"),
    ("sentence_bert_config.json", '{"max_seq_length": 2.5}', "max_seq_length must be an integer"),
    ("tokenizer.json", "{bad", r"tokenizer\.json"),
])
def test_damaged_side_files_are_value_errors(source_dir, tmp_path, name, content, match):
    src = _copy_model(source_dir, tmp_path / "src")
    (src / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        convert(src, tmp_path / "out")


@pytest.mark.parametrize("tensor,change,match", [
    ("encoder.layer.0.attention.self.query.weight", lambda t: t[:100], "shape"),
    ("encoder.layer.2.intermediate.dense.weight", lambda t: t.T.copy(), "shape"),
    ("embeddings.position_embeddings.weight", lambda t: t[:10], "shape"),
    ("encoder.layer.1.output.LayerNorm.weight", lambda t: np.where(np.arange(t.size) == 3, np.nan, t),
     "NaN"),
])
def test_weights_that_do_not_fit_the_config_are_refused(source_dir, tmp_path, tensor, change, match):
    from safetensors.numpy import load_file, save_file
    src = _copy_model(source_dir, tmp_path / "src", skip={"model.safetensors"})
    weights = load_file(str(source_dir / "model.safetensors"))
    key = next(k for k in weights if k.endswith(tensor))
    weights[key] = np.ascontiguousarray(change(weights[key]).astype(weights[key].dtype))
    save_file(weights, str(src / "model.safetensors"))
    with pytest.raises(ValueError, match=f"{tensor}.*{match}|{match}.*{tensor}"):
        convert(src, tmp_path / "out")


def test_pooling_settings(tmp_path):
    (tmp_path / "modules.json").write_text(json.dumps([
        {"type": "sentence_transformers.models.Transformer", "path": ""},
        {"type": "sentence_transformers.models.Pooling", "path": "pool"}]))
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    s = sentence_transformers_settings(tmp_path)
    assert (s["pooling"], s["normalize"], s["max_length"]) == ("cls", False, None)
    (tmp_path / "pool" / "config.json").write_text(json.dumps({"pooling_mode_lasttoken": True}))
    with pytest.raises(ValueError, match="unsupported pooling mode 'lasttoken'"):
        sentence_transformers_settings(tmp_path)


def test_cli_convert(source_dir, tmp_path, capsys):
    from sutra_fast.cli import main

    assert main(["convert", str(source_dir), str(tmp_path / "out"), "--model-id", "mini"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model_id"] == "mini" and (tmp_path / "out" / "model.onnx").is_file()
    assert main(["convert", str(tmp_path / "nope"), str(tmp_path / "o2")]) == 2
    assert "not found" in capsys.readouterr().err


def test_calibration_texts_do_not_depend_on_the_running_python(monkeypatch):
    """They were read from the stdlib's docstrings, which differ between Python
    builds (pyenv 3.11.7 vs Debian 3.11.2: different int8 vectors); now a file."""
    from sutra_fast import calibrate

    texts = calibrate.calibration_texts()
    assert len(texts) == 264 and all(texts) and len(set(texts)) == 264
    monkeypatch.setattr("sysconfig.get_paths", lambda *a, **k: {})   # no stdlib sources
    assert calibrate.calibration_texts() == texts
