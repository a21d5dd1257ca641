"""One codec for every topic: JSON metadata plus compressed binary arrays in one frame.

Pixels never travel as base64 inside JSON. A message value is::

    b"DSF1" | uint32 big-endian N | N bytes of UTF-8 JSON metadata | payload

The JSON object holds the event's fields, ``"type"`` (the event class name) and, for each binary
field present, ``"_binary": {field: {"kind": "array"|"bytes", "dtype", "shape", "codec": "zstd"|"raw",
"offset", "length"}}`` locating it in the payload. Arrays are C-order little-endian bytes. The same
metadata is mirrored in Kafka headers (``ds-type``, ``ds-schema-version``) so a router can tell what
a message is without decoding it. A non-Python instrument can produce this frame with a JSON library
and zstd (or ``"codec": "raw"``).

Every failure to decode raises :class:`schemas.errors.SchemaError` naming the field and the reason;
the streaming agents send such messages to the dead-letter queue.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zstandard
from pydantic import ValidationError

from schemas.errors import SchemaError
from schemas.events import EVENT_TYPES, MAX_PIXELS, SCHEMA_VERSION, Event

__all__ = ["CONTENT_TYPE", "MAGIC", "Headers", "decode", "encode", "headers_for"]

MAGIC = b"DSF1"
CONTENT_TYPE = "application/x-driftscope-frame"
_PREFIX = struct.Struct(">4sI")
_MAX_METADATA = 4 * 1024 * 1024
# The largest array a frame may decompress to: a MAX_PIXELS image of 4-byte samples, 4 channels.
_MAX_ARRAY_BYTES = MAX_PIXELS * 4 * 4
# The largest bytes field (a dead letter's original message): above any message size a topic allows.
_MAX_BYTES_FIELD = 64 * 1024 * 1024
_ARRAY_DTYPES = frozenset({"uint8", "uint16", "int32", "float32"})
_ZSTD_LEVEL = 3

Headers = list[tuple[str, str | bytes | None]]


def headers_for(event: Event) -> Headers:
    """Kafka headers that describe a framed event without decoding it."""
    return [
        ("ds-type", type(event).__name__.encode()),
        ("ds-schema-version", str(event.schema_version).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def encode(event: Event, *, compress: bool = True) -> bytes:
    """Frame ``event`` as bytes: JSON metadata plus its arrays compressed with zstd."""
    meta: dict[str, Any] = event.model_dump(mode="json", exclude=set(event.binary_fields))
    meta["type"] = type(event).__name__
    chunks: list[bytes] = []
    binary: dict[str, dict[str, Any]] = {}
    offset = 0
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    for name in event.binary_fields:
        value = getattr(event, name)
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            desc: dict[str, Any] = {"kind": "array", "dtype": value.dtype.name, "shape": list(value.shape)}
        else:
            raw = bytes(value)
            desc = {"kind": "bytes"}
        data = compressor.compress(raw) if compress else raw
        desc.update(codec="zstd" if compress else "raw", offset=offset, length=len(data))
        binary[name] = desc
        chunks.append(data)
        offset += len(data)
    if binary:
        meta["_binary"] = binary
    header = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode()
    return _PREFIX.pack(MAGIC, len(header)) + header + b"".join(chunks)


def decode(value: bytes | None, *, expected: type[Event] | Sequence[type[Event]] | None = None) -> Event:
    """Decode a frame into its event, or raise :class:`SchemaError` saying what is wrong."""
    if not value:
        raise SchemaError("frame", "empty message")
    if len(value) < _PREFIX.size:
        raise SchemaError("frame", f"truncated: {len(value)} bytes is shorter than the frame prefix")
    magic, length = _PREFIX.unpack_from(value)
    if magic != MAGIC:
        raise SchemaError("frame", f"not a driftscope frame (magic {magic!r}, expected {MAGIC!r})")
    if length > _MAX_METADATA:
        raise SchemaError("frame", f"metadata length {length} exceeds {_MAX_METADATA}")
    end = _PREFIX.size + length
    if len(value) < end:
        raise SchemaError("frame", f"truncated: metadata needs {length} bytes, {len(value) - _PREFIX.size} present")
    meta = _parse_metadata(value[_PREFIX.size : end])
    cls = _event_class(meta, expected)
    binary = meta.pop("_binary", {})
    if not isinstance(binary, Mapping):
        raise SchemaError("_binary", "must be an object")
    payload = memoryview(value)[end:]
    for name, desc in binary.items():
        if name not in cls.binary_fields:
            raise SchemaError(name, f"{cls.__name__} has no binary field {name!r}")
        meta[name] = _read_binary(cls, name, desc, payload)
    try:
        return cls.model_validate(meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or cls.__name__
        raise SchemaError(field, first["msg"]) from exc


def _parse_metadata(raw: bytes) -> dict[str, Any]:
    def reject_constant(name: str) -> float:
        raise SchemaError("metadata", f"non-finite number {name} is not allowed")

    try:
        meta = json.loads(raw, parse_constant=reject_constant)
    except SchemaError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError("metadata", f"not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise SchemaError("metadata", "must be a JSON object")
    return meta


def _event_class(meta: dict[str, Any], expected: type[Event] | Sequence[type[Event]] | None) -> type[Event]:
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaError(
            "schema_version", f"unsupported schema version {version!r}; this build reads {SCHEMA_VERSION}"
        )
    name = meta.pop("type", None)
    cls = EVENT_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise SchemaError("type", f"unknown event type {name!r}; known: {', '.join(EVENT_TYPES)}")
    if expected is not None:
        allowed = (expected,) if isinstance(expected, type) else tuple(expected)
        if cls not in allowed:
            names = ", ".join(c.__name__ for c in allowed)
            raise SchemaError("type", f"{name} is not expected here (expected {names})")
    return cls


def _read_binary(cls: type[Event], name: str, desc: Any, payload: memoryview) -> np.ndarray | bytes:
    if not isinstance(desc, Mapping):
        raise SchemaError(name, "binary descriptor must be an object")
    try:
        offset, length, codec, kind = int(desc["offset"]), int(desc["length"]), desc["codec"], desc["kind"]
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(name, f"binary descriptor incomplete: {exc}") from exc
    if offset < 0 or length < 0 or offset + length > len(payload):
        raise SchemaError(name, f"truncated: needs bytes {offset}..{offset + length}, payload has {len(payload)}")
    expected_size = _MAX_BYTES_FIELD
    if kind == "array":
        expected_size = _expected_size(name, desc)
        try:  # the event's own limits, on the declared shape: nothing decompressed yet
            cls.check_array_shape(name, desc["shape"])
        except ValueError as exc:
            raise SchemaError(name, str(exc)) from exc
    chunk = bytes(payload[offset : offset + length])
    data = _decompress(name, codec, chunk, expected_size)
    if kind == "bytes":
        return data
    if kind != "array":
        raise SchemaError(name, f"unknown binary kind {kind!r}")
    if len(data) != expected_size:
        raise SchemaError(name, f"truncated: {len(data)} bytes for shape {desc['shape']} {desc['dtype']} "
                                f"needs {expected_size}")
    array = np.frombuffer(data, dtype=np.dtype(desc["dtype"]).newbyteorder("<")).reshape(desc["shape"])
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _expected_size(name: str, desc: Mapping[str, Any]) -> int:
    dtype, shape = desc.get("dtype"), desc.get("shape")
    if dtype not in _ARRAY_DTYPES:
        raise SchemaError(name, f"dtype {dtype!r} not one of {sorted(_ARRAY_DTYPES)}")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise SchemaError(name, f"shape {shape!r} must be a non-empty list of positive integers")
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size > _MAX_ARRAY_BYTES:
        raise SchemaError(name, f"shape {shape} {dtype} claims {size} bytes, above the {_MAX_ARRAY_BYTES} limit")
    return size


def _decompress(name: str, codec: Any, chunk: bytes, limit: int) -> bytes:
    if codec == "raw":
        return chunk
    if codec != "zstd":
        raise SchemaError(name, f"unknown codec {codec!r} (zstd or raw)")
    try:
        # Streaming read bounded by the declared size defuses decompression bombs.
        reader = zstandard.ZstdDecompressor().stream_reader(chunk)
        data = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise SchemaError(name, f"corrupt zstd data: {exc}") from exc
    if len(data) > limit:
        raise SchemaError(name, f"decompresses to more than the declared {limit} bytes")
    return data
