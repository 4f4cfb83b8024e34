"""`sutra-fast serve` as a real process: flags, a request, a graceful SIGTERM
that lets a streaming generation in flight finish before exiting 0, and the
--shutdown-timeout deadline that cancels generations still running."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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


def _server_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(sf.__file__).parent.parent),
                                         env.get("PYTHONPATH", "")])
    return env


def _wait_healthy(proc, port, log: Path, timeout: float = 60) -> None:
    """Until /health answers 200; the server's log (a file) explains a death."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"server died at start: {log.read_text()}"
        try:
            conn, resp = _request(port, "GET", "/health", timeout=2)
            status = resp.status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"server not healthy in {timeout:g} s"
        time.sleep(0.1)


def test_serve_process_sigterm_finishes_in_flight_and_exits_0(tmp_path, converted, world_ckpt):
    port = _free_port()
    env = _server_env()
    env["SUTRA_CACHE_DIR"] = str(tmp_path / "cache")
    env["SUTRA_RWKV_MODEL"] = str(world_ckpt)  # via env; the rest via flags
    log = open(tmp_path / "server.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
         "--embed-model", str(converted), "--rwkv-model-id", "tiny-world"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, tmp_path / "server.log")
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


def test_shutdown_deadline_cancels_generations_and_ends_their_streams(tmp_path, world_ckpt):
    """Generations still running at --shutdown-timeout are cancelled and their
    streams end properly; the whole shutdown takes about the timeout, not twice it."""
    timeout, port, log = 4.0, _free_port(), tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port), "--embeddings", "0",
             "--rwkv-model", str(world_ckpt), "--shutdown-timeout", str(timeout),
             "--max-tokens-limit", "10000000"],
            env=_server_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, log)
        endless = {"prompt": "Hi", "max_tokens": 10_000_000, "temperature": 0, "stream": True}
        sse_conn, sse = _request(port, "POST", "/v1/completions", endless)
        nd_conn, nd = _request(port, "POST", "/generate", endless)
        assert sse.status == nd.status == 200
        assert sse.readline().startswith(b"data: ") and nd.readline().startswith(b"{")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        with ThreadPoolExecutor(2) as pool:  # read both streams to their ends
            sse_text, nd_text = pool.map(lambda r: r.read().decode(), (sse, nd))
        assert proc.wait(timeout=30) == 0
        elapsed = time.monotonic() - t0
        sse_conn.close()
        nd_conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert "Traceback" not in output, output
    # the streams ran until the deadline; aiohttp's own wait took at least 2 x timeout
    # (the upper bound leaves a whole timeout of slack for a busy machine)
    assert timeout <= elapsed < 2 * timeout, (elapsed, output)
    events = [ln[6:] for ln in sse_text.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "length"
    last = json.loads(nd_text.splitlines()[-1])
    assert last["done"] is True and last["finish_reason"] == "length", last
    assert last["tokens_used"] > 100
    assert "shutting down: 2 request(s) in flight (2 generating)" in output, output
    assert "shutdown complete" in output and "2 generation(s) cancelled" in output, output


def test_sigint_on_an_idle_server_exits_0(tmp_path):
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                                 "--embeddings", "0"], env=_server_env(), stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, log, timeout=30)
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


def test_readme_documents_every_flag_and_env_var():
    from sutra_fast.server.config import OPTIONS, env_name

    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    missing = [name for field, flag, *_ in OPTIONS for name in (flag, env_name(field))
               if f"`{name}`" not in text]
    assert not missing, f"{readme.name} does not mention {missing}"


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                              "--embeddings", "0"], env=_server_env(), capture_output=True, text=True,
                             timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


def test_sighup_is_a_graceful_shutdown(tmp_path, world_ckpt):
    """SIGHUP (a closed terminal or session) shuts down like SIGTERM: the stream
    in flight finishes and the process exits 0 (by default it died at once, 129)."""
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sutra_fast", "serve", "--port", str(port), "--embeddings", "0",
             "--rwkv-model", str(world_ckpt)],
            env=_server_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, log)
        conn, resp = _request(port, "POST", "/v1/completions", {
            "prompt": "Hi", "max_tokens": 2000, "temperature": 0, "stream": True})
        assert resp.status == 200 and resp.readline().startswith(b"data: ")
        proc.send_signal(signal.SIGHUP)  # while the generation is running
        rest = resp.read().decode()
        conn.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    events = [ln[6:] for ln in rest.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]", output
    assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("length", "stop")
    assert "shutdown complete" in output and "Traceback" not in output, output


def test_full_stderr_does_not_stop_the_server(tmp_path):
    """With stderr on a full disk the startup banner cannot be written: the server
    still starts (it used to exit 1 with a false "cannot listen" error)."""
    port = _free_port()
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                                 "--embeddings", "0"], env=_server_env(), stdout=full,
                                stderr=full)
    try:
        note = tmp_path / "note.log"
        note.write_text("(stderr went to /dev/full)")
        _wait_healthy(proc, port, note)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
