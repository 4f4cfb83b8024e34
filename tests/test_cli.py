"""`sutra-fast` as a command: --version, Ctrl-C, and `embed`'s input and output
handling (streamed JSON lines, .npy written whole or not at all, bad paths and
bad stdin as one-line errors before any work)."""
from __future__ import annotations

import io
import json
import os
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sutra_fast as sf
from sutra_fast import cli
from sutra_fast.embedder import Embedder

PYTHON_DIR = str(Path(sf.__file__).resolve().parent.parent)
CHUNK = cli._EMBED_CHUNK


def _start_embed(*argv):
    """`sutra-fast embed ...` with stdin, stdout and stderr as pipes."""
    return subprocess.Popen([sys.executable, "-m", "sutra_fast", "embed", *argv],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=PYTHON_DIR))


def _read_until(stream, marker: bytes, timeout: float = 120) -> bytes:
    """Bytes of ``stream`` up to and including ``marker`` (b"" after ``timeout``)."""
    got = b""
    while marker not in got:
        if not select.select([stream], [], [], timeout)[0]:
            return b""   # never hang the suite
        part = os.read(stream.fileno(), 1 << 16)
        if not part:
            return got
        got += part
    return got


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"sutra-fast {sf.__version__}\n"


def test_ctrl_c_while_streaming_json_lines(converted):
    """The first chunk's rows arrive while stdin is still open (streamed, not held
    back until the end); Ctrl-C then ends the run with one line and status 130."""
    proc = _start_embed("--model", str(converted))
    proc.stdin.write(b"some text\n" * CHUNK)   # one chunk; stdin stays open
    proc.stdin.flush()
    first = _read_until(proc.stdout, b"\n").split(b"\n")[0]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert json.loads(first)["text"] == "some text", err.decode()
    assert proc.returncode == 130, err.decode()
    assert err.decode() == "sutra-fast: interrupted\n"


def test_ctrl_c_leaves_no_half_npy(converted, tmp_path):
    out = tmp_path / "big.npy"
    proc = _start_embed("--model", str(converted), "-o", str(out), "--progress")
    proc.stdin.write(b"some text\n" * CHUNK)
    proc.stdin.flush()
    progress = _read_until(proc.stderr, f"embed: {CHUNK} texts".encode())
    assert progress, "no progress line"   # the first chunk is done; more input may follow
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip() == "sutra-fast: interrupted"
    assert list(tmp_path.iterdir()) == []   # neither the target nor its temp file


def test_npy_written_when_done(converted, tmp_path, monkeypatch, capsys):
    out = tmp_path / "v.npy"
    texts = ["a", "b", "c"]
    assert cli.main(["embed", "--model", str(converted), "-o", str(out), *texts]) == 0
    np.testing.assert_allclose(np.load(out), Embedder.load(converted).embed(texts), atol=2e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["v.npy"]
    assert "wrote 3 x 384 float32" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))   # no lines: an empty [0, d] array
    assert cli.main(["embed", "--model", str(converted), "-o", str(out), "--dimensions", "8"]) == 0
    assert np.load(out).shape == (0, 8)


@pytest.mark.parametrize("output,message", [
    ("missing/out.npy", "output folder of"),
    ("missing/out.jsonl", "output folder of"),
    ("folder", "is a folder"),
    ("folder.npy", "is a folder"),
])
def test_bad_output_fails_before_the_model_loads(tmp_path, monkeypatch, capsys, output, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.npy").mkdir()

    def no_load(*a, **k):
        raise AssertionError("the model was loaded before the output was checked")
    monkeypatch.setattr(Embedder, "load", no_load)
    assert cli.main(["embed", "-o", str(tmp_path / output), "x"]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "folder.npy"]


def test_unwritable_output_fails_before_the_model_loads(tmp_path, monkeypatch, capsys):
    # chmod does not stop root, so the OS's answer is simulated
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)
    monkeypatch.setattr(Embedder, "load", lambda *a, **k: pytest.fail("model loaded"))
    for name in ("out.npy", "out.jsonl"):
        assert cli.main(["embed", "-o", str(tmp_path / name), "x"]) == 2
        assert "no permission to write in its folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_failed_load_leaves_no_empty_output(tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    assert cli.main(["embed", "--model", str(tmp_path / "none"), "-o", str(out), "x"]) == 2
    assert "not found" in capsys.readouterr().err
    assert not out.exists()


