"""The drift step: alarms on a shifted stream, checkpoints that survive a restart, replays skipped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from schemas.blobstore import BlobStore
from schemas.codec import decode
from schemas.events import DriftEvent, FingerprintEvent, ImageStats, utcnow
from streams.driftwatch import DriftWatch
from streams.messages import RawMessage
from tests.integration.streams.conftest import record


def fingerprints(n: int, *, shift_from: int | None = None, seed: int = 0) -> list[RawMessage]:
    """Fingerprint records of one instrument at consecutive offsets; intensities x5 from ``shift_from`` on."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        gain = 5.0 if shift_from is not None and i >= shift_from else 1.0
        level = 1000.0 * gain * (1 + 0.02 * rng.standard_normal())
        stats = ImageStats(p01=0.5 * level, p50=level, p99=2 * level, mean=level, std=0.3 * level,
                           focus=100 * gain**2 * (1 + 0.05 * rng.standard_normal()),
                           noise=5 * gain * (1 + 0.05 * rng.standard_normal()), saturation_fraction=0.0)
        event = FingerprintEvent(image_id=f"img-{i}", instrument_id="scope-7", acquired_at=utcnow(),
                                 encoder_version="enc-1", latent=rng.standard_normal(8).tolist(),
                                 reconstruction_error=0.01 * (1 + 0.05 * rng.standard_normal()), stats=stats)
        out.append(record("images.fingerprints", event, key=b"scope-7", partition=2, offset=i))
    return out


def run(watch: DriftWatch, messages: list[RawMessage], batch: int = 10) -> list[DriftEvent]:
    alarms = []
    for start in range(0, len(messages), batch):
        outcome = watch.process(messages[start:start + batch])
        assert outcome.dead_lettered == 0
        for output in outcome.outputs:
            assert output.topic == "drift.events" and output.key == b"scope-7"
            event = decode(output.value, expected=DriftEvent)
            assert isinstance(event, DriftEvent)
            alarms.append(event)
    return alarms


def test_a_clear_shift_raises_drift_events_and_a_steady_stream_does_not(tmp_path: Path) -> None:
    messages = fingerprints(180, shift_from=150)
    watch = DriftWatch(BlobStore(tmp_path), namespace="test")
    assert run(watch, messages[:150]) == []
    alarms = run(watch, messages[150:])
    assert alarms, "no drift event within 30 images of a 5x gain change"
    assert all(a.instrument_id == "scope-7" for a in alarms)
    assert {e for a in alarms for e in a.evidence} & {f"img-{i}" for i in range(150, 180)}


def test_a_restarted_watch_resumes_from_its_checkpoint_and_skips_replayed_records(tmp_path: Path) -> None:
    messages = fingerprints(170, shift_from=150, seed=1)
    uninterrupted = DriftWatch(BlobStore(tmp_path / "a"), namespace="test")
    expected_alarms = run(uninterrupted, messages)

    blobs = BlobStore(tmp_path / "b")
    before_crash = DriftWatch(blobs, namespace="test")
    run(before_crash, messages[:120])
    # The worker died before committing offsets 100..119: the next owner gets them again.
    after_restart = DriftWatch(blobs, namespace="test")
    alarms = run(after_restart, messages[100:])

    assert after_restart.skipped_replays == 20
    assert [(a.signal, a.evidence) for a in alarms] == [(a.signal, a.evidence) for a in expected_alarms]
    resumed, reference = after_restart.state("scope-7"), uninterrupted.state("scope-7")
    assert resumed.state_dict()["counters"] == reference.state_dict()["counters"]


def test_undecodable_records_are_dead_lettered(tmp_path: Path) -> None:
    watch = DriftWatch(BlobStore(tmp_path), namespace="test")
    outcome = watch.process([record("predictions", b"junk", key=b"scope-7"), *fingerprints(2)])
    assert outcome.processed == 2 and outcome.dead_lettered == 1
    assert [o.topic for o in outcome.outputs] == ["predictions.dlq"]


def test_an_event_on_a_topic_that_carries_another_type_is_dead_lettered(tmp_path: Path) -> None:
    watch = DriftWatch(BlobStore(tmp_path), namespace="test")
    misplaced = [replace(message, topic=topic) for message, topic in
                 zip(fingerprints(2), ["labels", "predictions"], strict=True)]
    outcome = watch.process([*misplaced, *fingerprints(1)])
    assert outcome.processed == 1 and outcome.dead_lettered == 2
    assert [o.topic for o in outcome.outputs] == ["labels.dlq", "predictions.dlq"]
