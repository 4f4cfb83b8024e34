"""`sutra-fast serve` as a real process: flags, a request, a graceful SIGTERM
that lets a streaming generation in flight finish before exiting 0, and the
--shutdown-timeout deadline that cancels generations still running."""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import re
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


@contextlib.contextmanager
def _serving(port: int, *args: str, out, env=None):
    """`sutra-fast serve --port PORT *args`, stdout and stderr to the open file `out`;
    killed on the way out if the test left it running."""
    proc = subprocess.Popen([sys.executable, "-m", "sutra_fast", "serve", "--port", str(port),
                             *args], env=_server_env() if env is None else env, stdout=out,
                            stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
    log = tmp_path / "server.log"
    with open(log, "w") as out, _serving(port, "--embed-model", str(converted), "--rwkv-model-id",
                                         "tiny-world", "--access-log", "1", out=out,
                                         env=env) as proc:
        _wait_healthy(proc, port, log)
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
    output = log.read_text()
    assert "Traceback" not in output, output
    # --access-log: one line per request (the embeddings call and the stream included)
    assert re.search(r"sutra_fast\.access: 127\.0\.0\.1 POST /v1/embeddings 200 \d+ B "
                     r"[\d.]+ ms request \w+", output), output
    assert re.search(r"sutra_fast\.access: 127\.0\.0\.1 POST /v1/completions 200 ", output)


def test_shutdown_deadline_cancels_generations_and_ends_their_streams(tmp_path, world_ckpt):
    """Generations still running at --shutdown-timeout are cancelled and their
    streams end properly; the whole shutdown takes about the timeout, not twice it.
    A keep-alive connection idle at the signal is closed at once, not after the drain."""
    timeout, port, log = 4.0, _free_port(), tmp_path / "server.log"
    with open(log, "w") as out, _serving(port, "--embeddings", "0", "--rwkv-model", str(world_ckpt),
                                         "--shutdown-timeout", str(timeout),
                                         "--max-tokens-limit", "10000000", out=out) as proc:
        _wait_healthy(proc, port, log)
        idle_conn, idle = _request(port, "GET", "/health")  # kept alive, then idle
        assert idle.status == 200 and idle.read()
        endless = {"prompt": "Hi", "max_tokens": 10_000_000, "temperature": 0, "stream": True}
        sse_conn, sse = _request(port, "POST", "/v1/completions", endless)
        nd_conn, nd = _request(port, "POST", "/generate", endless)
        assert sse.status == nd.status == 200
        assert sse.readline().startswith(b"data: ") and nd.readline().startswith(b"{")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        # closed by the server long before the deadline ends the drain (it used to be
        # closed only after it); timeout / 2 is a bound, the close comes at the signal
        idle_conn.sock.settimeout(timeout / 2)
        assert idle_conn.sock.recv(1) == b""
        idle_conn.close()
        with ThreadPoolExecutor(2) as pool:  # read both streams to their ends
            sse_text, nd_text = pool.map(lambda r: r.read().decode(), (sse, nd))
        assert proc.wait(timeout=30) == 0
        elapsed = time.monotonic() - t0
        sse_conn.close()
        nd_conn.close()
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
    with open(log, "w") as out, _serving(port, "--embeddings", "0", out=out) as proc:
        _wait_healthy(proc, port, log, timeout=30)
        conn, resp = _request(port, "POST", "/generate", {"prompt": "x"})
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == 503 and "--rwkv-model" in body["error"]["message"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


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
    with open(log, "w") as out, _serving(port, "--embeddings", "0", "--rwkv-model",
                                         str(world_ckpt), out=out) as proc:
        _wait_healthy(proc, port, log)
        conn, resp = _request(port, "POST", "/v1/completions", {
            "prompt": "Hi", "max_tokens": 2000, "temperature": 0, "stream": True})
        assert resp.status == 200 and resp.readline().startswith(b"data: ")
        proc.send_signal(signal.SIGHUP)  # while the generation is running
        rest = resp.read().decode()
        conn.close()
        assert proc.wait(timeout=30) == 0
    output = log.read_text()
    events = [ln[6:] for ln in rest.splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]", output
    assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("length", "stop")
    assert "shutdown complete" in output and "Traceback" not in output, output


def test_full_stderr_does_not_stop_the_server(tmp_path):
    """With stderr on a full disk the startup banner cannot be written: the server
    still starts (it used to exit 1 with a false "cannot listen" error)."""
    port = _free_port()
    note = tmp_path / "note.log"
    note.write_text("(stderr went to /dev/full)")
    with open("/dev/full", "w") as full, _serving(port, "--embeddings", "0", out=full) as proc:
        _wait_healthy(proc, port, note)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _wait_for_log(proc, log: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, f"server died: {log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} in {timeout:g} s: {log.read_text()}"
        time.sleep(0.1)
    return log.read_text()


def test_sigterm_while_the_model_waits_for_another_process_conversion_lock(tmp_path):
    """The default model's first use waits for another process converting it (a
    lock); SIGTERM then still ends the server (it used to hang: the exit waited for
    the load thread, blocked in flock until the other process finished)."""
    from sutra_fast.model_folder import cache_suffix

    models = tmp_path / "cache" / "models"
    models.mkdir(parents=True)
    env = _server_env()
    env["SUTRA_CACHE_DIR"] = str(tmp_path / "cache")
    port, log = _free_port(), tmp_path / "server.log"
    with open(models / f".all-MiniLM-L6-v2{cache_suffix(None)}.lock", "a+b") as lock, \
            open(log, "w") as out:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # "another process" converting
        with _serving(port, "--shutdown-timeout", "1", out=out, env=env) as proc:
            _wait_for_log(proc, log, "waiting for another process converting the model")
            conn, resp = _request(port, "GET", "/health")
            assert resp.status == 503 and json.loads(resp.read())["status"] == "loading"
            conn.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, log.read_text()
    output = log.read_text()
    assert "loading abandoned" in output and "Traceback" not in output, output


def test_exit_on_load_error_shuts_down_with_status_1(tmp_path):
    """--exit-on-load-error: a model that fails to load ends the process, exit
    status 1 (for systemd's Restart=on-failure); by default it keeps running."""
    missing = tmp_path / "missing.pth"
    log = tmp_path / "server.log"
    with open(log, "w") as out, _serving(_free_port(), "--embeddings", "0", "--rwkv-model",
                                         str(missing), "--exit-on-load-error", "1",
                                         out=out) as proc:
        assert proc.wait(timeout=60) == 1, log.read_text()
    output = log.read_text()
    assert "RWKV model failed to load" in output and str(missing) in output, output
    assert "--exit-on-load-error is on (exit status 1)" in output
    assert "shutdown complete" in output and "Traceback" not in output, output
