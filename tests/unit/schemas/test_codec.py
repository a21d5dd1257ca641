"""The codec contract: every event round-trips; every malformed frame raises SchemaError with a field."""

from __future__ import annotations

import json
import struct
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from schemas.codec import MAGIC, decode, encode, headers_for
from schemas.errors import SchemaError
from schemas.events import (
    BlobRef,
    DataSelection,
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    LabelEvent,
    ModelPublished,
    ObjectMeasurement,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
REF = BlobRef(uri="ds-blob://masks/ab/" + "ab" * 32, sha256="ab" * 32, size=10)
STATS = ImageStats(p01=1, p50=2, p99=3, mean=2, std=1, focus=10, noise=0.5, saturation_fraction=0.0)

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
image_arrays = st.sampled_from([np.uint8, np.uint16, np.float32]).flatmap(
    lambda dt: arrays(dt, st.tuples(st.integers(16, 40), st.integers(16, 40)),
                      elements=finite if dt is np.float32 else None)
)


def sample_events() -> list[Event]:
    sel = DataSelection(instrument_id="scope-1", labelled_image_ids=["a"], neighbour_image_ids=["b"])
    return [
        ImageEvent(image_id="img-1", instrument_id="scope-1", acquired_at=NOW, shape=(16, 20, 2),
                   dtype="uint16", channels=["dapi", "gfp"],
                   pixels=np.arange(640, dtype=np.uint16).reshape(16, 20, 2)),
        ImageEvent(image_id="img-2", instrument_id="scope-1", acquired_at=NOW, shape=(2048, 2048),
                   dtype="uint16", blob=REF, pixel_size_um=0.65, plate="P1", well="B03"),
        LabelEvent(image_id="img-1", instrument_id="scope-1", annotator="ann", mask=np.eye(4, dtype=np.int32)),
        FingerprintEvent(image_id="img-1", instrument_id="scope-1", acquired_at=NOW, encoder_version="enc-1",
                         latent=[0.1, -2.0], reconstruction_error=0.01, stats=STATS),
        PredictionEvent(image_id="img-1", instrument_id="scope-1", acquired_at=NOW, model_version="seg-1",
                        mask=REF, object_count=1, foreground_fraction=0.2, mean_confidence=0.9, entropy=0.1,
                        latency_ms=3.0, objects=[ObjectMeasurement(label=1, area=10, perimeter=12,
                                                                   eccentricity=0.3, mean_intensity=100,
                                                                   centroid_y=1, centroid_x=2)]),
        DriftEvent(detector="adwin", signal="stats.p50", instrument_id="scope-1", model_version="seg-1",
                   statistic=1.5, threshold=1.0, window=30, first_seen_at=NOW, evidence=["img-1"]),
        RetrainRequest(idempotency_key="k1", base_model_version="seg-1", selection=sel, hyperparameters={"lr": 1e-3}),
        TrainingRunEvent(run_id="r1", request_key="k1", status="failed", reason="no labels", started_at=NOW,
                         finished_at=NOW, duration_s=0.0, device="cpu", base_model_version="seg-1"),
        ModelPublished(kind="segmenter", version="seg-2", artifact=REF, parent_version="seg-1", promoted=True),
        DeadLetter(source_topic="images.raw", partition=2, offset=7, key=b"scope-1", original=b"\x00garbage",
                   error="frame: not a driftscope frame", error_type="SchemaError"),
    ]


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: Event) -> None:
    decoded = decode(encode(event))
    assert type(decoded) is type(event)
    assert decoded.model_dump(exclude=set(event.binary_fields)) == event.model_dump(exclude=set(event.binary_fields))
    for name in event.binary_fields:
        original, back = getattr(event, name), getattr(decoded, name)
        if isinstance(original, np.ndarray):
            assert back.dtype == original.dtype and np.array_equal(back, original)
        else:
            assert back == original
    assert dict(headers_for(event))["ds-type"] == type(event).__name__.encode()


