"""`sutra-fast serve` as a real process: flags, a request, and a graceful SIGTERM
that lets a streaming generation in flight finish before exiting 0."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import sutra_fast as sf
from server_helpers import world_ckpt  # noqa: F401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port, method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    return conn, conn.getresponse()


def test_serve_process_sigterm_finishes_in_flight_and_exits_0(tmp_path, converted, world_ckpt):
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                         env.get("PYTHONPATH", "")])
    env["SUTRA_CACHE_DIR"] = str(tmp_path / "cache")
    env["SUTRA_RWKV_MODEL"] = str(world_ckpt)  # via env; the rest via flags
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
         "--embed-model", str(converted), "--rwkv-model-id", "tiny-world"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "server died at start"
            try:
                conn, resp = _request(port, "GET", "/health", timeout=2)
                status = resp.status
                conn.close()
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server not healthy in 60 s"
            time.sleep(0.1)

        conn, resp = _request(port, "POST", "/v1/embeddings", {"input": ["hello", "world"]})
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == 200 and len(body["data"]) == 2
        assert resp.getheader("X-Request-ID")

        conn, resp = _request(port, "POST", "/v1/completions", {
            "prompt": "Hi", "model": "tiny-world", "max_tokens": 2000, "temperature": 0,
            "stream": True})
        assert resp.status == 200
        first = resp.readline()
        assert first.startswith(b"data: ")
        proc.send_signal(signal.SIGTERM)  # while the generation is running
        rest = resp.read().decode()
        conn.close()
        events = [ln[6:] for ln in rest.splitlines() if ln.startswith("data: ")]
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("length", "stop")
        assert len(events) > 10
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.seek(0)
        output = log.read()
        log.close()
    assert "Traceback" not in output, output


def test_sigint_on_an_idle_server_exits_0(tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                         env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                             "--embeddings", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                conn, resp = _request(port, "GET", "/health", timeout=2)
                ok = resp.status == 200
                conn.close()
                if ok:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.1)
        conn, resp = _request(port, "POST", "/generate", {"prompt": "x"})
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == 503 and "--rwkv-model" in body["error"]["message"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_readme_documents_every_flag_and_env_var():
    from sutra_fast.server.config import OPTIONS, env_name

    root = Path(__file__).resolve().parents[1]
    # docs/readme_server.md until the lead folds it into README.md
    readme = next(p for p in (root / "docs" / "readme_server.md", root / "README.md") if p.is_file())
    text = readme.read_text(encoding="utf-8")
    missing = [name for field, flag, *_ in OPTIONS for name in (flag, env_name(field))
               if f"`{name}`" not in text]
    assert not missing, f"{readme.name} does not mention {missing}"


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                             env.get("PYTHONPATH", "")])
        out = subprocess.run([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                              "--embeddings", "0"], env=env, capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr
