"""The metrics sink against both store backends: every event type, idempotency, dead letters, outages."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from consumers.store import Store, open_store
from consumers.store.server_process import ClickHouseServerProcess
from schemas.events import (
    BlobRef,
    DataSelection,
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageStats,
    LabelEvent,
    ModelPublished,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
    utcnow,
)
from streams.counters import AgentCounters
from streams.messages import Outcome
from streams.sink import ClickHouseSink, write_until_stored
from tests.e2e.harness import image_events, wait_for
from tests.integration.streams.conftest import record

_REF = BlobRef(uri="ds-blob://masks/ab/" + "ab" * 32, sha256="ab" * 32, size=10)


def one_of_each() -> list[tuple[str, Event]]:
    """One event of every type, on the topic that carries it."""
    now = utcnow()
    image = image_events(1, size=32, seed=7)[0]
    stats = ImageStats(p01=1, p50=2, p99=3, mean=2, std=1, focus=4, noise=0.5, saturation_fraction=0)
    return [
        ("images.raw", image),
        ("images.fingerprints", FingerprintEvent(image_id=image.image_id, instrument_id=image.instrument_id,
                                                 acquired_at=now, encoder_version="enc-1", latent=[0.1, 0.2],
                                                 reconstruction_error=0.01, stats=stats)),
        ("predictions", PredictionEvent(image_id=image.image_id, instrument_id=image.instrument_id, acquired_at=now,
                                        model_version="seg-1", mask=_REF, object_count=0, foreground_fraction=0,
                                        mean_confidence=0.9, entropy=0.1, latency_ms=5)),
        ("labels", LabelEvent(image_id=image.image_id, instrument_id=image.instrument_id, annotator="ann",
                              mask_blob=_REF)),
        ("drift.events", DriftEvent(detector="cusum", signal="image.p50", instrument_id="scope-0",
                                    model_version="seg-1", statistic=5, threshold=4, window=100, first_seen_at=now)),
        ("retrain.requests", RetrainRequest(idempotency_key="retrain-1", base_model_version="seg-1",
                                            selection=DataSelection(time_from=now - timedelta(hours=1)))),
        ("training.runs", TrainingRunEvent(run_id="run-1", request_key="retrain-1", status="rejected",
                                           started_at=now, finished_at=now, duration_s=1, device="cpu",
                                           base_model_version="seg-1")),
        ("models.published", ModelPublished(kind="segmenter", version="seg-2", artifact=_REF, promoted=False)),
        ("images.raw.dlq", DeadLetter(source_topic="images.raw", partition=0, offset=7, original=b"x", error="bad",
                                      error_type="SchemaError")),
    ]


_TABLES = ("images", "fingerprints", "predictions", "labels", "drift_events", "retrain_requests", "model_runs",
           "models", "dlq")


def _counts(store: Store) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count() AS n FROM {t} FINAL")[0]["n"]) for t in _TABLES}


def test_every_event_type_lands_once_even_when_written_twice(store: Store) -> None:
    sink = ClickHouseSink(store)
    messages = [record(topic, event) for topic, event in one_of_each()]
    for _ in range(2):  # a replay after a crash writes the same records again
        batch = sink.prepare(messages)
        assert batch.outcome.dead_lettered == 0
        assert sink.write(batch).processed == len(messages)
    assert _counts(store) == dict.fromkeys(_TABLES, 1)


def test_undecodable_records_are_dead_lettered_and_the_batch_still_written(store: Store) -> None:
    sink = ClickHouseSink(store)
    good = [record(topic, event) for topic, event in one_of_each()[:3]]
    bad = record("predictions", b"not a frame", key=b"k")
    unreadable_dead_letter = record("predictions.dlq", b"also not a frame")
    batch = sink.prepare([good[0], bad, *good[1:], unreadable_dead_letter])
    assert batch.outcome.dead_lettered == 1 and batch.unreadable == 1
    (output,) = batch.outcome.outputs
    assert output.topic == "predictions.dlq" and output.key == b"k"
    assert sink.write(batch).processed == 3
    assert _counts(store)["predictions"] == 1


@pytest.mark.slow
@pytest.mark.clickhouse_server
def test_a_down_server_pauses_the_sink_until_it_is_back_and_nothing_is_lost(
    clickhouse_server_process: ClickHouseServerProcess,
) -> None:
    url = clickhouse_server_process.url.rsplit("/", 1)[0] + f"/sink_{uuid.uuid4().hex[:8]}"
    with open_store(url) as store:
        store.migrate()
        sink = ClickHouseSink(store)
        batch = sink.prepare([record(topic, event) for topic, event in one_of_each()])
        counters = AgentCounters("sink")
        clickhouse_server_process.stop()
        outcomes: list[Outcome] = []

        def write() -> None:
            with ThreadPoolExecutor(1) as executor:
                outcomes.append(asyncio.run(write_until_stored(sink, batch, executor, counters, backoff_s=0.2,
                                                               max_backoff_s=1.0)))

        writer = threading.Thread(target=write)
        writer.start()
        assert wait_for(lambda: counters.retries >= 2, 30, interval=0.1)
        assert not outcomes, "the sink gave up (or dropped the batch) while the store was down"
        # Restarted from this thread: the server dies with the thread that spawned it.
        clickhouse_server_process.start()
        writer.join(60)
        (outcome,) = outcomes
        assert outcome.processed == len(batch.records)
        assert _counts(store) == dict.fromkeys(_TABLES, 1)
