"""Torch-free checkpoint reading: formats, dtypes, architecture detection, and
clean errors for foreign, truncated or malicious files."""
from __future__ import annotations

import json
import os
import pickle
import struct
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
    """fp32 and fp16 copies of a bf16 checkpoint give the bf16 file's logits: fp32 holds
    every bf16 value exactly, so bit-identical logits; fp16 rounds 31 of the 415008
    values (tiny ones, below fp16's normal range), so |dlogit| <= 1e-5 (measured
    2.4e-6 at most over scalar, AVX2 and AVX-512, max|logit| 6.0)."""
    ref = sf.Generator.load(rc.write_safetensors(tmp_path / "ref.safetensors", sd))
    path = (rc.write_pth(tmp_path / "m.pth", sd, dtype) if fmt == "pth"
            else rc.write_safetensors(tmp_path / "m.safetensors", sd, dtype))
    gen = sf.Generator.load(path)
    seq = [1, 5, 9, 200]
    got, want = gen.forward(seq, gen.new_state()), ref.forward(seq, ref.new_state())
    if dtype in ("fp32", "F32"):
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_detect_config(sd):
    cfg = detect_config(sd)
    assert (cfg.version, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size, cfg.vocab_size) == ("7", 3, 96, 3, 32, 211)
    assert (cfg.d_w, cfg.d_a, cfg.d_v, cfg.d_g, cfg.ffn_dim, cfg.layer0_has_v) == (16, 16, 8, 24, 384, True)
    cfg = detect_config(rc.make_state_dict(rc.TINY))
    assert cfg.layer0_has_v is False


