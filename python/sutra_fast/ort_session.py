"""ONNX Runtime sessions that start from a copy of the model whose weights ORT
has already pre-packed.

Most of a session's creation is ORT pre-packing the MatMul weights into its
GEMM layouts and touching every page of them (fp32 MiniLM: ~45 of ~58 ms on
the benchmark machine). ORT can save the optimised graph together with those
packed weights; a session created from that copy skips the packing (~35 ms).
The packed layouts depend on the CPU and on the ORT version, so the copy
(one per source model, in ``$SUTRA_CACHE_DIR/prepared/``) records both and
the source files' sizes and modification times, and is used only when all of
them match. Otherwise the session is created from the source and writes a new
copy as it goes (one session creation plus writing the files), which replaces
the old one. The vectors are bit-identical either way (tested).
``SUTRA_PREPACK_CACHE=0`` turns this off (the copies take disk: MiniLM fp32
~130 MB, int8 ~70 MB). A copy that cannot be read or written is skipped with
an INFO line on the ``sutra_fast`` logger saying why.
"""
from __future__ import annotations

import json
import os
import platform
import zlib
from pathlib import Path
from typing import Callable

ENV_SWITCH = "SUTRA_PREPACK_CACHE"
_DONE = "prepared.json"  # written last, holds the key: a folder without it is never loaded
_PROVIDERS = ["CPUExecutionProvider"]
_STALE_TMP_S = 3600  # half-written copies of killed processes older than this are removed


_ON, _OFF = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


def enabled() -> bool:
    """``SUTRA_PREPACK_CACHE``: on unless 0/false/no/off; another value warns
    and keeps the default (on)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in _OFF:
        return False
    if value not in _ON:
        import warnings

        warnings.warn(f"{ENV_SWITCH}={value!r}: expected 1/0, true/false, yes/no or on/off; "
                      "the variable is ignored", RuntimeWarning, stacklevel=3)
    return True


def _log(message: str, *args) -> None:
    """Why a copy was not used or written (imports logging only then)."""
    import logging

    logging.getLogger("sutra_fast").info("pre-packed copy: " + message, *args)


def create_session(onnx_path: Path, make_options: Callable[[], object]):
    """An ``ort.InferenceSession`` for ``onnx_path`` on the CPU provider.

    ``make_options`` returns fresh ``SessionOptions`` (a failed attempt is
    retried with new ones). ORT's errors for a bad model surface unchanged,
    from the source model.
    """
    import onnxruntime as ort

    def plain():
        return ort.InferenceSession(_ort_path(onnx_path), make_options(), providers=_PROVIDERS)

    if not enabled():
        return plain()
    try:
        copy = _copy_folder(onnx_path)
        key = _key(onnx_path, ort.__version__)
        if _read_key(copy) == key:
            try:
                return ort.InferenceSession(_ort_path(copy / "model.onnx"), make_options(),
                                            providers=_PROVIDERS)
            except Exception as e:  # a damaged copy: replaced below
                _log("%s failed to load (%s); replacing it", copy, e)
                _remove(copy)
        from sutra_fast.model_folder import shared_temp_dir  # tempfile: only here

        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = shared_temp_dir(copy.parent, ".tmp-")
    except OSError as e:  # e.g. a read-only cache: no copy
        _log("cannot write one for %s (%s); loading it without", onnx_path, e)
        return plain()
    try:
        session = ort.InferenceSession(_ort_path(onnx_path), _saving_options(make_options(), tmp),
                                       providers=_PROVIDERS)
    except Exception as e:  # e.g. a full disk while saving; a bad model fails again below
        _log("writing one for %s failed (%s); loading it without", onnx_path, e)
        _remove(tmp)
        return plain()
    _publish(tmp, copy, key)
    return session


def _ort_path(path: Path) -> str:
    """``path`` as a str ORT's binding accepts: under a non-UTF-8 locale (LC_ALL=C)
    a non-ASCII name is a str with surrogate escapes, which it rejects; its bytes
    decoded as UTF-8 name the same file."""
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:  # bytes that are not UTF-8: ORT cannot open them by name
        return str(path)


def _saving_options(so, folder: Path):
    so.optimized_model_filepath = _ort_path(folder / "model.onnx")
    so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                "model.onnx.data")
    so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                "1024")
    so.add_session_config_entry("session.save_external_prepacked_constant_initializers", "1")
    return so


def _publish(tmp: Path, copy: Path, key: str) -> None:
    """Put the finished copy in place of any older one (a rename; when another
    process got there first, its copy stays) and clear stale leftovers."""
    import time

    try:
        if not (tmp / "model.onnx").is_file():
            raise OSError("ORT wrote no model")
        with open(tmp / _DONE, "w", encoding="utf-8") as f:
            json.dump({"key": key, "source": key.split("\n", 1)[0]}, f)
        if _read_key(copy) == key:
            raise OSError("another process wrote the same copy first")  # keep theirs
        if copy.exists():
            _remove(copy)  # another ORT version / CPU / source; a session reading it keeps its mapping
        os.rename(tmp, copy)
    except OSError as e:
        _log("not published: %s", e)
        _remove(tmp)
    # Leftovers: half-written copies of killed processes, copies of deleted models.
    now = time.time()
    try:
        others = list(copy.parent.iterdir())
    except OSError:
        return
    for other in others:
        try:
            if other.name.startswith(".tmp-"):
                if now - other.stat().st_mtime > _STALE_TMP_S:
                    _remove(other)
            elif not Path(_read_done(other).get("source", "/")).is_file():
                _remove(other)
        except OSError:
            pass


def _remove(path: Path) -> None:
    """Remove a copy (or whatever else sits at its name: a file, a link)."""
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def _copy_folder(onnx_path: Path) -> Path:
    """One copy per source model, named after its folder and path."""
    from sutra_fast.default_model import cache_dir

    source = onnx_path.resolve()
    tag = zlib.crc32(str(source).encode("utf-8", "surrogatepass"))
    return cache_dir() / "prepared" / f"{source.parent.name[:48]}-{tag:08x}"


def _key(onnx_path: Path, ort_version: str) -> str:
    """What the packed weights depend on: the source files (sizes and
    modification times), the ORT version and the CPU. Compared whole."""
    stamps = []
    for p in onnx_path.resolve().parent.iterdir():
        if p.is_file():
            st = p.stat()
            stamps.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join([str(onnx_path.resolve()), *sorted(stamps), f"onnxruntime {ort_version}",
                      platform.machine(), _cpu_identity()])


def _read_done(copy: Path) -> dict:
    try:
        with open(copy / _DONE, encoding="utf-8") as f:
            done = json.load(f)
        return done if isinstance(done, dict) else {}
    except (FileNotFoundError, NotADirectoryError):  # no copy (yet)
        return {}
    except (OSError, ValueError) as e:  # e.g. written by another user with a stricter umask
        _log("cannot read %s (%s)", copy / _DONE, e)
        return {}


def _read_key(copy: Path):
    return _read_done(copy).get("key")


def _cpu_identity() -> str:
    """Vendor, model and feature flags of the first CPU (what ORT's kernel
    choice, and so the packed layout, depends on)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            fields = {}
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        return "|".join(fields.get(k, "") for k in ("vendor_id", "model name", "flags"))
    except OSError:
        return platform.processor()
