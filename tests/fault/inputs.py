"""Hostile inputs for the fault tests: generated malformed frames, and images no worker may take.

Shared by the step-level fuzz tests (``test_fuzz_inputs.py``) and the worker-level one
(``test_worker_fuzz.py``), so a real worker process meets the same inputs as the steps.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import zstandard
from hypothesis import strategies as st

from schemas.codec import MAGIC, encode
from schemas.events import MAX_PIXELS, ImageEvent

__all__ = ["NOW", "TEMPLATE", "HostileImage", "hostile_images", "malformed", "mutated_frames"]

NOW = datetime(2026, 12, 1, tzinfo=UTC)
_PREFIX = struct.Struct(">4sI")


def _template() -> dict[str, Any]:
    frame = encode(ImageEvent(image_id="img", instrument_id="scope", acquired_at=NOW, shape=(32, 32),
                              dtype="uint16", pixels=np.ones((32, 32), np.uint16)))
    _, length = _PREFIX.unpack_from(frame)
    meta: dict[str, Any] = json.loads(frame[_PREFIX.size:_PREFIX.size + length])
    return meta


#: The metadata of a valid 32x32 uint16 image frame, to mutate.
TEMPLATE = _template()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _frame(meta: dict[str, Any], payload: bytes) -> bytes:
    header = json.dumps(meta).encode()
    return _PREFIX.pack(MAGIC, len(header)) + header + payload


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """A frame whose metadata has fields removed, replaced or added, and a payload of random bytes."""
    meta = dict(TEMPLATE)
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from([*meta, "extra"]))
        if draw(st.booleans()) and key in meta:
            del meta[key]
        else:
            meta[key] = draw(json_values)
    if draw(st.booleans()):  # hostile array descriptors: huge, empty, odd dtypes, offsets past the end
        meta["_binary"] = {"pixels": {
            "kind": "array", "codec": draw(st.sampled_from(["zstd", "raw", "lz77"])),
            "dtype": draw(st.sampled_from(["uint16", "float32", "int64", "object"])),
            "shape": draw(st.lists(st.integers(-1, 20000), min_size=0, max_size=4)),
            "offset": draw(st.integers(-5, 100)), "length": draw(st.integers(-5, 5000)),
        }}
    return _frame(meta, draw(st.binary(max_size=256)))


#: Any value a broken or hostile producer might send: random bytes, mutated frames, truncated frames.
malformed = st.one_of(st.binary(max_size=512), mutated_frames(),
                      st.builds(lambda f, cut: f[:cut], st.just(encode(ImageEvent(
                          image_id="t", instrument_id="scope", acquired_at=NOW, shape=(16, 16), dtype="uint16",
                          pixels=np.arange(256, dtype=np.uint16).reshape(16, 16)))), st.integers(0, 300)))


@dataclass(frozen=True)
class HostileImage:
    """An ``images.raw`` value that must be dead-lettered, and a phrase its reason must contain.

    ``contract``: the image contract itself refuses it (every consumer dead-letters it, the sink
    included). Otherwise it is a valid image that the serving models cannot read: the image agents
    dead-letter it and the sink records its arrival.
    """

    name: str
    value: bytes
    reason: str
    contract: bool = True


def _image_frame(shape: list[int], dtype: str, payload: bytes, *, codec: str = "raw",
                 channels: list[str] | None = None, pixels_shape: list[int] | None = None) -> bytes:
    """An image frame whose header declares ``shape`` and whose pixels are ``payload``, as declared."""
    n_channels = shape[2] if len(shape) == 3 else 1
    meta = dict(TEMPLATE, shape=shape, dtype=dtype,
                channels=channels if channels is not None else [f"c{i}" for i in range(n_channels)])
    meta["_binary"] = {"pixels": {"kind": "array", "codec": codec, "dtype": dtype,
                                  "shape": pixels_shape or shape, "offset": 0, "length": len(payload)}}
    return _frame(meta, payload)


def _zeros_zstd(nbytes: int) -> bytes:
    """``nbytes`` of zeros, zstd-compressed without ever holding them: a bomb of a few KiB."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    chunk = bytes(1 << 20)
    whole, rest = divmod(nbytes, len(chunk))
    parts = [compressor.compress(chunk) for _ in range(whole)]
    return b"".join([*parts, compressor.compress(bytes(rest)), compressor.flush()])


def _floats(value: float) -> bytes:
    pixels = np.ones((32, 32), np.float32)
    pixels[3, 5] = value
    return pixels.tobytes()


@cache
def hostile_images() -> tuple[HostileImage, ...]:
    """The hostile images of issue #8, each with the reason the contract (or model) gives."""
    side = 16 * 1024
    return (
        HostileImage("zero-size", _image_frame([0, 32], "uint16", b""), "positive integers"),
        HostileImage("1x1", _image_frame([1, 1], "uint16", bytes(2)), "outside 16..16384 px"),
        HostileImage("1x2048", _image_frame([1, 2048], "uint16", bytes(4096)), "outside 16..16384 px"),
        HostileImage("100000x1", _image_frame([100_000, 1], "uint16", _zeros_zstd(200_000), codec="zstd"),
                     "outside 16..16384 px"),
        # The payload really inflates to the 512 MiB the header claims: refused on the header alone.
        HostileImage("16kx16k-claim", _image_frame([side, side], "uint16", _zeros_zstd(side * side * 2),
                                                   codec="zstd"), f"exceeds {MAX_PIXELS} pixels"),
        HostileImage("nan", _image_frame([32, 32], "float32", _floats(float("nan"))), "NaN or Inf"),
        HostileImage("inf", _image_frame([32, 32], "float32", _floats(float("inf"))), "NaN or Inf"),
        HostileImage("17-channels", _image_frame([32, 32, 17], "uint16", bytes(32 * 32 * 17 * 2)),
                     "17 channels exceed 16"),
        HostileImage("channel-names-mismatch",
                     _image_frame([32, 32, 3], "uint16", bytes(32 * 32 * 3 * 2), channels=["gray"]),
                     "do not match shape"),
        HostileImage("pixels-disagree-with-header",
                     _image_frame([32, 32], "uint16", bytes(32 * 48 * 2), pixels_shape=[32, 48]),
                     "!= declared shape"),
        HostileImage("zstd-bomb", _image_frame([32, 32], "uint16", _zeros_zstd(64 << 20), codec="zstd"),
                     "more than the declared"),
        HostileImage("3-channels-for-a-1-channel-model", _image_frame([32, 32, 3], "uint16", bytes(32 * 32 * 6)),
                     "input channel", contract=False),
    )
