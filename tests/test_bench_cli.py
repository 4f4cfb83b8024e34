"""`sutra-fast bench`: the quick run works end to end, its JSON and PNG are valid,
and bad arguments or missing reference packages give clean errors (no tracebacks)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import sutra_fast
from sutra_fast import cli, cli_bench

ROOT = Path(__file__).resolve().parents[1]
CASES = {"embed", "embed batch 1", "wordpiece", "world tokenizer", "rwkv decode", "rwkv prefill",
         "generate"}
ROW_KEYS = {"case", "ours", "theirs", "ours_s", "theirs_s", "ratio", "unit", "ours_rate",
            "theirs_rate"}


def _cli(*argv, cwd=None):
    # The sutra_fast under test (installed or built in place), this checkout's benchmarks.
    env = dict(os.environ, PYTHONPATH=str(Path(sutra_fast.__file__).parent.parent),
               SUTRA_BENCH_DIR=str(ROOT / "benchmarks"))
    return subprocess.run([sys.executable, "-m", "sutra_fast", *argv], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench_cli")
    out = _cli("bench", "--quick", "--json", str(d / "out.json"), "--plot", str(d / "out.png"),
               cwd=d)
    return out, d


def test_quick_run_prints_a_ratio_table(quick_run):
    out, _ = quick_run
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| case | ours | theirs |")
    assert len(lines) - 1 == 13            # header + one row per comparison
    assert "Loading" not in out.stdout     # the rwkv package's banners stay on stderr


def test_quick_json_has_the_expected_keys(quick_run):
    _, d = quick_run
    data = json.loads((d / "out.json").read_text())
    assert {"machine", "threads", "quick", "rows", "read_bandwidth_gb_s", "skipped",
            "elapsed_s"} <= set(data)
    assert data["threads"] == 1 and data["quick"] is True and data["skipped"] == {}
    assert {"cpu", "cores", "isa"} <= set(data["machine"])
    assert {r["case"] for r in data["rows"]} == CASES
    for r in data["rows"]:
        assert ROW_KEYS <= set(r), r
        assert r["ours_s"] > 0 and r["theirs_s"] > 0
        assert r["ratio"] == pytest.approx(r["ours_s"] / r["theirs_s"])
    emb = [r for r in data["rows"] if r["case"] == "embed"]
    assert all(0.9 < r["min_cosine_vs_st"] <= 1.0 + 1e-5 for r in emb)
    dec = [r for r in data["rows"] if r["case"] == "rwkv decode"]
    assert {r["ours"] for r in dec} == {"sutra_fast fp32", "sutra_fast bf16", "sutra_fast int8"}
    assert all(0.0 <= r["top1_agreement_vs_fp32"] <= 1.0 for r in dec)
    assert all(r["bandwidth_limit_gb_s"] == data["read_bandwidth_gb_s"] for r in dec)
    assert data["read_bandwidth_gb_s"] > 0.1 and data["matmul_gflops"] > 0.1
    pre = [r for r in data["rows"] if r["case"] == "rwkv prefill"]
    assert pre[0]["flop_limit_gflops"] == data["matmul_gflops"]  # fp32 row first


def test_plot_writes_a_png(quick_run):
    _, d = quick_run
    png = (d / "out.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.parametrize("argv,message", [
    (["--threads", "0"], "positive integer"),
    (["--threads", "two"], "positive integer"),
    (["--only", "nope"], "invalid choice"),
    (["--json", "/no/such/dir/out.json"], "does not exist"),
    (["--plot", "/no/such/dir/out.png"], "does not exist"),
])
def test_bad_arguments_are_clean_errors(argv, message):
    out = _cli("bench", "--quick", *argv)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_reference_packages_name_the_extra(monkeypatch, capsys):
    monkeypatch.setenv("SUTRA_BENCH_DIR", str(ROOT / "benchmarks"))
    e2e = cli_bench._load_e2e()
    monkeypatch.setattr(e2e, "missing", lambda case: ["rwkv"])
    assert cli.main(["bench", "--quick", "--only", "generate"]) == 2
    err = capsys.readouterr().err
    assert "missing rwkv" in err and 'pip install "sutra_fast[bench]"' in err


def test_bench_dir_must_exist(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SUTRA_BENCH_DIR", str(tmp_path))
    assert cli.main(["bench", "--quick"]) == 2
    assert capsys.readouterr().err == (
        f"sutra-fast: error: SUTRA_BENCH_DIR={str(tmp_path)!r} has no e2e.py: point it at the "
        "benchmarks/ folder of a sutra_fast source checkout\n")


def test_installed_wheel_is_told_to_use_a_checkout(monkeypatch, tmp_path, capsys):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "sutra_fast"
    monkeypatch.setattr(cli_bench, "__file__", str(site / "cli_bench.py"))
    monkeypatch.delenv("SUTRA_BENCH_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "benchmarks/ of a sutra_fast source checkout (a git clone)" in err
    assert "set SUTRA_BENCH_DIR to the checkout's benchmarks/ folder" in err
    assert "lib/python3.11/benchmarks" not in err


@pytest.mark.parametrize("option", ["--json", "--plot"])
def test_unusable_outputs_fail_before_the_run(monkeypatch, tmp_path, capsys, option):
    monkeypatch.setattr(cli_bench, "_load_e2e", lambda: pytest.fail("the run started"))
    assert cli.main(["bench", "--quick", option, str(tmp_path)]) == 2   # a folder
    assert capsys.readouterr().err == (f"sutra-fast: error: {option} {str(tmp_path)!r} is a "
                                       "folder; pass a file name\n")
    out = tmp_path / "old.json"
    out.write_text("{}")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: False)   # chmod does not stop root
    assert cli.main(["bench", "--quick", option, str(out)]) == 2
    assert capsys.readouterr().err == (f"sutra-fast: error: {option} {str(out)!r}: no permission "
                                       "to write it\n")
