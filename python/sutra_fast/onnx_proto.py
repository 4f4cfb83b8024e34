"""A minimal ONNX protobuf writer (no `onnx` package needed at run time).

ONNX models are protocol-buffer messages. The converter only ever *writes* a
handful of message types, so instead of depending on the `onnx` package (and
protobuf) we serialise them here by hand. Field numbers follow
https://github.com/onnx/onnx/blob/main/onnx/onnx.proto; the tests parse our
output with the real `onnx` package and run `onnx.checker` on it.

Messages are built as plain bytes: every helper returns the encoded message.
"""
from __future__ import annotations

import struct
from typing import Iterable, Sequence

import numpy as np

# TensorProto.DataType
FLOAT, UINT8, INT8, INT32, INT64, FLOAT16, BFLOAT16 = 1, 2, 3, 6, 7, 10, 16
_NP_TO_ONNX = {
    np.dtype(np.float32): FLOAT,
    np.dtype(np.uint8): UINT8,
    np.dtype(np.int8): INT8,
    np.dtype(np.int32): INT32,
    np.dtype(np.int64): INT64,
    np.dtype(np.float16): FLOAT16,
}

# AttributeProto.AttributeType
_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_TENSOR, _ATTR_FLOATS, _ATTR_INTS = 1, 2, 3, 4, 6, 7

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


def _varint(n: int) -> bytes:
    if n < 0:  # negative int64 is sent as its 64-bit two's complement
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _int(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(int(value))


def _bytes(field: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _key(field, _LEN) + _varint(len(value)) + value


def _float(field: int, value: float) -> bytes:
    return _key(field, _I32) + struct.pack("<f", value)


def _packed_ints(field: int, values: Iterable[int]) -> bytes:
    return _bytes(field, b"".join(_varint(int(v)) for v in values))


def _messages(field: int, messages: Iterable[bytes]) -> bytes:
    return b"".join(_bytes(field, m) for m in messages)


# ---------------------------------------------------------------- messages

def tensor(name: str, array: np.ndarray, external: "ExternalData | None" = None) -> bytes:
    """TensorProto with the data as little-endian raw bytes, inline or (when
    ``external`` is given) appended to the external data file."""
    array = np.asarray(array)
    try:
        dtype = _NP_TO_ONNX[array.dtype.newbyteorder("=")]
    except KeyError:
        raise ValueError(f"tensor {name!r}: unsupported dtype {array.dtype}") from None
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    head = _packed_ints(1, array.shape) + _int(2, dtype) + _bytes(8, name)
    if external is None:
        return head + _bytes(9, raw)
    offset = external.append(raw)
    entries = (("location", external.location), ("offset", str(offset)), ("length", str(len(raw))))
    return (head + _messages(13, (_bytes(1, k) + _bytes(2, v) for k, v in entries))
            + _int(14, 1))  # data_location = EXTERNAL


class ExternalData:
    """Tensor bytes stored beside the model (``location``, relative to model.onnx).

    ONNX Runtime memory-maps such a file, so weights it never touches (most of
    a 30k-row word-embedding table) are not read into memory, and loading skips
    parsing 90 MB of protobuf. Offsets are page-aligned for the mapping.
    """

    ALIGN = 4096

    def __init__(self, location: str):
        self.location = location
        self.chunks: list[bytes] = []
        self.size = 0

    def append(self, raw: bytes) -> int:
        pad = -self.size % self.ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
            self.size += pad
        offset = self.size
        self.chunks.append(raw)
        self.size += len(raw)
        return offset

    def write(self, path) -> None:
        with open(path, "wb") as f:
            for c in self.chunks:
                f.write(c)


def attribute(name: str, value) -> bytes:
    """AttributeProto for an int, float, str, int/float list or numpy tensor."""
    head = _bytes(1, name)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return head + _int(20, _ATTR_INT) + _int(3, int(value))
    if isinstance(value, (float, np.floating)):
        return head + _int(20, _ATTR_FLOAT) + _float(2, float(value))
    if isinstance(value, (str, bytes)):
        return head + _int(20, _ATTR_STRING) + _bytes(4, value)
    if isinstance(value, np.ndarray):
        return head + _int(20, _ATTR_TENSOR) + _bytes(5, tensor("", value))
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return head + _int(20, _ATTR_INTS) + _packed_ints(8, value)
        floats = b"".join(struct.pack("<f", float(v)) for v in value)
        return head + _int(20, _ATTR_FLOATS) + _bytes(7, floats)
    raise TypeError(f"attribute {name!r}: unsupported value type {type(value).__name__}")


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], *,
         name: str = "", domain: str = "", **attrs) -> bytes:
    """NodeProto. Keyword arguments become attributes (in sorted order)."""
    msg = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in outputs)
    if name:
        msg += _bytes(3, name)
    msg += _bytes(4, op_type)
    msg += _messages(5, (attribute(k, v) for k, v in sorted(attrs.items())))
    if domain:
        msg += _bytes(7, domain)
    return msg


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    """ValueInfoProto of a tensor; str dims are symbolic (dynamic) axes."""
    dims = []
    for d in shape:
        dims.append(_bytes(2, d) if isinstance(d, str) else _int(1, d))
    tensor_shape = _messages(1, dims)
    tensor_type = _int(1, elem_type) + _bytes(2, tensor_shape)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


def graph(name: str, nodes: Sequence[bytes], inputs: Sequence[bytes],
          outputs: Sequence[bytes], initializers: Sequence[bytes]) -> bytes:
    """GraphProto."""
    return (_messages(1, nodes) + _bytes(2, name) + _messages(5, initializers)
            + _messages(11, inputs) + _messages(12, outputs))


def model(graph_bytes: bytes, opsets: dict[str, int], *, ir_version: int = 8,
          producer: str = "sutra_fast", producer_version: str = "",
          metadata: dict[str, str] | None = None) -> bytes:
    """ModelProto. ``opsets`` maps domain ("" = ai.onnx) to its version."""
    msg = _int(1, ir_version) + _bytes(2, producer)
    if producer_version:
        msg += _bytes(3, producer_version)
    msg += _bytes(7, graph_bytes)
    msg += _messages(8, (_bytes(1, d) + _int(2, v) for d, v in sorted(opsets.items())))
    for k, v in sorted((metadata or {}).items()):
        msg += _bytes(14, _bytes(1, k) + _bytes(2, v))
    return msg
