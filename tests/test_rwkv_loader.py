"""Torch-free checkpoint reading: formats, dtypes, architecture detection, and
clean errors for foreign, truncated or malicious files."""
from __future__ import annotations

import os
import pickle
import zipfile

import numpy as np
import pytest

import rwkv_checkpoints as rc
import sutra_fast as sf
from sutra_fast.rwkv_loader import detect_config, read_checkpoint, to_float32


@pytest.fixture(scope="module")
def sd():
    return rc.make_state_dict(rc.ODD_HEADS, seed=11)


def test_pth_and_safetensors_read_back_exactly(tmp_path, sd):
    for path in (rc.write_pth(tmp_path / "m.pth", sd), rc.write_safetensors(tmp_path / "m.safetensors", sd)):
        ck = read_checkpoint(path)
        assert list(ck.tensors) == list(sd)
        for k, v in sd.items():
            assert ck.tensors[k].dtype == "bf16"
            np.testing.assert_array_equal(to_float32(ck.tensors[k]), v)


@pytest.mark.parametrize("fmt,dtype", [("pth", "fp16"), ("pth", "fp32"), ("st", "F16"), ("st", "F32")])
def test_other_dtypes_load_and_agree(tmp_path, sd, fmt, dtype):
    ref = sf.Generator.load(rc.write_safetensors(tmp_path / "ref.safetensors", sd))
    path = (rc.write_pth(tmp_path / "m.pth", sd, dtype) if fmt == "pth"
            else rc.write_safetensors(tmp_path / "m.safetensors", sd, dtype))
    gen = sf.Generator.load(path)
    seq = [1, 5, 9, 200]
    # bf16-exact values are exact in fp16 too here (small magnitudes), so logits agree.
    np.testing.assert_allclose(gen.forward(seq, gen.new_state()), ref.forward(seq, ref.new_state()),
                               atol=1e-3, rtol=0)


def test_detect_config(sd):
    cfg = detect_config(sd)
    assert (cfg.version, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size, cfg.vocab_size) == ("7", 3, 96, 3, 32, 211)
    assert (cfg.d_w, cfg.d_a, cfg.d_v, cfg.d_g, cfg.ffn_dim, cfg.layer0_has_v) == (16, 16, 8, 24, 384, True)
    cfg = detect_config(rc.make_state_dict(rc.TINY))
    assert cfg.layer0_has_v is False


def test_world_0b1_names_and_shapes():
    """The real layout: 399 tensors, 191.0 M parameters (RWKV_MATH.md §1)."""
    shape = rc.WORLD_0B1
    sd = {}
    # Shapes only: build from the tiny generator's naming at the real sizes, lazily.
    full = rc.make_state_dict(rc.Shape(n_layer=12, n_embd=64, head_size=64, vocab=8, d_w=64, d_a=64, d_v=32, d_g=128))
    assert len(full) == 399
    cfg = detect_config(full)
    assert (cfg.n_layer, cfg.n_head, cfg.head_size, cfg.d_w, cfg.d_a, cfg.d_v, cfg.d_g) == (12, 1, 64, 64, 64, 32, 128)
    del sd, shape


