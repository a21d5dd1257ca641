"""The fingerprint and segment steps on real ONNX models and a real blob store, without a broker."""

from __future__ import annotations

import numpy as np
import pytest

from models.registry import Registry
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_from_blob, image_event
from schemas.codec import decode
from schemas.events import DeadLetter, FingerprintEvent, PredictionEvent, utcnow
from streams.fingerprint import Fingerprinter
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_encoder, load_segmenter
from tests.e2e.harness import image_events, malformed_frames
from tests.integration.streams.conftest import record


@pytest.fixture(scope="module")
def steps(served_blob_url: str) -> tuple[Fingerprinter, Segmenter]:
    blobs = BlobStore(served_blob_url)
    registry = Registry(blobs)
    encoder, encoder_version = load_encoder(registry)
    segmenter, segmenter_version = load_segmenter(registry)
    fingerprinter = Fingerprinter(ModelSlot(encoder, encoder_version), blobs)
    return fingerprinter, Segmenter(ModelSlot(segmenter, segmenter_version), blobs)


def test_each_valid_image_yields_one_fingerprint_and_one_prediction(steps: tuple[Fingerprinter, Segmenter]) -> None:
    fingerprinter, segmenter = steps
    events = image_events(5, size=64, seed=3)
    messages = [record("images.raw", e, key=e.instrument_id.encode()) for e in events]

    fingerprints = fingerprinter.process(messages)
    predictions = segmenter.process(messages)

    assert fingerprints.processed == predictions.processed == 5
    assert fingerprints.dead_lettered == predictions.dead_lettered == 0
    assert [o.topic for o in fingerprints.outputs] == ["images.fingerprints"] * 5
    assert [o.topic for o in predictions.outputs] == ["predictions"] * 5
    for event, output in zip(events, fingerprints.outputs, strict=True):
        fingerprint = decode(output.value, expected=FingerprintEvent)
        assert isinstance(fingerprint, FingerprintEvent)
        assert fingerprint.image_id == event.image_id and output.key == event.instrument_id.encode()
        assert fingerprint.encoder_version == fingerprinter.slot.version
        assert event.pixels is not None
        assert fingerprint.stats.p50 == pytest.approx(float(np.percentile(event.pixels, 50)))
    for event, output in zip(events, predictions.outputs, strict=True):
        prediction = decode(output.value, expected=PredictionEvent)
        assert isinstance(prediction, PredictionEvent)
        assert prediction.image_id == event.image_id
        mask = array_from_blob(prediction.mask, segmenter.blobs)
        assert mask.shape == event.shape
        assert prediction.object_count == len(prediction.objects) == len(np.unique(mask[mask > 0]))
        assert prediction.foreground_fraction == pytest.approx(np.count_nonzero(mask) / mask.size)
        assert 0.5 <= prediction.mean_confidence <= 1 and 0 <= prediction.entropy <= 1


def test_malformed_records_are_dead_lettered_with_reason_and_the_rest_processed(
    steps: tuple[Fingerprinter, Segmenter],
) -> None:
    fingerprinter, segmenter = steps
    valid = image_events(2, size=64, seed=4)
    broken = malformed_frames(valid[0])
    messages = [record("images.raw", valid[0])]
    messages += [record("images.raw", value, key=name.encode()) for name, (value, _) in broken.items()]
    messages += [record("images.raw", valid[1])]

    for step in (fingerprinter, segmenter):
        outcome = step.process(messages)
        assert outcome.processed == 2
        assert outcome.dead_lettered == len(broken)
        letters = {o.key: decode(o.value, expected=DeadLetter) for o in outcome.outputs if o.topic == "images.raw.dlq"}
        assert set(letters) == {name.encode() for name in broken}
        for name, (value, reason) in broken.items():
            letter = letters[name.encode()]
            assert isinstance(letter, DeadLetter)
            assert reason in letter.error.lower()
            assert letter.original == value and letter.source_topic == "images.raw"
            original = next(m for m in messages if m.key == name.encode())
            assert (letter.partition, letter.offset) == (original.partition, original.offset)


def test_an_image_the_model_cannot_take_fails_alone(steps: tuple[Fingerprinter, Segmenter]) -> None:
    _, segmenter = steps
    good = image_events(3, size=64, seed=5)
    rgb = image_event(np.zeros((64, 64, 3), np.uint16), store=None, image_id="rgb", instrument_id="scope-0",
                      acquired_at=utcnow())  # three channels: the baseline U-Net takes one
    outcome = segmenter.process([record("images.raw", e) for e in (good[0], rgb, good[1], good[2])])
    assert outcome.processed == 3
    assert outcome.dead_lettered == 1
    (letter_output,) = [o for o in outcome.outputs if o.topic == "images.raw.dlq"]
    letter = decode(letter_output.value, expected=DeadLetter)
    assert isinstance(letter, DeadLetter) and "channel" in letter.error


def test_a_swapped_model_serves_the_next_batch(steps: tuple[Fingerprinter, Segmenter]) -> None:
    _, segmenter = steps
    runner, version = segmenter.slot.current
    segmenter.slot.swap(runner, "segmenter-swapped")
    try:
        outcome = segmenter.process([record("images.raw", image_events(1, size=64, seed=6)[0])])
        prediction = decode(outcome.outputs[0].value, expected=PredictionEvent)
        assert isinstance(prediction, PredictionEvent) and prediction.model_version == "segmenter-swapped"
    finally:
        segmenter.slot.swap(runner, version)