@settings(max_examples=60, deadline=None)
@given(pixels=image_arrays, image_id=ids, instrument=ids, compress=st.booleans())
def test_image_round_trip_property(pixels: np.ndarray, image_id: str, instrument: str, compress: bool) -> None:
    event = ImageEvent(image_id=image_id, instrument_id=instrument, acquired_at=NOW, shape=pixels.shape,
                       dtype=pixels.dtype.name, pixels=pixels)
    back = decode(encode(event, compress=compress))
    assert isinstance(back, ImageEvent)
    assert back.image_id == image_id and back.instrument_id == instrument
    assert back.pixels is not None and np.array_equal(back.pixels, pixels)


def _frame(meta: dict[str, object], payload: bytes = b"") -> bytes:
    header = json.dumps(meta).encode()
    return struct.pack(">4sI", MAGIC, len(header)) + header + payload


def _image_meta(**over: object) -> dict[str, object]:
    raw = encode(sample_events()[0])
    (length,) = struct.unpack_from(">I", raw, 4)
    meta = json.loads(raw[8 : 8 + length])
    meta.update(over)
    return meta


def _payload() -> bytes:
    raw = encode(sample_events()[0])
    (length,) = struct.unpack_from(">I", raw, 4)
    return raw[8 + length :]


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        (b"", "frame", "empty"),
        (b"\x00\x01garbage bytes", "frame", "not a driftscope frame"),
        (MAGIC + b"\x00\x00\x10\x00{}", "frame", "truncated"),
        (_frame({"type": "ImageEvent", "schema_version": 99}), "schema_version", "unsupported"),
        (_frame({"type": "Nope", "schema_version": 1}), "type", "unknown event type"),
        (_frame(_image_meta(), _payload()[:-5]), "pixels", "truncated"),
        (_frame(_image_meta(_binary={"pixels": {"kind": "array", "dtype": "float64", "shape": [16, 20, 2],
                                                "codec": "raw", "offset": 0, "length": 5120}}), bytes(5120)),
         "pixels", "dtype"),
        (_frame(_image_meta(shape=[0, 4]), _payload()), "ImageEvent", "empty dimension"),
        (_frame(_image_meta(pixel_size_um="NaN"), _payload()), "pixel_size_um", "finite"),
        (MAGIC + struct.pack(">I", 23) + b'{"schema_version": NaN}', "metadata", "non-finite"),
        (_frame(_image_meta(_binary={"pixels": {"kind": "array", "dtype": "uint16", "shape": [16384, 16384, 4],
                                                "codec": "zstd", "offset": 0, "length": 10}}), bytes(10)),
         "pixels", "limit"),
    ],
    ids=["empty", "garbage", "truncated-meta", "version", "type", "truncated-pixels", "dtype", "empty-image",
         "nan-metadata", "nan-literal", "huge-claim"],
)
def test_malformed_frames_raise_schema_error(value: bytes, field: str, reason: str) -> None:
    with pytest.raises(SchemaError) as info:
        decode(value)
    assert info.value.field.startswith(field), info.value
    assert reason.lower() in info.value.reason.lower(), info.value


def test_decompression_bomb_is_bounded() -> None:
    bomb = zstandard.ZstdCompressor().compress(bytes(50 * 1024 * 1024))
    meta = _image_meta(shape=[16, 20, 2], _binary={"pixels": {"kind": "array", "dtype": "uint16",
                                                             "shape": [16, 20, 2], "codec": "zstd", "offset": 0,
                                                             "length": len(bomb)}})
    with pytest.raises(SchemaError, match="more than the declared"):
        decode(_frame(meta, bomb))


def test_expected_type_is_enforced() -> None:
    with pytest.raises(SchemaError, match="not expected"):
        decode(encode(sample_events()[3]), expected=ImageEvent)


def test_image_needs_exactly_one_pixel_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ImageEvent(image_id="x", instrument_id="i", acquired_at=NOW, shape=(16, 16), dtype="uint8")


def test_event_ids_are_unique() -> None:
    a, b = (RetrainRequest(idempotency_key="k", base_model_version="v") for _ in range(2))
    assert isinstance(a.event_id, uuid.UUID) and a.event_id != b.event_id