def test_closed_stdin_is_a_one_line_error(converted):
    proc = subprocess.run([sys.executable, "-m", "sutra_fast", "embed", "--model", str(converted)],
                          preexec_fn=lambda: os.close(0), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=PYTHON_DIR), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == ("sutra-fast: error: stdin is closed; pass the texts as arguments or "
                           "one per line on stdin\n")


@pytest.mark.parametrize("argv,hint", [
    (["embed", "--model", "{model}"], "sutra-fast embed: reading texts from stdin"),
    (["generate", "--model", "{ckpt}", "--max-tokens", "2", "-"],
     "sutra-fast generate: type the prompt, then Ctrl-D"),
])
def test_a_terminal_on_stdin_is_told_what_to_type(converted, tmp_path, argv, hint):
    """A bare command reading a terminal used to wait without a word."""
    import pty

    from rwkv_checkpoints import WORLD_TINY, make_checkpoint

    ckpt = make_checkpoint(tmp_path, WORLD_TINY, fmt="safetensors") if "{ckpt}" in argv else ""
    argv = [a.format(model=converted, ckpt=ckpt) for a in argv]
    leader, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", *argv], stdin=terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=PYTHON_DIR))
    os.close(terminal)
    try:
        assert hint.encode() in _read_until(proc.stderr, b"\n", timeout=30)   # before any input
        os.write(leader, b"hello\n\x04")                            # a line, then Ctrl-D
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()   # closes the pipes
    assert proc.returncode == 0, err.decode()
    assert out.strip()


def test_stdin_that_is_not_utf8_is_a_one_line_error(converted, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"ok\ncaf\xe9\n")))
    assert cli.main(["embed", "--model", str(converted)]) == 2
    assert capsys.readouterr().err == ("sutra-fast: error: line 2 of stdin is not valid UTF-8 "
                                       "(byte 0xe9 at offset 3); pass UTF-8 text\n")


def test_argument_that_is_not_utf8_is_a_one_line_error(converted, capsys):
    assert cli.main(["embed", "--model", str(converted), "ok", "caf\udce9"]) == 2
    assert capsys.readouterr().err == ("sutra-fast: error: text argument 2 is not valid UTF-8 "
                                       "(undecodable input at character 3); pass UTF-8 text\n")


def test_stdin_lines_keep_their_order_across_chunks(converted, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_EMBED_CHUNK", 3)   # 7 lines: chunks of 3, 3 and 1
    lines = ["long " * 40, "a", "", "b b b", "x" * 300, "c", "end"]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        "".join(t + "\r\n" for t in lines).encode())))
    assert cli.main(["embed", "--model", str(converted), "--dimensions", "16"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == lines
    want = Embedder.load(converted).embed(lines, dimensions=16)
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), want, atol=2e-5)


def test_ctrl_c_while_generating(tmp_path):
    from rwkv_checkpoints import WORLD_TINY, make_checkpoint

    model = make_checkpoint(tmp_path, WORLD_TINY, fmt="safetensors")
    proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "generate", "--model", str(model),
                             "--max-tokens", "100000", "Hello"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=PYTHON_DIR))
    assert proc.stdout.read(100)   # generating (and soon blocked on the full pipe)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    # the usual statistics line for the tokens generated so far, then the one-line notice
    stats, notice = err.decode().splitlines()
    assert re.fullmatch(r"\[\d+ prompt \+ \d+ generated tokens; prefill \d+ ms; .* tok/s; "
                        r"finish: interrupted\]", stats), stats
    assert notice == "sutra-fast: interrupted"
