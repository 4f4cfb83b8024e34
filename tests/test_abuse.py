"""Abuse cases: absurd input must give a result or a clean ValueError /
TypeError / FileNotFoundError, never a crash or a hang.

Each test runs its cases in a fresh Python subprocess (tests/abuse_child.py),
so a segfault or abort is a failed test naming the case, not a lost run; a
timeout bounds hangs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rwkv_checkpoints as rc
import sutra_fast as sf

HERE = Path(__file__).resolve().parent
TIMEOUT = 240
WORLD_TINY = rc.WORLD_TINY
ALLOWED = ("ok", "clean:")


def run_child(body: str, **names) -> dict[str, str]:
    """Run ``body`` (after the abuse_child preamble) in a subprocess; return its outcomes."""
    pre = "".join(f"{k} = {v!r}\n" for k, v in names.items())
    code = ("import sys; sys.path.insert(0, %r)\nfrom abuse_child import case, report\n" % str(HERE)
            + pre + textwrap.dedent(body) + "\nreport()\n")
    env = dict(os.environ)
    # The child imports the sutra_fast under test (installed, or built in place).
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).resolve().parent.parent),
                                         env.get("PYTHONPATH", "")])
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        last = [ln for ln in (e.stderr or b"").decode(errors="replace").splitlines() if ln.startswith("START")]
        pytest.fail(f"hang: no result within {TIMEOUT}s; last case started: {last[-1:] or '?'}")
    started = [ln[6:] for ln in p.stderr.splitlines() if ln.startswith("START ")]
    assert p.returncode == 0, (f"child died (rc={p.returncode}) in case {started[-1:]}\n"
                               f"{p.stderr[-1500:]}")
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[7:])


def assert_clean(outcomes: dict[str, str], expect: dict[str, str] | None = None) -> None:
    bad = {k: v for k, v in outcomes.items() if not v.startswith(ALLOWED)}
    assert not bad, "unclean outcomes:\n" + "\n".join(f"  {k}: {v}" for k, v in bad.items())
    for k, v in (expect or {}).items():
        assert outcomes[k].startswith(v), (k, outcomes[k], v)


# ---------------------------------------------------------------- tokenizers
TOKENIZER_CASES = """
import os, random
import numpy as np
import sutra_fast as sf
wp = sf.WordPieceTokenizer.from_file(tok_path)
world = sf.WorldTokenizer.default()
rnd = random.Random(1)
big = ("héllo wörld, 你好! naïve café 🤖 " * 700_000)[:20_000_000]
blob = bytes(rnd.getrandbits(8) for _ in range(1_000_000))
latin = blob.decode("latin-1")
surro = blob.decode("utf-8", "surrogateescape")      # lone surrogates: not encodable
nul = "a\\x00b\\x00" * 1000

for name, tok in (("wp", wp), ("world", world)):
    case(f"{name} 20MB", lambda: tok.encode(big))
    case(f"{name} 1MB latin-1", lambda: tok.encode(latin))
    case(f"{name} 1MB surrogates", lambda: tok.encode(surro))
    case(f"{name} NULs", lambda: tok.encode(nul))
    case(f"{name} not a str", lambda: tok.encode(blob))
    case(f"{name} None", lambda: tok.encode(None))
