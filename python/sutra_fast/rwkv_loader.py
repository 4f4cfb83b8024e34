"""Torch-free reading of RWKV checkpoints (.pth torch zip archives and .safetensors).

Nothing here imports torch or unpickles arbitrary objects: the pickle inside a
.pth is read by a restricted unpickler that knows only the handful of globals
torch's tensor format uses, and tensor data is memory-mapped from the file.

Tensors come back as numpy arrays: float32, float16, or bf16 as raw uint16 bit
patterns (numpy has no bf16), together with a dtype tag.
"""
from __future__ import annotations

import json
import math
import mmap
import pickle
import re
import struct
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sutra_fast.safetensors_io import check_entry, is_uint

__all__ = ["Tensor", "Checkpoint", "RwkvConfig", "read_checkpoint", "detect_config", "to_float32"]


@dataclass
class Tensor:
    """One tensor: `data` is float32, float16 or (for bf16) uint16 bit patterns."""
    dtype: str  # "fp32" | "fp16" | "bf16"
    data: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def to_float32(t: Tensor) -> np.ndarray:
    """A float32 copy (or view for fp32) of a tensor."""
    if t.dtype == "bf16":
        return (t.data.astype(np.uint32) << 16).view(np.float32)
    return t.data.astype(np.float32, copy=False)


@dataclass
class Checkpoint:
    path: Path
    tensors: "OrderedDict[str, Tensor]"
    _mm: mmap.mmap | None = field(default=None, repr=False)


# ---------------------------------------------------------------- safetensors

_ST_DTYPES = {"F32": ("fp32", np.dtype("<f4")), "F16": ("fp16", np.dtype("<f2")),
              "BF16": ("bf16", np.dtype("<u2"))}
_ST_ITEMSIZES = {k: npdt.itemsize for k, (_, npdt) in _ST_DTYPES.items()}


