"""The short soak (tools/soak.py --short) as a CI test: a real server process
under concurrent embedding and streamed-generation load, every answer checked
against the in-process result, zero lost, zero 5xx, RSS flat after warm-up."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_soak_short(tmp_path, converted):
    out = tmp_path / "soak.json"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "soak.py"), "--short",
                        "--embed-model", str(converted), "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert out.is_file(), p.stderr[-3000:]
    s = json.loads(out.read_text())
    assert s["lost"] == 0 and s["http_5xx"] == 0 and s["mismatches"] == 0, s
    assert s["generations_dropped_mid_stream"] > 0 and s["generations_completed"] > 0, s
    assert s["passed"], s
    assert p.returncode == 0, p.stderr[-3000:]