case("wp batch 20MB", lambda: wp.encode_batch([big, "", latin], max_length=128))
case("wp batch huge max_length", lambda: wp.encode_batch(["a b c"], max_length=2**63))
case("wp batch negative max_length", lambda: wp.encode_batch(["a b c"], max_length=-1))
case("wp batch mixed types", lambda: wp.encode_batch(["a", 3, None]))
case("world bytes 1MB", lambda: world.encode_bytes(blob))
case("world bytes 20MB", lambda: world.encode_bytes(big.encode()))
case("world decode negative", lambda: world.decode([-1, 5]))
case("world decode >= vocab", lambda: world.decode([world.vocab_size, 10**6]))
case("world decode huge", lambda: world.decode([2**64 + 1]))
case("world decode uint64", lambda: world.decode(np.array([2**64 - 1], np.uint64)))
case("world decode floats", lambda: world.decode([1.5]))
case("world token_to_bytes -1", lambda: world.token_to_bytes(-1))
"""


def test_tokenizers_abuse(source_dir):
    out = run_child(TOKENIZER_CASES, tok_path=str(Path(source_dir) / "tokenizer.json"))
    assert_clean(out, {"wp 20MB": "ok", "world 20MB": "ok", "world bytes 1MB": "ok",
                       "wp None": "clean:TypeError", "world None": "clean:TypeError"})


# ---------------------------------------------------------------- embedder
EMBED_CASES = """
import random
import numpy as np
import sutra_fast as sf
emb = sf.Embedder.load(model_dir)
rnd = random.Random(2)
big = ("lorem ipsum dolor sit amet " * 800_000)[:20_000_000]
blob = bytes(rnd.getrandbits(8) for _ in range(1_000_000))
case("embed 20MB", lambda: emb.embed(big))
case("embed 1MB latin-1", lambda: emb.embed([blob.decode("latin-1")]))
case("embed 1MB surrogates", lambda: emb.embed([blob.decode("utf-8", "surrogateescape")]))
case("embed bytes", lambda: emb.embed(blob))
case("embed empty list", lambda: emb.embed([]))
case("embed empty strings", lambda: emb.embed(["", " ", "\\x00"]))
case("embed None", lambda: emb.embed(None))
case("embed ints", lambda: emb.embed([1, 2]))
case("embed dims 0", lambda: emb.embed("x", dimensions=0))
case("embed dims -1", lambda: emb.embed("x", dimensions=-1))
case("embed dims huge", lambda: emb.embed("x", dimensions=2**70))
case("embed dims float", lambda: emb.embed("x", dimensions=1.5))
case("embed dims nan", lambda: emb.embed("x", dimensions=float("nan")))
case("embed batch 0", lambda: emb.embed(["x"], batch_size=0))
case("embed batch -5", lambda: emb.embed(["x"], batch_size=-5))
case("embed batch huge", lambda: emb.embed(["x"], batch_size=2**62))
case("embed normalize str", lambda: emb.embed(["x"], normalize="yes"))
"""


def test_embedder_abuse(converted):
    out = run_child(EMBED_CASES, model_dir=str(converted))
    assert_clean(out, {"embed 20MB": "ok", "embed 1MB latin-1": "ok", "embed None": "clean:TypeError",
                       "embed dims -1": "clean:"})


# ---------------------------------------------------------------- generation
GEN_CASES = """
import math
import numpy as np
import sutra_fast as sf
gen = sf.Generator.load(ckpt)
BAD = [-1, -10**30, 10**30, 2**64, 2**70, -2**70, float("nan"), float("inf"), float("-inf"),
       -1e308, 1e308, "1", None, [1], 1 + 2j, b"x", np.float32("nan"), np.int64(-1)]