def test_rwkv6_and_foreign_files_are_value_errors(tmp_path, sd):
    v6 = {"emb.weight": np.zeros((4, 8), np.float32), "blocks.0.ln1.weight": np.zeros(8, np.float32),
          "blocks.0.att.time_maa_x": np.zeros((1, 1, 8), np.float32),
          "blocks.0.att.time_faaaa": np.zeros((2, 4), np.float32)}
    with pytest.raises(ValueError, match="RWKV-6"):
        sf.Generator.load(rc.write_safetensors(tmp_path / "v6.safetensors", v6, "F32"))
    bert = {"embeddings.word_embeddings.weight": np.zeros((4, 8), np.float32)}
    with pytest.raises(ValueError, match="not an RWKV checkpoint"):
        sf.Generator.load(rc.write_safetensors(tmp_path / "bert.safetensors", bert, "F32"))
    broken = dict(sd)
    broken["blocks.1.att.key.weight"] = np.zeros((96, 95), np.float32)
    with pytest.raises(ValueError, match="blocks.1.att.key.weight"):
        sf.Generator.load(rc.write_safetensors(tmp_path / "broken.safetensors", broken))
    missing = {k: v for k, v in sd.items() if k != "blocks.2.ffn.value.weight"}
    with pytest.raises(ValueError, match="missing"):
        sf.Generator.load(rc.write_safetensors(tmp_path / "missing.safetensors", missing))
    (tmp_path / "junk.pth").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError):
        sf.Generator.load(tmp_path / "junk.pth")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(ValueError):
        sf.Generator.load(tmp_path / "empty.safetensors")


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
@pytest.mark.parametrize("keep", [0.999, 0.5, 0.02])
def test_truncated_files_are_clean_errors(tmp_path, sd, fmt, keep):
    src = (rc.write_pth(tmp_path / "m.pth", sd) if fmt == "pth"
           else rc.write_safetensors(tmp_path / "m.safetensors", sd))
    data = src.read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError):
        sf.Generator.load(cut)


@pytest.mark.parametrize("field_offset, value, what", [
    (6, 64, "zip file version 6.4"),   # version needed to extract (the fuzz test's find)
    (10, 99, "compression type 99"),   # compression method
    (8, 1, "encrypted"),               # general purpose flags: encrypted
])
def test_damaged_zip_headers_are_value_errors(tmp_path, sd, field_offset, value, what):
    """zipfile raises NotImplementedError / RuntimeError, not BadZipFile, for these
    (central directory) fields; the loader must still answer ValueError."""
    data = bytearray(rc.write_pth(tmp_path / "m.pth", sd).read_bytes())
    at = data.index(b"PK\x01\x02")  # the first central directory entry: data.pkl
    data[at + field_offset: at + field_offset + 2] = value.to_bytes(2, "little")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt zip archive"):
        sf.Generator.load(bad)


def test_corrupted_bytes_never_crash(tmp_path, sd):
    data = bytearray(rc.write_safetensors(tmp_path / "m.safetensors", sd).read_bytes())
    rng = np.random.default_rng(0)
    for i in range(20):
        bad = bytearray(data)
        for pos in rng.integers(0, 400, 5):  # inside the length + JSON header
            bad[pos] = int(rng.integers(0, 256))
        p = tmp_path / f"bad{i}.safetensors"
        p.write_bytes(bytes(bad))
        try:
            sf.Generator.load(p)
        except ValueError:
            pass


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"emb.weight": _Evil()}, protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(ValueError, match="refusing to load global"):
        read_checkpoint(path)


def test_reader_never_imports_torch(tmp_path, sd):
    import subprocess
    import sys

    path = rc.write_safetensors(tmp_path / "m.safetensors", sd)
    pth = rc.write_pth(tmp_path / "m.pth", sd)
    code = ("import sys, sutra_fast as sf\n"
            f"g = sf.Generator.load({str(path)!r}); g.forward([1], g.new_state())\n"
            f"g = sf.Generator.load({str(pth)!r}); g.forward([1], g.new_state())\n"
            "assert 'torch' not in sys.modules and 'pickle' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_core_model_refuses_misaligned_arrays(sd):
    """The compiled constructor itself refuses a view at an odd address (typed loads
    there are undefined behaviour); Generator.load copies such views first."""
    from sutra_fast import _core

    arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}
    emb = arrays["emb.weight"]
    raw = np.empty(emb.nbytes + 1, np.uint8)
    odd = raw[1:].view(np.float32).reshape(emb.shape)  # contiguous, 1 byte off alignment
    odd[...] = emb
    assert not odd.flags.aligned
    with pytest.raises(ValueError, match="emb.weight is not aligned.*x.copy"):
        _core.Rwkv7Model({**arrays, "emb.weight": odd}, "fp32", 0)
    _core.Rwkv7Model({**arrays, "emb.weight": odd.copy()}, "fp32", 0)  # the fix it names
