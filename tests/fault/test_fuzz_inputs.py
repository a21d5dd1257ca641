"""Fuzzing the input topics: 1,000 generated malformed messages per topic through the real steps.

Every message must be accounted for — processed, or dead-lettered with a readable reason — and no
step may raise. Every hostile image (``tests/fault/inputs.py``) must be dead-lettered, with the
limit it breaks as the reason. The steps are the agents' own (real ONNX models, real chDB store);
only Kafka is left out here: ``test_worker_fuzz.py`` sends the same inputs through a real worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from consumers.store import open_store
from models.registry import Registry
from schemas.blobstore import BlobStore
from schemas.codec import decode, encode
from schemas.events import DeadLetter, DriftEvent, ImageEvent, LabelEvent
from streams.config import RetrainPolicy
from streams.driftwatch import DriftWatch
from streams.fingerprint import Fingerprinter
from streams.messages import Outcome, RawMessage
from streams.retrain import RetrainTrigger
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_encoder, load_segmenter
from streams.sink import ClickHouseSink
from tests.fault.inputs import NOW, HostileImage, hostile_images, malformed
from tests.integration.streams.conftest import record

EXAMPLES = 1000


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


def _dead_letter(outcome: Outcome) -> DeadLetter:
    (output,) = outcome.outputs
    assert output.topic == "images.raw.dlq"
    letter = decode(output.value, expected=DeadLetter)
    assert isinstance(letter, DeadLetter)
    return letter


@pytest.mark.parametrize("hostile", hostile_images(), ids=lambda h: h.name)
def test_hostile_images_are_dead_lettered_with_their_reason(
    steps: dict[str, Callable[..., Outcome]], hostile: HostileImage
) -> None:
    messages = [record("images.raw", hostile.value)]
    consumers = ("fingerprint", "segment", "sink") if hostile.contract else ("fingerprint", "segment")
    for name in consumers:
        outcome = steps[name](messages)
        account(outcome, messages)
        assert (outcome.processed, outcome.dead_lettered) == (0, 1), name
        assert hostile.reason in _dead_letter(outcome).error, name
    if not hostile.contract:  # a valid image all the same: the sink records that it arrived
        outcome = steps["sink"](messages)
        assert (outcome.processed, outcome.dead_lettered) == (1, 0)


@pytest.mark.parametrize("shape,dtype", [((16, 16), "uint16"), ((16, 2048), "uint16"), ((64, 64), "float32"),
                                         ((48, 40, 1), "uint8")], ids=str)
def test_images_at_the_contract_limits_are_processed(
    steps: dict[str, Callable[..., Outcome]], shape: tuple[int, ...], dtype: str
) -> None:
    pixels = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    channels = ["gray"] if len(shape) == 2 else ["c0"]
    messages = [record("images.raw", ImageEvent(image_id=f"edge-{shape}", instrument_id="scope", acquired_at=NOW,
                                                shape=shape, dtype=dtype, channels=channels, pixels=pixels))]
    for name in ("fingerprint", "segment", "sink"):
        outcome = steps[name](messages)
        assert (outcome.processed, outcome.dead_lettered) == (1, 0), (name, outcome.outputs)


def test_a_label_or_drift_event_sent_to_the_wrong_topic_is_dead_lettered(
    steps: dict[str, Callable[..., Outcome]],
) -> None:
    label = encode(LabelEvent(image_id="x", instrument_id="scope", annotator="a", mask=np.ones((4, 4), np.int32)))
    drift = encode(DriftEvent(detector="cusum", signal="s", instrument_id="scope", model_version="v", statistic=1,
                              threshold=1, window=1, first_seen_at=NOW))
    image = encode(ImageEvent(image_id="y", instrument_id="scope", acquired_at=NOW, shape=(16, 16), dtype="uint8",
                              pixels=np.zeros((16, 16), np.uint8)))
    for topic, value, name in [("images.raw", label, "segment"), ("drift.events", label, "retrain"),
                               ("images.raw", drift, "fingerprint"), ("labels", image, "sink"),
                               ("predictions", drift, "sink")]:
        messages = [record(topic, value)]
        outcome = steps[name](messages)
        assert outcome.dead_lettered == 1, (topic, name)
        account(outcome, messages)


