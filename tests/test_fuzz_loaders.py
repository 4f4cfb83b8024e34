"""Fuzzing the checkpoint loaders: mutated, truncated and structurally edited
.pth / .safetensors files load or raise a clean ValueError, never anything else.

(tests/test_abuse.py runs fixed corruptions in a subprocess so a crash is a
failure; here hypothesis explores mutations in-process.)
"""
from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rwkv_checkpoints as rc
import sutra_fast as sf

SHAPE = rc.Shape(n_layer=1, n_embd=32, head_size=16, vocab=50, d_w=4, d_a=4, d_v=4, d_g=4)
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_ckpt")
    sd = rc.make_state_dict(SHAPE, seed=2)
    return Files({"pth": rc.write_pth(d / "m.pth", sd).read_bytes(),
                  "safetensors": rc.write_safetensors(d / "m.safetensors", sd).read_bytes(),
                  "dir": d})


class Files(dict):
    def __repr__(self) -> str:  # hypothesis prints the arguments of a failing example
        return "<checkpoint bytes>"


def load_clean(path):
    """Load and run one token, or a clean ValueError; anything else fails the test."""
    try:
        gen = sf.Generator.load(path)
    except ValueError:
        return None
    logits = gen.forward([1, 2], gen.new_state())
    assert logits.shape == (gen.vocab_size,)
    return gen


mutation = st.tuples(st.integers(0, 10**9), st.integers(0, 255))


@FUZZ
@given(fmt=st.sampled_from(["pth", "safetensors"]), muts=st.lists(mutation, min_size=1, max_size=12),
       head=st.booleans(), cut=st.one_of(st.none(), st.integers(0, 10**9)))
def test_mutated_and_truncated(files, fmt, muts, head, cut):
    data = bytearray(files[fmt])
    span = min(len(data), 2048) if head else len(data)  # the headers/zip directory are the fragile part
    for pos, val in muts:
        data[pos % span] = val
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    p = files["dir"] / f"mut.{fmt}"
    p.write_bytes(bytes(data))
    load_clean(p)


entries = st.fixed_dictionaries({}, optional={
    "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "F64", "BOOL", "", "f32", None, 3]),
    "shape": st.one_of(st.lists(st.integers(-3, 2**40), max_size=4), st.just([0]), st.text(max_size=3)),
    "data_offsets": st.one_of(st.lists(st.integers(-10, 2**63), min_size=0, max_size=3),
                              st.just([0, 0]), st.none()),
})


edits = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["edit", "drop", "rename"]), entries),
                 min_size=1, max_size=3)


@FUZZ
@given(edits=edits)
def test_edited_safetensors_header(files, edits):
    raw = files["safetensors"]
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8: 8 + n])
    for i, action, entry in edits:
        names = [k for k in header if k != "__metadata__"]
        name = names[i % len(names)]
        if action == "drop":
            del header[name]
        elif action == "rename":
            header[name + ".x"] = header.pop(name)
        else:
            header[name] = {**header[name], **entry}
    body = json.dumps(header).encode()
    p = files["dir"] / "edit.safetensors"
    p.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n:])
    load_clean(p)


@FUZZ
@given(data=st.data())
def test_edited_pth_archive(files, data):
    """Drop, empty or shorten members of the .pth zip, or replace its pickle."""
    src = zipfile.ZipFile(io.BytesIO(files["pth"]))
    members = src.namelist()
    victim = data.draw(st.sampled_from(members))
    action = data.draw(st.sampled_from(["drop", "empty", "halve", "garbage"]))
    p = files["dir"] / "edit.pth"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as out:
        for m in members:
            blob = src.read(m)
            if m == victim:
                if action == "drop":
                    continue
                blob = {"empty": b"", "halve": blob[: len(blob) // 2],
                        "garbage": data.draw(st.binary(min_size=1, max_size=64))}[action]
            out.writestr(m, blob)
    load_clean(p)


def test_rezipped_pth_with_unaligned_members_loads_the_same(files):
    """Other zip writers do not align members as torch does: the tensors then
    sit at odd offsets, and must still load to the same model (tools/sanitize.sh
    catches a misaligned read in the core as UB)."""
    src = zipfile.ZipFile(io.BytesIO(files["pth"]))
    p = files["dir"] / "rezipped.pth"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_STORED) as out:
        out.writestr("pad", b"x")  # shift every later member by an odd amount
        for m in src.namelist():
            out.writestr(m, src.read(m))
    orig = files["dir"] / "orig.pth"
    orig.write_bytes(files["pth"])
    a, b = sf.Generator.load(orig), sf.Generator.load(p)
    np.testing.assert_array_equal(a.forward([1, 2, 3], a.new_state()), b.forward([1, 2, 3], b.new_state()))