def _map_file(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            raise ValueError(f"{path}: the file is empty")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _start_offset(entry) -> int:
    """Sort key: where a header entry's data starts (0 for a malformed entry,
    which the entry check below then rejects with a ValueError)."""
    off = entry[1].get("data_offsets") if isinstance(entry[1], dict) else None
    return off[0] if isinstance(off, list) and off and is_uint(off[0]) else 0


def _read_safetensors(path: Path) -> Checkpoint:
    mm = _map_file(path)
    size = len(mm)
    if size < 8:
        raise ValueError(f"{path}: too short for a safetensors file ({size} bytes)")
    (hlen,) = struct.unpack("<Q", mm[:8])
    if hlen > size - 8 or hlen > 100 * 2**20:
        raise ValueError(f"{path}: safetensors header length {hlen} exceeds the file "
                         f"({size} bytes); the file is truncated or not safetensors")
    try:
        header = json.loads(bytes(mm[8:8 + hlen]))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: safetensors header is not valid JSON ({e})") from None
    except RecursionError:
        raise ValueError(f"{path}: invalid safetensors header (JSON nested too deeply)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    base = 8 + hlen
    out: "OrderedDict[str, Tensor]" = OrderedDict()
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=_start_offset)
    for name, info in entries:
        dt, shape, lo, hi = check_entry(path, name, info, _ST_ITEMSIZES, "F32, F16 and BF16")
        tag, npdt = _ST_DTYPES[dt]
        count = math.prod(shape)  # Python ints: no int64 overflow (1 for a scalar)
        if not (lo <= hi) or hi - lo != count * npdt.itemsize:
            raise ValueError(f"{path}: tensor {name!r}: offsets {lo}..{hi} do not fit its "
                             f"shape {shape} and dtype {dt}")
        if base + hi > size:
            raise ValueError(f"{path}: tensor {name!r} ends at byte {base + hi} but the file "
                             f"has {size} bytes; the file is truncated")
        arr = np.frombuffer(mm, dtype=npdt, count=count, offset=base + lo).reshape(shape)
        out[name] = Tensor(tag, arr)
    return Checkpoint(path, out, mm)


# ---------------------------------------------------------------- torch zip .pth

_STORAGE_DTYPES = {
    "FloatStorage": ("fp32", np.dtype("<f4")),
    "HalfStorage": ("fp16", np.dtype("<f2")),
    "BFloat16Storage": ("bf16", np.dtype("<u2")),
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _zip_member_offset(mm: mmap.mmap, info: zipfile.ZipInfo) -> int:
    """Byte offset of a stored (uncompressed) zip member's data inside the file."""
    off = info.header_offset
    if off + 30 > len(mm) or mm[off:off + 4] != b"PK\x03\x04":
        raise ValueError(f"corrupt zip local header for {info.filename}")
    name_len, extra_len = struct.unpack("<HH", mm[off + 26:off + 30])
    return off + 30 + name_len + extra_len


class _TorchUnpickler(pickle.Unpickler):
    """Knows only what a torch state dict of dense CPU tensors needs; refuses everything else."""

    def __init__(self, file, load_storage):
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, backward_hooks: data
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: not part of a plain tensor state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, stype, key, _location, numel = pid
        return self._load_storage(stype.name, str(key), int(numel))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    tag, arr = storage
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ValueError(f"bad tensor geometry size={size} stride={stride}")
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else storage_offset - 1
    if storage_offset < 0 or last >= arr.size:
        raise ValueError(f"tensor of size {size} runs past its storage ({arr.size} elements)")
    item = arr.itemsize
    view = np.lib.stride_tricks.as_strided(arr[storage_offset:], shape=size,
                                           strides=tuple(s * item for s in stride), writeable=False)
    return Tensor(tag, view)


def _read_pth(path: Path) -> Checkpoint:
    mm = _map_file(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        if mm[:4] == b"PK\x03\x04":  # a zip that lost its central directory (end of file)
            raise ValueError(f"{path}: truncated or damaged zip archive: no readable central "
                             f"directory ({e}); the file is incomplete or corrupt") from None
        raise ValueError(f"{path}: not a torch zip checkpoint (legacy pickled .pth files are not "
                         "supported; re-save with a current torch or convert to .safetensors)") from None
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: zip archive has no single data.pkl; not a torch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        infos = {i.filename: i for i in zf.infolist()}

        def load_storage(stype: str, key: str, numel: int):
            tag, npdt = _STORAGE_DTYPES[stype]
            info = infos.get(f"{prefix}data/{key}")
            if info is None:
                raise ValueError(f"{path}: storage {key} is missing from the archive")
            if info.file_size < numel * npdt.itemsize:
                raise ValueError(f"{path}: storage {key} holds {info.file_size} bytes, "
                                 f"needs {numel * npdt.itemsize}")
            if info.compress_type == zipfile.ZIP_STORED:
                off = _zip_member_offset(mm, info)
                if off + numel * npdt.itemsize > len(mm):
                    raise ValueError(f"{path}: storage {key} runs past the end of the file; "
                                     "the file is truncated")
                arr = np.frombuffer(mm, dtype=npdt, count=numel, offset=off)
            else:  # compressed member: no mmap possible, read it
                arr = np.frombuffer(zf.read(info), dtype=npdt, count=numel)
            return (tag, arr)

        try:
            with zf.open(pkl[0]) as f:
                obj = _TorchUnpickler(f, load_storage).load()
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error,
                TypeError, AttributeError, IndexError, KeyError) as e:
            raise ValueError(f"{path}: cannot read the checkpoint's pickle: {e}") from None
        except RecursionError:
            raise ValueError(f"{path}: the checkpoint's pickle is nested too deeply to be a "
                             "state dict") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: the checkpoint is not a flat {{name: tensor}} state dict")
    return Checkpoint(path, OrderedDict(obj), mm)


_CKPT_SUFFIXES = (".pth", ".safetensors")


def _folder_error(path: Path) -> FileNotFoundError:
    """What to say when the checkpoint path is a folder: name the checkpoint files in it."""
    try:
        found = sorted(p for p in path.iterdir() if p.suffix.lower() in _CKPT_SUFFIXES and p.is_file())
    except OSError:  # unreadable folder: say what we can
        found = []
    if not found:
        return FileNotFoundError(f"{path} is a folder, not a checkpoint file, and holds no .pth or "
                                 ".safetensors file; pass the path of an RWKV-7 .pth or "
                                 ".safetensors checkpoint")
    shown = ", ".join(str(p) for p in found[:5]) + (f" (and {len(found) - 5} more)" if len(found) > 5 else "")
    return FileNotFoundError(f"{path} is a folder, not a checkpoint file; pass the .pth or "
                             f".safetensors file inside it: {shown}")


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    """The first 9 bytes start a safetensors file: a little-endian header length that
    fits in the file, then the header's opening '{'."""
    return len(head) == 9 and struct.unpack("<Q", head[:8])[0] <= size - 8 and head[8:] == b"{"


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a .pth (torch zip) or .safetensors file without torch; tensors are mmap-backed.

    A file that is neither a zip archive, nor named .pth or .safetensors, nor starts
    like a safetensors file is refused as "not an RWKV checkpoint"; a file that is
    plausibly one of the two formats gets the precise message of what is damaged."""
    path = Path(path)
    if path.is_dir():
        raise _folder_error(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {path}")
    with open(path, "rb") as f:
        head, size = f.read(9), f.seek(0, 2)
    magic, suffix = head[:4], path.suffix.lower()
    if magic != b"PK\x03\x04":
        if suffix == ".pth":
            raise ValueError(f"{path}: not a torch zip archive (starts with {magic!r})")
        if size == 0 or suffix == ".safetensors" or _looks_like_safetensors(head, size):
            return _read_safetensors(path)  # says what is wrong: empty, truncated, bad header
        raise ValueError(f"{path} is not an RWKV checkpoint: expected a .pth (torch zip) or "
                         ".safetensors file")
    try:
        return _read_pth(path)
    # zipfile's own complaints about a damaged archive: a bad structure, a member
    # "needing" a newer zip version or another compression (NotImplementedError),
    # a flagged password (RuntimeError), corrupt compressed data (zlib.error).
    # (RecursionError is a RuntimeError but no zip symptom: let it through.)
    except RecursionError:
        raise
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error, EOFError) as e:
        raise ValueError(f"{path}: corrupt zip archive: {e}") from None


# ---------------------------------------------------------------- architecture detection

@dataclass(frozen=True)
class RwkvConfig:
    version: str      # "7" (x070)
    n_layer: int
    n_embd: int
    n_head: int
    head_size: int
    vocab_size: int
    d_w: int
    d_a: int
    d_v: int
    d_g: int
    ffn_dim: int
    layer0_has_v: bool


_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")


def _v7_names(i: int, with_v: bool) -> list[str]:
    a = f"blocks.{i}.att."
    names = [f"blocks.{i}.{n}" for n in ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias")]
    names += [a + n for n in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "w1", "w2",
                              "a0", "a1", "a2", "g1", "g2", "k_k", "k_a", "r_k",
                              "receptance.weight", "key.weight", "value.weight", "output.weight",
                              "ln_x.weight", "ln_x.bias")]
    if with_v:
        names += [a + "v0", a + "v1", a + "v2"]
    names += [f"blocks.{i}.ffn.{n}" for n in ("x_k", "key.weight", "value.weight")]
    return names


def detect_config(tensors: dict, source: str = "checkpoint") -> RwkvConfig:
    """Find the architecture and sizes from names/shapes; ValueError for anything not RWKV-7."""
    keys = set(tensors)
    if "emb.weight" not in keys or "blocks.0.ln1.weight" not in keys:
        sample = ", ".join(sorted(keys)[:6])
        raise ValueError(f"{source}: not an RWKV checkpoint (no emb.weight / blocks.0.ln1.weight; "
                         f"{len(keys)} tensors, e.g. {sample})")
    if "blocks.0.att.r_k" not in keys:
        if any(k.endswith("att.time_maa_x") or k.endswith("att.time_faaaa") for k in keys):
            found = "RWKV-6"
        elif any("ln_x" in k for k in keys):
            found = "RWKV-5"
        elif any(k.endswith("att.time_first") for k in keys):
            found = "RWKV-4"
        else:
            found = "an unknown RWKV variant"
        raise ValueError(f"{source}: this looks like {found}; only RWKV-7 (x070) is supported")
    if any(".ffn.s_emb" in k or k.endswith("ffn.s0") for k in keys):
        raise ValueError(f"{source}: RWKV-7 DeepEmbed checkpoints are not supported")

    def shape(name):
        if name not in tensors:
            raise ValueError(f"{source}: RWKV-7 checkpoint is missing the tensor {name!r}")
        return tuple(tensors[name].shape)

    def matrix(name):
        s = shape(name)
        if len(s) != 2:
            raise ValueError(f"{source}: tensor {name!r} has shape {s}; expected a matrix "
                             "(2 dimensions)")
        return s

    def dim(name, axis):
        return matrix(name)[axis]

    V, C = matrix("emb.weight")
    rk = shape("blocks.0.att.r_k")
    if len(rk) != 2 or rk[0] * rk[1] != C:
        raise ValueError(f"{source}: tensor 'blocks.0.att.r_k' has shape {rk}, expected "
                         f"(n_head, head_size) with n_head*head_size = n_embd = {C}")
    H, N = rk
    layers = set()
    for k in keys:
        if (m := _BLOCK_RE.match(k)):
            digits = m.group(1)
            if len(digits) > 12:  # also keeps int() clear of its 4300-digit limit
                short = (lambda t, n: t if len(t) <= n else t[:n] + "...")
                raise ValueError(f"{source}: block indices are not contiguous: tensor "
                                 f"{short(k, 60)!r} has block index {short(digits, 20)} "
                                 f"({len(digits)} digits)")
            layers.add(int(digits))
    L = max(layers) + 1
    # Distinct non-negative indices are 0..L-1 exactly when there are L of them; a
    # set(range(L)) would be built for L = 10**13 by a tensor named blocks.<huge>.*.
    if len(layers) != L:
        present = sorted(layers)
        gaps = [i for i in range(min(L, len(layers) + 1)) if i not in layers][:8]
        raise ValueError(f"{source}: block indices are not contiguous: {len(layers)} distinct "
                         f"indices from {present[0]} to {present[-1]} (first missing: {gaps}; "
                         f"present: {present[:8]}{' ...' if len(present) > 8 else ''})")
    d_w = dim("blocks.0.att.w1", -1)
    d_a = dim("blocks.0.att.a1", -1)
    d_g = dim("blocks.0.att.g1", -1)
    F = dim("blocks.0.ffn.key.weight", 0)
    layer0_v = "blocks.0.att.v1" in keys
    vname = "blocks.1.att.v1" if L > 1 else "blocks.0.att.v1"
    d_v = dim(vname, -1) if vname in keys else 0
    cfg = RwkvConfig("7", L, C, H, N, V, d_w, d_a, d_v, d_g, F, layer0_v)

    expected = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,),
                "ln_out.weight": (C,), "ln_out.bias": (C,), "head.weight": (V, C)}
    vec = (1, 1, C)
    for i in range(L):
        with_v = i > 0 or layer0_v
        p, a = f"blocks.{i}.", f"blocks.{i}.att."
        for n in ("ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"):
            expected[p + n] = (C,)
        for n in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g", "w0", "a0", "k_k", "k_a"):
            expected[a + n] = vec
        expected.update({a + "w1": (C, d_w), a + "w2": (d_w, C), a + "a1": (C, d_a),
                         a + "a2": (d_a, C), a + "g1": (C, d_g), a + "g2": (d_g, C),
                         a + "r_k": (H, N), a + "ln_x.weight": (C,), a + "ln_x.bias": (C,)})
        for n in ("receptance", "key", "value", "output"):
            expected[a + n + ".weight"] = (C, C)
        if with_v:
            expected.update({a + "v0": vec, a + "v1": (C, d_v), a + "v2": (d_v, C)})
        expected.update({p + "ffn.x_k": vec, p + "ffn.key.weight": (F, C),
                         p + "ffn.value.weight": (C, F)})
    missing = [n for n in expected if n not in keys]
    if missing:
        raise ValueError(f"{source}: RWKV-7 checkpoint is missing {len(missing)} tensors, "
                         f"e.g. {missing[:4]}")
    extra = sorted(keys - set(expected))
    if extra:
        raise ValueError(f"{source}: unexpected tensors for RWKV-7: {extra[:4]}")
    for n, want in expected.items():
        got = shape(n)
        # (1,1,C) mixing vectors may also be stored squeezed.
        if got != want and not (len(want) == 3 and got == (C,)):
            raise ValueError(f"{source}: tensor {n} has shape {got}, expected {want}")
    if d_v == 0 and L > 1:
        raise ValueError(f"{source}: no value-residual LoRA (att.v1) found")
    return cfg
