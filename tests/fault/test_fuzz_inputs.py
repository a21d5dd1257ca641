"""Fuzzing the input topics: 1,000 generated malformed messages per topic through the real steps.

Every message must be accounted for — processed, or dead-lettered with a readable reason — and no
step may raise. The steps are the agents' own (real ONNX models, real chDB store); only Kafka is
left out, since the agents add nothing between a consumed record and the step.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.store import open_store
from models.registry import Registry
from schemas.blobstore import BlobStore
from schemas.codec import MAGIC, decode, encode
from schemas.events import DeadLetter, DriftEvent, ImageEvent, LabelEvent
from streams.config import RetrainPolicy
from streams.driftwatch import DriftWatch
from streams.fingerprint import Fingerprinter
from streams.messages import Outcome, RawMessage
from streams.retrain import RetrainTrigger
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_encoder, load_segmenter
from streams.sink import ClickHouseSink
from tests.integration.streams.conftest import record

EXAMPLES = 1000
NOW = datetime(2026, 12, 1, tzinfo=UTC)
_PREFIX = struct.Struct(">4sI")


def _template() -> dict[str, object]:
    frame = encode(ImageEvent(image_id="img", instrument_id="scope", acquired_at=NOW, shape=(32, 32),
                              dtype="uint16", pixels=np.ones((32, 32), np.uint16)))
    _, length = _PREFIX.unpack_from(frame)
    return json.loads(frame[_PREFIX.size:_PREFIX.size + length])


TEMPLATE = _template()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


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
    header = json.dumps(meta).encode()
    return _PREFIX.pack(MAGIC, len(header)) + header + draw(st.binary(max_size=256))


def hostile_images() -> list[bytes]:
    """Images that decode but no pipeline should choke on: NaN floats, odd shapes, bombs."""
    out = []
    for shape, dtype in [((1, 1), "uint16"), ((1, 2048), "uint16"), ((32, 32, 3), "uint16"), ((64, 64), "float32")]:
        pixels = np.zeros(shape, dtype)
        channels = ["c0", "c1", "c2"] if len(shape) == 3 else ["gray"]
        out.append(encode(ImageEvent(image_id=f"h-{shape}", instrument_id="scope", acquired_at=NOW, shape=shape,
                                     dtype=dtype, channels=channels, pixels=pixels)))
    nan = dict(TEMPLATE, dtype="float32")
    raw = np.full((32, 32), np.nan, np.float32).tobytes()
    nan["_binary"] = {"pixels": {"kind": "array", "codec": "raw", "dtype": "float32", "shape": [32, 32],
                                 "offset": 0, "length": len(raw)}}
    header = json.dumps(nan).encode()
    out.append(_PREFIX.pack(MAGIC, len(header)) + header + raw)
    bomb = zstandard.ZstdCompressor().compress(bytes(64 * 1024 * 1024))
    bombed = dict(TEMPLATE)
    bombed["_binary"] = {"pixels": {"kind": "array", "codec": "zstd", "dtype": "uint16", "shape": [32, 32],
                                    "offset": 0, "length": len(bomb)}}
    header = json.dumps(bombed).encode()
    out.append(_PREFIX.pack(MAGIC, len(header)) + header + bomb)
    return out


malformed = st.one_of(st.binary(max_size=512), mutated_frames(),
                      st.builds(lambda f, cut: f[:cut], st.just(encode(ImageEvent(
                          image_id="t", instrument_id="scope", acquired_at=NOW, shape=(16, 16), dtype="uint16",
                          pixels=np.arange(256, dtype=np.uint16).reshape(16, 16)))), st.integers(0, 300)))


def account(outcome: Outcome, messages: list[RawMessage]) -> None:
    assert outcome.processed + outcome.dead_lettered == len(messages)
    for output in outcome.outputs:
        if output.topic.endswith(".dlq"):
            letter = decode(output.value, expected=DeadLetter)
            assert isinstance(letter, DeadLetter) and letter.error and letter.original == messages[0].value


@pytest.fixture(scope="module")
def steps(
    served_blob_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Callable[..., Outcome]]]:
    blobs = BlobStore(served_blob_url)
    registry = Registry(blobs)
    fingerprinter = Fingerprinter(ModelSlot(*load_encoder(registry)), blobs)
    segmenter = Segmenter(ModelSlot(*load_segmenter(registry)), blobs)
    store = open_store(f"chdb://{tmp_path_factory.mktemp('chdb')}")
    store.migrate()
    sink = ClickHouseSink(store, blobs)
    trigger = RetrainTrigger(store, RetrainPolicy(), serving_version=lambda: "seg", encoder_version=lambda: None)
    drift = DriftWatch(BlobStore(tmp_path_factory.mktemp("drift-blobs")), namespace="fuzz")

    def sink_step(messages: list[RawMessage]) -> Outcome:
        batch = sink.prepare(messages)
        written = sink.write(batch)
        batch.outcome.extend(written)
        return batch.outcome

    # chDB allows one open data directory per process: release it for the tests that follow.
    with store:
        yield {"fingerprint": fingerprinter.process, "segment": segmenter.process, "sink": sink_step,
               "retrain": trigger.process, "drift": drift.process}


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.slow
@pytest.mark.parametrize("topic,step_names", [
    ("images.raw", ("fingerprint", "segment", "sink")),
    ("labels", ("drift", "sink")),
    ("images.fingerprints", ("drift", "sink")),
    ("predictions", ("drift", "sink")),
    ("drift.events", ("retrain", "sink")),
])
def test_malformed_messages_are_dead_lettered_and_nothing_crashes(
    steps: dict[str, Callable[..., Outcome]], topic: str, step_names: tuple[str, ...]
) -> None:
    @FUZZ
    @given(value=malformed)
    def run(value: bytes) -> None:
        messages = [record(topic, value)]
        for name in step_names:
            outcome = steps[name](messages)
            account(outcome, messages)

    run()


@pytest.mark.parametrize("value", hostile_images(), ids=["1x1", "1x2048", "3-channel", "float32", "nan", "bomb"])
def test_hostile_images_never_crash_a_step(steps: dict[str, Callable[..., Outcome]], value: bytes) -> None:
    messages = [record("images.raw", value)]
    for name in ("fingerprint", "segment", "sink"):
        account(steps[name](messages), messages)


def test_a_label_or_drift_event_sent_to_the_wrong_topic_is_dead_lettered(
    steps: dict[str, Callable[..., Outcome]],
) -> None:
    label = encode(LabelEvent(image_id="x", instrument_id="scope", annotator="a", mask=np.ones((4, 4), np.int32)))
    drift = encode(DriftEvent(detector="cusum", signal="s", instrument_id="scope", model_version="v", statistic=1,
                              threshold=1, window=1, first_seen_at=NOW))
    for topic, value, name in [("images.raw", label, "segment"), ("drift.events", label, "retrain"),
                               ("images.raw", drift, "fingerprint")]:
        messages = [record(topic, value)]
        outcome = steps[name](messages)
        assert outcome.dead_lettered == 1, (topic, name)
        account(outcome, messages)