def world_0b1_layout() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the RWKV-x070-World-0.1B layout (the sizes of
    rwkv_checkpoints.WORLD_0B1), written out here rather than taken from that module's
    generator: 12 layers, n_embd 768, 12 heads of 64, vocab 65536, LoRA ranks
    w 64 / a 64 / v 32 / g 128, ffn 3072, no v0/v1/v2 in layer 0."""
    C, V, F, vec = 768, 65536, 3072, (1, 1, 768)
    out = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,)}
    for i in range(12):
        b, a = f"blocks.{i}.", f"blocks.{i}.att."
        out.update({b + "ln1.weight": (C,), b + "ln1.bias": (C,), b + "ln2.weight": (C,), b + "ln2.bias": (C,)})
        out.update({a + n: vec for n in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "k_k", "k_a")})
        out.update({a + "w1": (C, 64), a + "w2": (64, C), a + "a1": (C, 64), a + "a2": (64, C),
                    a + "g1": (C, 128), a + "g2": (128, C), a + "r_k": (12, 64)})
        if i > 0:
            out.update({a + "v0": vec, a + "v1": (C, 32), a + "v2": (32, C)})
        out.update({a + n + ".weight": (C, C) for n in ("receptance", "key", "value", "output")})
        out.update({a + "ln_x.weight": (C,), a + "ln_x.bias": (C,),
                    b + "ffn.x_k": vec, b + "ffn.key.weight": (F, C), b + "ffn.value.weight": (C, F)})
    out.update({"ln_out.weight": (C,), "ln_out.bias": (C,), "head.weight": (V, C)})
    return out


def test_world_0b1_layout_reads_and_detects(tmp_path):
    """The real 0.1B World layout (399 tensors, 191.0 M parameters) as a bf16
    .safetensors file: read_checkpoint returns every tensor at its shape, and
    detect_config derives n_layer 12, n_embd 768, n_head 12, head size 64, vocab
    65536, LoRA ranks 64/64/32/128, ffn 3072, no layer-0 v. The file is sparse (a real
    header, 382 MB of unwritten zeros) and nothing reads the data, so this is quick."""
    layout = world_0b1_layout()
    assert len(layout) == 399
    assert round(sum(int(np.prod(s)) for s in layout.values()) / 1e6, 1) == 191.0
    header, offset = {}, 0
    for name, shape in layout.items():
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path = tmp_path / "world_0b1.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + offset)
    ck = read_checkpoint(path)
    assert {k: t.shape for k, t in ck.tensors.items()} == layout
    assert all(t.dtype == "bf16" for t in ck.tensors.values())
    cfg = detect_config(ck.tensors, source=str(path))
    assert (cfg.version, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size, cfg.vocab_size) == ("7", 12, 768, 12, 64, 65536)
    assert (cfg.d_w, cfg.d_a, cfg.d_v, cfg.d_g, cfg.ffn_dim, cfg.layer0_has_v) == (64, 64, 32, 128, 3072, False)


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


# ---------------------------------------------------------------- reviewer findings (session 7)

@pytest.mark.parametrize("index", ["7", "999999999", "10000000000000", "9" * 5000])  # int() refuses > 4300 digits
def test_huge_block_index_is_a_clean_error_not_an_oom(tmp_path, index):
    """A tensor `blocks.10000000000000.ln1.weight` made detect_config build
    set(range(10**13 + 1)) and get OOM-killed. Run in a subprocess under a 4 GiB
    address-space limit so a regression fails (MemoryError) instead of killing the run."""
    import subprocess
    import sys

    sd = rc.make_state_dict(rc.TINY)
    sd[f"blocks.{index}.ln1.weight"] = sd["blocks.0.ln1.weight"]
    path = rc.write_safetensors(tmp_path / "huge_index.safetensors", sd)
    code = ("import resource, sutra_fast as sf\n"
            "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
            "try:\n"
            f"    sf.Generator.load({str(path)!r})\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-2000:]
    assert str(path) in r.stdout and "block indices are not contiguous" in r.stdout, r.stdout
    assert len(r.stdout) < 2000  # the message does not list thousands of indices or digits


@pytest.mark.parametrize("keep", [0.1, 0.3, 0.5, 0.75, 0.9, 0.99])
def test_truncated_pth_is_diagnosed_as_truncated(tmp_path, sd, keep):
    """Cut before its central directory, a torch zip still starts with PK\\x03\\x04: it is
    a damaged zip, not a legacy pickled .pth."""
    data = rc.write_pth(tmp_path / "m.pth", sd).read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated or damaged zip archive") as e:
        sf.Generator.load(cut)
    assert str(cut) in str(e.value) and "legacy" not in str(e.value)


def _write_raw_safetensors(path, header: bytes, payload: bytes = b"\0" * 16):
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + payload)
    return path


def test_deeply_nested_safetensors_header(tmp_path):
    depth = 200_000
    header = b'{"x": ' + b"[" * depth + b"]" * depth + b"}"
    path = _write_raw_safetensors(tmp_path / "deep.safetensors", header)
    with pytest.raises(ValueError, match="nested too deeply") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "zip" not in str(e.value)


@pytest.mark.parametrize("entry, what", [
    ({"dtype": "F32", "shape": [4], "data_offsets": [0.0, 16.0]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [True, 16]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 32]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}, "data_offsets"),
    ({"dtype": "F32", "shape": [4], "data_offsets": None}, "data_offsets"),
    ({"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]}, "dtype"),
    ({"dtype": {"F32": 1}, "shape": [4], "data_offsets": [0, 16]}, "dtype"),
    ({"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}, "dtype"),
    ({"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}, "too large"),  # np.prod wrapped to 0
    ({"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 0]}, "too large"),
    ({"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 0]}, "do not fit"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 2**70]}, "do not fit"),
    ({"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}, "too large"),
    ({"dtype": "F32", "shape": [1] * 70, "data_offsets": [0, 4]}, "dimensions"),
    ({"dtype": "F32", "shape": [4.0], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": [2.5, 2], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": [True, 4], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}, "shape"),
    ({"dtype": "F32", "data_offsets": [0, 16]}, "shape"),
    ("F32", "malformed"),
])
def test_malformed_safetensors_entries(tmp_path, entry, what):
    """Every header-entry defect is a ValueError naming the file and the tensor (raw
    TypeErrors, unhashable dtypes and an int64 overflow in the size check got through)."""
    path = _write_raw_safetensors(tmp_path / "bad.safetensors",
                                  json.dumps({"blocks.0.att.odd": entry}).encode())
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    msg = str(e.value)
    assert str(path) in msg and "'blocks.0.att.odd'" in msg and what in msg, msg


@pytest.mark.parametrize("name, shape", [
    ("emb.weight", ()), ("emb.weight", (97,)), ("emb.weight", (97, 64, 1)),
    ("blocks.0.att.r_k", ()), ("blocks.0.att.w1", ()), ("blocks.0.ffn.key.weight", ()),
])
def test_wrong_rank_tensors_in_detect_config(tmp_path, name, shape):
    sd = rc.make_state_dict(rc.TINY)
    sd[name] = np.zeros(shape, np.float32)
    path = rc.write_safetensors(tmp_path / "rank.safetensors", sd, "F32")
    with pytest.raises(ValueError) as e:
        sf.Generator.load(path)
    msg = str(e.value)
    assert str(path) in msg and name in msg and str(shape) in msg, msg


# ---------------------------------------------------------------- review of the CLI's messages

def test_a_folder_is_named_as_such_with_the_checkpoints_inside(tmp_path, sd):
    """`--model ckpt/` said "no such checkpoint file" for an existing folder."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="is a folder, not a checkpoint file, and holds no "
                                                r"\.pth or \.safetensors file") as e:
        sf.Generator.load(folder)
    assert str(folder) in str(e.value)
    st = rc.write_safetensors(folder / "model.safetensors", sd)
    pth = rc.write_pth(folder / "old.pth", sd)
    with pytest.raises(FileNotFoundError) as e:
        sf.Generator.load(folder)
    msg = str(e.value)
    assert msg == (f"{folder} is a folder, not a checkpoint file; pass the .pth or .safetensors "
                   f"file inside it: {st}, {pth}"), msg


