"""The retrain trigger on a real store: evidence, labels, cooldown, idempotency key, data selection."""

from __future__ import annotations

from datetime import datetime, timedelta

from consumers.store import Store
from schemas.codec import decode
from schemas.events import (
    BlobRef,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    LabelEvent,
    RetrainRequest,
    utcnow,
)
from streams.config import RetrainPolicy
from streams.messages import Outcome
from streams.retrain import RetrainTrigger
from streams.sink import ClickHouseSink
from tests.integration.streams.conftest import record

_REF = BlobRef(uri="ds-blob://labels/ab/" + "ab" * 32, sha256="ab" * 32, size=10)
_STATS = ImageStats(p01=1, p50=2, p99=3, mean=2, std=1, focus=4, noise=0.5, saturation_fraction=0)
POLICY = RetrainPolicy(cooldown_s=3600, min_events=2, min_evidence_images=2, min_labelled_images=3, neighbours=2)


def write(store: Store, events: list[tuple[str, Event]]) -> None:
    sink = ClickHouseSink(store)
    assert sink.write(sink.prepare([record(topic, event) for topic, event in events])).processed == len(events)


def image(image_id: str, instrument: str, latent: list[float], *, labelled: bool) -> list[tuple[str, Event]]:
    now = utcnow()
    out: list[tuple[str, Event]] = [
        ("images.raw", ImageEvent(image_id=image_id, instrument_id=instrument, acquired_at=now, shape=(16, 16),
                                  dtype="uint16", blob=_REF)),
        ("images.fingerprints", FingerprintEvent(image_id=image_id, instrument_id=instrument, acquired_at=now,
                                                 encoder_version="enc-1", latent=latent, reconstruction_error=0.1,
                                                 stats=_STATS, image=_REF)),
    ]
    if labelled:
        out.append(("labels", LabelEvent(image_id=image_id, instrument_id=instrument, annotator="a", mask_blob=_REF)))
    return out


def drift(evidence: str, *, at: datetime | None = None) -> DriftEvent:
    """A drift first seen an hour ago: the images written by the tests belong to the drifted domain."""
    return DriftEvent(detector="cusum", signal="image.p50", instrument_id="scope-1", model_version="seg-1",
                      statistic=9, threshold=4, window=100, first_seen_at=at or utcnow() - timedelta(hours=1),
                      evidence=[evidence])


def requests(outcome: Outcome) -> list[RetrainRequest]:
    found = [decode(o.value, expected=RetrainRequest) for o in outcome.outputs]
    assert all(o.topic == "retrain.requests" for o in outcome.outputs)
    return [r for r in found if isinstance(r, RetrainRequest)]


def trigger(store: Store, clock: list[datetime]) -> RetrainTrigger:
    return RetrainTrigger(store, POLICY, serving_version=lambda: "seg-serving", encoder_version=lambda: "enc-1",
                          clock=lambda: clock[0])


def test_enough_evidence_and_labels_make_one_request_with_its_data_selection(chdb_store: Store) -> None:
    write(chdb_store, [e for i in range(3) for e in image(f"lab-{i}", "scope-1", [float(i), 0.0], labelled=True)])
    write(chdb_store, image("near-other", "scope-2", [10.0, 0.0], labelled=True))
    write(chdb_store, image("far-other", "scope-2", [99.0, 0.0], labelled=True))
    write(chdb_store, [e for i in range(2) for e in image(f"ev-{i}", "scope-1", [11.0, 0.0], labelled=False)])
    clock = [utcnow()]
    first, second = drift("ev-0"), drift("ev-1")

    assert requests(trigger(chdb_store, clock).process([record("drift.events", first)])) == []
    live = trigger(chdb_store, clock)
    (request,) = requests(live.process([record("drift.events", first), record("drift.events", second)]))

    assert request.instrument_id == "scope-1" and request.base_model_version == "seg-1"
    assert sorted(request.reason) == sorted([str(first.event_id), str(second.event_id)])
    assert request.selection.labelled_image_ids == ["lab-0", "lab-1", "lab-2"]
    assert request.selection.neighbour_image_ids == ["near-other", "far-other"]
    # The trainer has no store: every selected image comes with its pixels and mask references.
    assert [(i.image_id, i.role) for i in request.selection.items] == [
        ("lab-0", "drifted"), ("lab-1", "drifted"), ("lab-2", "drifted"),
        ("near-other", "neighbour"), ("far-other", "neighbour")]
    assert all(i.image == _REF and i.mask == _REF for i in request.selection.items)
    assert request.selection.time_to == clock[0]
    # A replay of the same drift events (another worker, after a crash) asks with the same key.
    (again,) = requests(trigger(chdb_store, clock).process([record("drift.events", e) for e in (first, second)]))
    assert again.idempotency_key == request.idempotency_key


def test_cooldown_holds_even_across_a_restart(chdb_store: Store) -> None:
    write(chdb_store, [e for i in range(3) for e in image(f"lab-{i}", "scope-1", [0.0], labelled=True)])
    clock = [utcnow()]
    first = trigger(chdb_store, clock)
    (request,) = requests(first.process([record("drift.events", drift(f"e{i}")) for i in range(2)]))
    write(chdb_store, [("retrain.requests", request)])

    clock[0] += timedelta(minutes=30)
    restarted = trigger(chdb_store, clock)
    assert requests(restarted.process([record("drift.events", drift(f"f{i}")) for i in range(2)])) == []
    clock[0] += timedelta(minutes=31)
    (later,) = requests(restarted.process([record("drift.events", drift("g0"))]))
    assert later.idempotency_key != request.idempotency_key


def test_without_enough_labels_the_trigger_waits_and_asks_once_they_exist(chdb_store: Store) -> None:
    write(chdb_store, image("lab-0", "scope-1", [0.0], labelled=True))
    clock = [utcnow()]
    waiting = trigger(chdb_store, clock)
    assert requests(waiting.process([record("drift.events", drift(f"e{i}")) for i in range(3)])) == []
    write(chdb_store, [e for i in (1, 2) for e in image(f"lab-{i}", "scope-1", [0.0], labelled=True)])
    # Labels arrive late and drift events may have stopped: the timer's poll asks without a new event.
    (request,) = requests(waiting.poll())
    assert len(request.reason) == 3
    assert requests(waiting.poll()) == []  # asked once; the next ask waits for new evidence and the cooldown


def test_labels_from_before_the_drift_are_not_the_drifted_domain(chdb_store: Store) -> None:
    write(chdb_store, [e for i in range(3) for e in image(f"old-{i}", "scope-1", [0.0], labelled=True)])
    clock = [utcnow()]
    assert requests(trigger(chdb_store, clock).process(
        [record("drift.events", drift(f"e{i}", at=utcnow() + timedelta(seconds=5))) for i in range(3)])) == []


def test_a_malformed_drift_event_is_dead_lettered(chdb_store: Store) -> None:
    outcome = trigger(chdb_store, [utcnow()]).process([record("drift.events", b"\x00\x01")])
    assert outcome.dead_lettered == 1 and outcome.outputs[0].topic == "drift.events.dlq"
