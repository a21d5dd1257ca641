"""Publish N synthetic images (and malformed records) → exactly N fingerprints and predictions in ClickHouse.

Runs the real ``driftscope worker`` against a Tansu broker, once with the embedded chDB store (read
through the worker's loopback query page) and once against a real ClickHouse server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import (
    StoreReader,
    WorkerProcess,
    image_events,
    image_records,
    malformed_frames,
    publish,
    wait_for,
)

N = 24
TIMEOUT_S = 300


def _publish_with_malformed(broker: str, prefix: str) -> tuple[set[str], dict[str, str]]:
    """N valid images with every kind of broken record in between; returns ids and key → expected reason."""
    events = image_events(N, size=64, seed=1, prefix=prefix)
    bad = malformed_frames(events[0])
    broken = [("images.raw", f"bad-{name}".encode(), value) for name, (value, _) in bad.items()]
    publish(broker, image_records(events[: N // 2]) + broken + image_records(events[N // 2 :]))
    return {e.image_id for e in events}, {f"bad-{name}".encode().hex(): reason for name, (_, reason) in bad.items()}


def _assert_everything_stored_once(reader: StoreReader, image_ids: set[str], reasons: dict[str, str]) -> None:
    def complete() -> bool:
        dead = reader.query("SELECT count() AS n FROM dlq FINAL WHERE source_topic = 'images.raw'")[0]["n"]
        return (reader.count("fingerprints")[0] >= N and reader.count("predictions")[0] >= N
                and int(dead) >= len(reasons))

    assert wait_for(complete, TIMEOUT_S, interval=1.0), (
        f"pipeline incomplete: fingerprints {reader.count('fingerprints')}, predictions {reader.count('predictions')}"
    )
    assert reader.count("fingerprints") == (N, N)
    assert reader.count("predictions") == (N, N)
    assert reader.count("images") == (N, N)
    stored = {row["image_id"] for row in reader.query("SELECT image_id FROM predictions FINAL")}
    assert stored == image_ids
    fingerprinted = {row["image_id"] for row in reader.query("SELECT image_id FROM fingerprints FINAL")}
    assert fingerprinted == image_ids

    dead = reader.query("SELECT key_hex, error, error_type FROM dlq FINAL WHERE source_topic = 'images.raw'")
    by_key = {row["key_hex"]: row for row in dead}
    assert set(by_key) == set(reasons)
    for key, reason in reasons.items():
        assert reason in by_key[key]["error"].lower(), (bytes.fromhex(key), by_key[key]["error"])
        assert by_key[key]["error_type"] == "SchemaError"


@pytest.mark.slow
@pytest.mark.broker
def test_embedded_stack_stores_every_image_once_and_dead_letters_malformed(
    broker: str, served_blob_url: str, tmp_path: Path
) -> None:
    store_url = f"chdb://{tmp_path / 'chdb'}"
    worker = WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=store_url,
                           name="e2e-embedded").start()
    try:
        image_ids, reasons = _publish_with_malformed(broker, "emb")
        _assert_everything_stored_once(StoreReader(store_url, worker), image_ids, reasons)
        counters = worker.counters()
        assert counters["segment"]["processed"] == N and counters["fingerprint"]["processed"] == N
        assert counters["segment"]["dead_lettered"] == len(reasons)
        assert counters["segment"]["failed"] == 0 and counters["sink"]["failed"] == 0
    finally:
        worker.stop()


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.clickhouse_server
def test_clickhouse_server_stores_every_image_once_and_dead_letters_malformed(
    broker: str, served_blob_url: str, server_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=server_url,
                           name="e2e-server", web=False).start()
    try:
        image_ids, reasons = _publish_with_malformed(broker, "srv")
        _assert_everything_stored_once(StoreReader(server_url), image_ids, reasons)
    finally:
        worker.stop()


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.clickhouse_server
def test_two_workers_split_the_partitions_and_process_each_image_once(
    broker: str, served_blob_url: str, server_url: str, tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=server_url,
                      name=f"e2e-group-{i}", web=False, args=["--agents", "fingerprint,segment,sink"]).start()
        for i in range(2)
    ]
    try:
        events = image_events(N, size=64, seed=2, instruments=6, prefix="grp")
        publish(broker, image_records(events))
        reader = StoreReader(server_url)
        assert wait_for(lambda: reader.count("predictions")[0] >= N and reader.count("fingerprints")[0] >= N,
                        TIMEOUT_S, interval=1.0)
        assert reader.count("predictions") == (N, N)
        assert reader.count("fingerprints") == (N, N)
        # Both members of the group did part of the work (the status files are written every 5 s).
        assert wait_for(lambda: all(w.status_path.exists() and w.counters()["segment"]["processed"] > 0
                                    for w in workers), 30)
        processed = sum(w.counters()["segment"]["processed"] for w in workers)
        assert processed >= N
    finally:
        for worker in workers:
            worker.stop()