PARAMS = ["temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "seed"]

def gen_with(**kw):
    kw.setdefault("max_tokens", 4)
    return gen.generate("hello", **kw)

def stream_some(**kw):
    s = gen.stream("hello", **kw)
    for _, piece in zip(range(5), s):
        pass
    s.close()

for p in PARAMS:
    for v in BAD:
        case(f"generate {p}={v!r}", lambda: gen_with(**{p: v}))
for v in BAD + [True, 1.5]:
    case(f"stream max_tokens={v!r}", lambda: stream_some(max_tokens=v))
for stop in ["", [""], ["x" * 1_000_000], 123, [None], [b"x"], ["\\udc80"]]:
    case(f"generate stop={str(stop)[:20]!r}", lambda: gen_with(stop=stop))
for prompt in [None, [-1], [2**64], [2**63], [70000], [], "", [1.5], "\\udc80\\ud800", "x" * 100_000,
               np.array([1, 2], np.uint64), np.array([2**64 - 1], np.uint64), b"bytes"]:
    case(f"generate prompt={str(prompt)[:20]!r}", lambda: gen.generate(prompt, max_tokens=2))
case("generate state=garbage", lambda: gen.generate("hi", max_tokens=2, state="x"))

# Sampler directly
V = 1000
logits = np.random.default_rng(0).standard_normal(V).astype(np.float32)
for p in ["temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
          "repetition_penalty", "penalty_decay", "seed"]:
    for v in BAD:
        case(f"Sampler {p}={v!r}", lambda: sf.Sampler(V, **{p: v}).sample(logits))
for v in [0, -1, 2**70, 1.5, None, "10"]:
    case(f"Sampler vocab={v!r}", lambda: sf.Sampler(v))
s = sf.Sampler(V, seed=1)
for name, arr in [("short", logits[:10]), ("long", np.zeros(V + 1, np.float32)),
                  ("2d", logits.reshape(10, 100)), ("f64", logits.astype(np.float64)),
                  ("int", np.zeros(V, np.int64)), ("strided", np.zeros(2 * V, np.float32)[::2]),
                  ("nan", np.full(V, np.nan, np.float32)), ("inf", np.full(V, np.inf, np.float32)),
                  ("-inf", np.full(V, -np.inf, np.float32)), ("list", [0.0] * V), ("none", None),
                  ("empty", np.zeros(0, np.float32))]:
    case(f"sample logits {name}", lambda: s.sample(arr))
    case(f"process logits {name}", lambda: s.process(arr))
case("Sampler logit_bias bad id", lambda: sf.Sampler(V, logit_bias={-1: 1.0, 10**9: 2.0}).sample(logits))
case("Sampler logit_bias nan", lambda: sf.Sampler(V, logit_bias={1: float("nan")}).sample(logits))
case("Sampler banned out of range", lambda: sf.Sampler(V, banned_tokens=[-5, V, 2**40]).sample(logits))
case("Sampler ban everything", lambda: sf.Sampler(V, banned_tokens=range(V)).sample(logits))

# forward with invalid token ids / states
st = gen.new_state()
for name, ids in [("negative", -1), ("vocab", gen.vocab_size), ("huge", 2**63 - 1), ("huger", 2**64),
                  ("uint64 max", np.array([2**64 - 1], np.uint64)), ("int64 min", np.array([-2**63])),
                  ("empty", []), ("2d", [[1, 2]]), ("float", [1.0]), ("str", "abc"), ("none", None),
                  ("mixed", [1, -1, 2]), ("bool", [True]), ("object", np.array([1, "a"], object))]:
    case(f"forward {name}", lambda: gen.forward(ids, st))
other = sf.RwkvState(np.zeros((1, 8), np.float32), np.zeros((1, 2, 4, 4), np.float32),
                     np.zeros((1, 8), np.float32))
case("forward foreign state", lambda: gen.forward([1], other))
case("forward state not a state", lambda: gen.forward([1], {"a": 1}))
bad = gen.new_state(); bad.att_kv = bad.att_kv[..., ::2] if hasattr(bad, "att_kv") else bad
case("forward strided state", lambda: gen.forward([1], bad))
f64 = gen.new_state(); f64.att_x_prev = f64.att_x_prev.astype(np.float64)
case("forward f64 state", lambda: gen.forward([1], f64))
case("forward good after abuse", lambda: gen.forward([1, 2, 3], gen.new_state()))
"""


@pytest.fixture(scope="module")
def world_ckpt_st(tmp_path_factory):
    return rc.make_checkpoint(tmp_path_factory.mktemp("abuse_ckpt"), WORLD_TINY, seed=3,
                              fmt="safetensors")


def test_generation_abuse(world_ckpt_st):
    out = run_child(GEN_CASES, ckpt=str(world_ckpt_st))
    assert_clean(out, {"forward negative": "clean:ValueError", "forward vocab": "clean:ValueError",
                       "forward uint64 max": "clean:ValueError", "forward foreign state": "clean:",
                       "generate temperature=nan": "clean:", "stream max_tokens=-1": "clean:",
                       "forward good after abuse": "ok"})


# ---------------------------------------------------------------- loading
def _corruptions(src: Path, dst: Path) -> list[Path]:
    """Truncated copies and byte-flipped copies of ``src`` in ``dst`` (same suffix)."""
    data = src.read_bytes()
    rng = np.random.default_rng(4)
    out = []
    for i, cut in enumerate([0, 1, 7, 8, 64, len(data) // 3, len(data) // 2, len(data) - 1]):
        p = dst / f"trunc{i}{src.suffix}"
        p.write_bytes(data[:cut])
        out.append(p)
    for i in range(8):
        b = bytearray(data)
        hi = min(len(b), 4096) if i < 5 else len(b)  # most flips in the header / zip directory
        for pos in rng.integers(0, hi, size=8):
            b[pos] ^= 0xFF
        p = dst / f"flip{i}{src.suffix}"
        p.write_bytes(bytes(b))
        out.append(p)
    junk = dst / f"junk{src.suffix}"
    junk.write_bytes(rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    return out + [junk]


LOAD_CASES = """
import sutra_fast as sf
case("Embedder empty folder", lambda: sf.Embedder.load(empty))
case("Generator empty folder", lambda: sf.Generator.load(empty))
case("Generator missing", lambda: sf.Generator.load(empty + "/nope.pth"))
case("Embedder missing", lambda: sf.Embedder.load(empty + "/nope"))
for p in files:
    case(f"Generator {p.rsplit('/', 1)[-1]}", lambda: sf.Generator.load(p))
for d in onnx_dirs:
    case(f"Embedder {d.rsplit('/', 1)[-1]}", lambda: sf.Embedder.load(d).embed(["hello"]))
"""


def test_loading_abuse(tmp_path, converted):
    from rwkv_checkpoints import TINY
    empty = tmp_path / "empty"
    empty.mkdir()
    files = []
    for fmt in ("pth", "safetensors"):
        d = tmp_path / fmt
        d.mkdir()
        files += _corruptions(rc.make_checkpoint(d, TINY, seed=1, fmt=fmt), d)
    # a zip .pth without the pickle, and a safetensors header that lies about offsets
    z = tmp_path / "nopickle.pth"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("archive/data/0", b"\0" * 64)
    lie = tmp_path / "lie.safetensors"
    hdr = json.dumps({"emb.weight": {"dtype": "F32", "shape": [10**6, 10**6],
                                     "data_offsets": [0, 2**62]}}).encode()
    lie.write_bytes(len(hdr).to_bytes(8, "little") + hdr + b"\0" * 16)
    neg = tmp_path / "hugehdr.safetensors"
    neg.write_bytes((2**63).to_bytes(8, "little") + b"{}")
    files += [z, lie, neg]

    onnx_dirs = []
    src = Path(converted)
    onnx = next(p for p in (src / "model.onnx", src / "onnx" / "model.onnx") if p.is_file())
    model = onnx.read_bytes()
    for name, data in [("onnx_trunc", model[: len(model) // 2]), ("onnx_junk", os.urandom(50_000)),
                       ("onnx_empty", b""), ("onnx_flip", bytes(b ^ 0xFF if i % 997 == 3 else b
                                                               for i, b in enumerate(model[:200_000]))
                                         + model[200_000:])]:
        d = tmp_path / name
        shutil.copytree(src, d)
        (d / onnx.relative_to(src)).write_bytes(data)
        onnx_dirs.append(str(d))
    out = run_child(LOAD_CASES, empty=str(empty), files=[str(p) for p in files], onnx_dirs=onnx_dirs)
    # A corrupt model.onnx is a RuntimeError naming the file (the Embedder wraps
    # ONNX Runtime's error; see docs/readme_reliability.md): clean, just not a ValueError.
    for k, v in out.items():
        if k.startswith("Embedder onnx_") and v.startswith("unclean:RuntimeError: ONNX Runtime could not load"):
            out[k] = "clean:RuntimeError"
    assert_clean(out, {"Embedder empty folder": "clean:", "Generator empty folder": "clean:",
                       "Generator missing": "clean:FileNotFoundError",
                       "Embedder onnx_junk": "clean:"})


# ---------------------------------------------------------------- kernels
KERNEL_CASES = """
import numpy as np
from sutra_fast import kernels as K
rng = np.random.default_rng(7)
DT = [np.float32, np.float64, np.float16, np.int32, np.int64, np.int8, bool, ">f4", object]

def rand_array(dtype=None):
    nd = int(rng.integers(0, 5))
    shape = tuple(int(rng.choice([0, 1, 2, 3, 7, 64])) for _ in range(nd))
    a = np.asarray(rng.standard_normal(shape) * 3).astype(dtype or DT[rng.integers(len(DT))])
    if nd and rng.random() < 0.3:   # strided / transposed / negative-stride views
        a = [a[..., ::2], a[::-1], a.T if nd > 1 else a[::-1]][int(rng.integers(3))]
    return a

for i in range(600):
    h, m = rand_array(), rand_array()
    if i % 3 == 0:     # make some that pass the dtype checks so the shape checks run
        h, m = rand_array(np.float32), rand_array(np.int64 if i % 2 else np.int32)
    for f in (K.mean_pool, K.cls_pool, K.max_pool):
        case(f"{f.__name__} {i} {h.dtype}{h.shape}/{h.strides} {m.dtype}{m.shape}", lambda: f(h, m))
    x = rand_array(np.float32 if i % 2 else None)
    dim = [0, 1, -1, 3, 2**40, 2**64, 1.5, None][i % 8]
    case(f"l2_normalize {i} {x.dtype}{x.shape}", lambda: K.l2_normalize(x))
    case(f"l2_normalize inplace {i} {x.dtype}{x.shape}", lambda: K.l2_normalize(x, inplace=True))
    case(f"l2_normalize eps {i}", lambda: K.l2_normalize(x, eps=[-1.0, float("nan"), 0.0][i % 3]))
    case(f"matryoshka {i} {x.dtype}{x.shape} {dim!r}", lambda: K.matryoshka(x, dim))
    case(f"matryoshka ln {i}", lambda: K.matryoshka(x, dim, layer_norm=True))
# pools on masks with values other than 0/1 and all-zero masks
h = rng.standard_normal((3, 5, 8)).astype(np.float32)
for mv in ([-1, 2, 10**9], [0, 0, 0]):
    m = np.array([mv + [0, 0]] * 3, np.int64)
    for f in (K.mean_pool, K.cls_pool, K.max_pool):
        case(f"{f.__name__} mask {mv}", lambda: f(h, m))
"""


def test_kernels_abuse():
    out = run_child(KERNEL_CASES)
    assert_clean(out)
    assert sum(v == "ok" for v in out.values()) > 50, "the random cases should reach the kernels"
