"""The pre-packed ORT copies (sutra_fast.ort_session): written on first use,
loaded after, replaced when stale or damaged, skipped when the cache is not
writeable, safe with two processes at once; the vectors never change."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import ort_session
from sutra_fast.embedder import Embedder

PYTHON_DIR = str(Path(sf.__file__).resolve().parent.parent)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ort_session.ENV_SWITCH, raising=False)
    return tmp_path / "cache" / "prepared"


def _copies(cache: Path) -> list[Path]:
    return sorted(cache.iterdir()) if cache.is_dir() else []


def _embed(model, texts, monkeypatch, prepack: bool):
    monkeypatch.setenv(ort_session.ENV_SWITCH, "1" if prepack else "0")
    return Embedder.load(model, threads=1).embed(texts)


@pytest.fixture(scope="module")
def some_texts(texts):
    return texts[:40] + texts[-3:]  # short sentences and paragraphs of > 256 tokens


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_copy_is_written_then_used_and_vectors_are_bit_identical(
        which, request, cache, monkeypatch, some_texts):
    model = request.getfixturevalue("converted" if which == "fp32" else "converted_int8")
    plain = _embed(model, some_texts, monkeypatch, prepack=False)
    assert _copies(cache) == []                      # switched off: nothing written

    first = _embed(model, some_texts, monkeypatch, prepack=True)   # writes the copy
    (copy,) = _copies(cache)
    done = json.loads((copy / "prepared.json").read_text())
    assert done["source"] == str((Path(model) / "model.onnx").resolve())
    # it holds the packed weights as well as the graph's own: larger than the source
    assert (copy / "model.onnx.data").stat().st_size > (Path(model) / "model.onnx.data").stat().st_size

    stamp = (copy / "model.onnx.data").stat().st_mtime_ns
    second = _embed(model, some_texts, monkeypatch, prepack=True)  # loads it
    assert (copy / "model.onnx.data").stat().st_mtime_ns == stamp  # not rewritten
    np.testing.assert_array_equal(first, plain)
    np.testing.assert_array_equal(second, plain)


def test_the_copy_is_what_gets_loaded(cache, monkeypatch, converted):
    _embed(converted, ["x"], monkeypatch, prepack=True)
    (copy,) = _copies(cache)
    seen = []
    import onnxruntime as ort
    original = ort.InferenceSession

    def spy(path, *a, **k):
        seen.append(Path(path))
        return original(path, *a, **k)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(ort_session, "_saving_options", lambda *a: pytest.fail("rewrote the copy"))
    Embedder.load(converted, threads=1)
    assert seen == [copy / "model.onnx"]


def test_stale_key_is_replaced(cache, monkeypatch, converted, some_texts):
    plain = _embed(converted, some_texts, monkeypatch, prepack=False)
    _embed(converted, ["x"], monkeypatch, prepack=True)
    (copy,) = _copies(cache)
    done = json.loads((copy / "prepared.json").read_text())
    done["key"] = done["key"].replace("onnxruntime ", "onnxruntime 0.0-")  # another ORT version
    (copy / "prepared.json").write_text(json.dumps(done))
    again = _embed(converted, some_texts, monkeypatch, prepack=True)
    (copy2,) = _copies(cache)
    assert copy2 == copy and json.loads((copy2 / "prepared.json").read_text())["key"] != done["key"]
    np.testing.assert_array_equal(again, plain)


def test_changed_source_files_make_a_new_copy(cache, monkeypatch, converted, tmp_path, some_texts):
    import shutil
    model = tmp_path / "model"
    shutil.copytree(converted, model)
    plain = _embed(model, some_texts, monkeypatch, prepack=False)
    _embed(model, ["x"], monkeypatch, prepack=True)
    (copy,) = _copies(cache)
    key = json.loads((copy / "prepared.json").read_text())["key"]
    os.utime(model / "model.onnx.data", ns=(1, 1))   # a re-written weight file
    again = _embed(model, some_texts, monkeypatch, prepack=True)
    (copy2,) = _copies(cache)
    assert json.loads((copy2 / "prepared.json").read_text())["key"] != key
    np.testing.assert_array_equal(again, plain)


def test_damaged_copy_is_replaced(cache, monkeypatch, converted, some_texts):
    plain = _embed(converted, some_texts, monkeypatch, prepack=False)
    _embed(converted, ["x"], monkeypatch, prepack=True)
    (copy,) = _copies(cache)
    with open(copy / "model.onnx.data", "r+b") as f:
        f.truncate(4096)                               # ORT refuses the short file
    again = _embed(converted, some_texts, monkeypatch, prepack=True)
    np.testing.assert_array_equal(again, plain)
    (copy2,) = _copies(cache)
    assert (copy2 / "model.onnx.data").stat().st_size > 4096


def test_copies_of_deleted_models_are_removed(cache, monkeypatch, converted, tmp_path):
    import shutil
    gone = tmp_path / "gone"
    shutil.copytree(converted, gone)
    _embed(gone, ["x"], monkeypatch, prepack=True)
    shutil.rmtree(gone)
    assert len(_copies(cache)) == 1
    _embed(converted, ["x"], monkeypatch, prepack=True)   # publishing a copy tidies up
    (left,) = _copies(cache)
    assert json.loads((left / "prepared.json").read_text())["source"].startswith(str(converted.resolve()))


def test_half_written_copies_are_removed_when_old(cache, monkeypatch, converted):
    old, fresh = cache / ".tmp-killed", cache / ".tmp-writing"
    for d in (old, fresh):
        d.mkdir(parents=True)
        (d / "model.onnx.data").write_bytes(b"partial")
    os.utime(old, (1, 1))                                 # a killed process, long ago
    _embed(converted, ["x"], monkeypatch, prepack=True)   # publishing a copy tidies up
    assert not old.exists() and fresh.exists()            # another process may be writing this one


def test_unwriteable_cache_still_loads(tmp_path, monkeypatch, converted, some_texts):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SUTRA_CACHE_DIR", str(blocker / "cache"))   # mkdir fails
    monkeypatch.setenv(ort_session.ENV_SWITCH, "1")
    vecs = Embedder.load(converted, threads=1).embed(some_texts)
    monkeypatch.setenv(ort_session.ENV_SWITCH, "0")
    np.testing.assert_array_equal(vecs, Embedder.load(converted, threads=1).embed(some_texts))


def test_a_file_in_the_copy_s_place_is_replaced(cache, monkeypatch, converted, some_texts):
    plain = _embed(converted, some_texts, monkeypatch, prepack=False)
    _embed(converted, ["x"], monkeypatch, prepack=True)
    (copy,) = _copies(cache)
    import shutil
    shutil.rmtree(copy)
    copy.write_text("junk")                             # not a folder
    np.testing.assert_array_equal(_embed(converted, some_texts, monkeypatch, prepack=True), plain)
    assert (copy / "prepared.json").is_file()


def test_bad_model_error_is_unchanged(cache, monkeypatch, tmp_path, converted):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(converted, bad)
    (bad / "model.onnx").write_bytes(b"not an onnx graph")
    with pytest.raises(RuntimeError, match="ONNX Runtime could not load"):
        Embedder.load(bad)
    assert [p for p in _copies(cache) if not p.name.startswith(".")] == []
    assert not any(p.name.startswith(".tmp-") for p in _copies(cache))


def test_two_processes_at_once(cache, converted, some_texts, monkeypatch):
    plain = _embed(converted, some_texts[:5], monkeypatch, prepack=False)
    code = ("import sys, numpy as np, sutra_fast as sf\n"
            "v = sf.Embedder.load(sys.argv[1], threads=1).embed(sys.argv[2:])\n"
            "np.save(sys.stdout.buffer, v)\n")
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR, SUTRA_PREPACK_CACHE="1")
    import io
    procs = [subprocess.Popen([sys.executable, "-c", code, str(converted), *some_texts[:5]],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        np.testing.assert_array_equal(np.load(io.BytesIO(out)), plain)
    copies = _copies(cache)
    assert len(copies) == 1 and (copies[0] / "prepared.json").is_file()
    again = _embed(converted, some_texts[:5], monkeypatch, prepack=True)
    np.testing.assert_array_equal(again, plain)


def test_copy_gets_the_umask_modes_like_the_models(cache, monkeypatch, converted):
    # A cache built as root in an image and served as another user: the copy must be
    # readable by that user, as models/* are (mkdtemp alone would make it 0700).
    old = os.umask(0o022)
    try:
        _embed(converted, ["x"], monkeypatch, prepack=True)
    finally:
        os.umask(old)
    (copy,) = _copies(cache)
    assert oct(copy.stat().st_mode & 0o777) == oct(0o755)
    for f in copy.iterdir():
        assert f.stat().st_mode & 0o044 == 0o044, f   # readable by group and others


def test_copy_not_written_or_read_says_why_in_the_log(cache, monkeypatch, converted, caplog):
    import logging
    import tempfile

    def no_temp_dir(*a, **k):
        raise PermissionError(13, "Permission denied", str(cache / ".tmp-x"))

    with monkeypatch.context() as m, caplog.at_level(logging.INFO, logger="sutra_fast"):
        m.setattr(tempfile, "mkdtemp", no_temp_dir)
        _embed(converted, ["x"], monkeypatch, prepack=True)
    assert _copies(cache) == []
    (record,) = caplog.records
    assert "cannot write one for" in record.getMessage()
    assert "Permission denied" in record.getMessage()

    _embed(converted, ["x"], monkeypatch, prepack=True)     # a copy
    (copy,) = _copies(cache)
    real_open = open

    def unreadable(path, *a, **k):
        if Path(path) == copy / "prepared.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", unreadable)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sutra_fast"):
        assert ort_session._read_key(copy) is None
    assert f"cannot read {copy / 'prepared.json'}" in caplog.text


@pytest.mark.parametrize("value, on", [("", True), ("1", True), ("TRUE", True), (" yes ", True),
                                       ("on", True), ("0", False), ("False", False),
                                       ("NO", False), ("off", False)])
def test_switch_values(monkeypatch, value, on):
    monkeypatch.setenv(ort_session.ENV_SWITCH, value)
    assert ort_session.enabled() is on


@pytest.mark.parametrize("value", ["disabled", "nope", "2"])
def test_bad_switch_value_warns_and_keeps_the_default(monkeypatch, value):
    monkeypatch.setenv(ort_session.ENV_SWITCH, value)
    with pytest.warns(RuntimeWarning, match=f"SUTRA_PREPACK_CACHE='{value}'.*ignored"):
        assert ort_session.enabled() is True


@pytest.mark.parametrize("prepack", [False, True])
def test_path_with_surrogate_escapes_loads(cache, monkeypatch, converted, tmp_path, prepack):
    # Under LC_ALL=C a non-ASCII folder name (here "ün") is a str with surrogate
    # escapes, which ORT's binding rejects; it names the same bytes as the UTF-8 str.
    import onnxruntime as ort
    folder = tmp_path / "\u00fcn"
    folder.mkdir()
    for f in Path(converted).iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    escaped = Path(str(tmp_path) + "/" + "\u00fcn".encode().decode("ascii", "surrogateescape"))
    assert "\udcc3" in str(escaped) and os.fsencode(escaped) == os.fsencode(folder)
    monkeypatch.setenv(ort_session.ENV_SWITCH, "1" if prepack else "0")
    for _ in range(2):   # with prepack: writes the copy, then loads it
        session = ort_session.create_session(escaped / "model.onnx", ort.SessionOptions)
        assert session.get_inputs()
    assert len(_copies(cache)) == (1 if prepack else 0)