@pytest.mark.parametrize("name, data", [
    ("out1.jsonl", b'{"text": "hello", "embedding": [0.1, 0.2]}\n' * 400),
    ("model.onnx", b"\x08\x07\x12\x07pytorch" + bytes(range(256)) * 64),
    ("weights.bin", b"\x80\x02}q\x00(X\x05\x00\x00\x00emb.wq\x01" + b"\0" * 100),  # a legacy pickle
    ("tiny", b"abc"),
])
def test_files_of_neither_format_are_not_rwkv_checkpoints(tmp_path, name, data):
    """Any non-zip file not named .pth was read as safetensors: a JSONL file got
    "safetensors header length 4189038663854989947 exceeds the file"."""
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ValueError) as e:
        read_checkpoint(path)
    assert str(e.value) == (f"{path} is not an RWKV checkpoint: expected a .pth (torch zip) or "
                            ".safetensors file")


def test_safetensors_by_content_or_name_keep_their_precise_messages(tmp_path, sd):
    """Only files that are plausibly neither format get the generic message: safetensors
    content under another name loads, and a damaged one is diagnosed as before."""
    data = rc.write_safetensors(tmp_path / "m.safetensors", sd).read_bytes()
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(data)
    assert list(read_checkpoint(renamed).tensors) == list(sd)
    bad_json = _write_raw_safetensors(tmp_path / "model.data", b'{"x": [}')
    with pytest.raises(ValueError, match="safetensors header is not valid JSON"):
        read_checkpoint(bad_json)
    cut = tmp_path / "cut.safetensors"  # named .safetensors: a truncated one, not a foreign file
    cut.write_bytes(data[:64])
    with pytest.raises(ValueError, match="header length .* exceeds the file .*truncated"):
        read_checkpoint(cut)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="the file is empty"):
        read_checkpoint(empty)
