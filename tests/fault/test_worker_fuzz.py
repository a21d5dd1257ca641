"""Fuzzing a real worker over Kafka: 1,000 generated malformed messages per input topic.

The step-level fuzz tests (``test_fuzz_inputs.py``) call the agents' steps directly; this one sends
the same generated inputs, plus the hostile images, through Tansu to a ``driftscope worker``
process running every agent on a real ClickHouse server, with valid images interleaved. Checked:

- every malformed message ends in ``<topic>.dlq`` with a reason: the dead-letter table (which the
  worker's sink fills from those topics) holds exactly one row per malformed record, by source
  topic, partition and offset, each with its error;
- each hostile image's dead letter gives the contract's (or the model's) reason;
- every valid image is stored exactly once, and none is dead-lettered;
- the worker process is alive at the end, and its peak resident memory stays within a fixed
  margin of its peak after the valid warm-up images.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from driftscope.tansu import TansuBroker
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.topics import event_type
from tests.e2e.harness import StoreReader, WorkerProcess, image_events, image_records, publish, wait_for
from tests.fault.inputs import hostile_images, malformed

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.clickhouse_server]

PER_TOPIC = 1000
INPUT_TOPICS = ("images.raw", "labels", "images.fingerprints", "predictions", "drift.events")
WARMUP = 24  # valid images before the fuzz: the memory baseline has seen the models at work
VALID = 48  # valid images interleaved with the malformed ones
MEMORY_MARGIN = 96 << 20


def generated(strategy: st.SearchStrategy[bytes], n: int) -> list[bytes]:
    """``n`` values drawn by hypothesis (derandomized: the same values on every run)."""
    drawn: list[bytes] = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(value=strategy)
    def collect(value: bytes) -> None:
        drawn.append(value)

    collect()
    return drawn


def malformed_for(topic: str, n: int) -> list[bytes]:
    """``n`` generated values the topic's contract refuses (a mutation may leave a valid event: dropped)."""
    refused = []
    for value in generated(malformed, n + n // 4):
        try:
            decode(value, expected=event_type(topic))
        except SchemaError:
            refused.append(value)
    assert len(refused) >= n, f"only {len(refused)} of the generated {topic} values are malformed"
    return refused[:n]


def interleave(bad: list[tuple[str, bytes | None, bytes]], good: list[tuple[str, bytes | None, bytes]]
               ) -> Iterable[tuple[str, bytes | None, bytes]]:
    """``bad`` with the ``good`` records spread evenly among them."""
    every = max(1, len(bad) // max(1, len(good)))
    good_left = list(good)
    for i, record in enumerate(bad):
        if i % every == 0 and good_left:
            yield good_left.pop(0)
        yield record
    yield from good_left


def test_a_worker_dead_letters_every_malformed_message_with_its_reason_and_stays_up(
    tansu: TansuBroker, served_blob_url: str, server_url: str, tmp_path: Path
) -> None:
    broker = tansu.bootstrap_servers
    reader = StoreReader(server_url)
    worker = WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=server_url,
                           name="fuzzed").start()
    valid = image_events(WARMUP + VALID, size=64, seed=41, prefix="fuzz")
    hostile = hostile_images()

    def valid_stored() -> tuple[int, int, int]:
        rows = reader.query("SELECT (SELECT uniqExact(image_id) FROM fingerprints WHERE image_id LIKE 'fuzz-%') AS f,"
                            " (SELECT uniqExact(image_id) FROM predictions WHERE image_id LIKE 'fuzz-%') AS p,"
                            " (SELECT uniqExact(image_id) FROM images WHERE image_id LIKE 'fuzz-%') AS i")
        return int(rows[0]["f"]), int(rows[0]["p"]), int(rows[0]["i"])

    def dead_letters() -> dict[str, int]:
        rows = reader.query("SELECT source_topic AS t, count() AS n FROM dlq FINAL GROUP BY source_topic")
        return {str(row["t"]): int(row["n"]) for row in rows}

    try:
        publish(broker, image_records(valid[:WARMUP]))
        assert wait_for(lambda: min(valid_stored()) >= WARMUP, 300, interval=1.0)
        baseline = worker.peak_rss()

        expected: Counter[str] = Counter()
        bad: list[tuple[str, bytes | None, bytes]] = []
        for topic in INPUT_TOPICS:
            values = malformed_for(topic, PER_TOPIC)
            bad += [(topic, f"scope-{i % 5}".encode(), value) for i, value in enumerate(values)]
            expected[topic] += len(values)
        bad += [("images.raw", f"hostile-{h.name}".encode(), h.value) for h in hostile]
        expected["images.raw"] += len(hostile)
        publish(broker, interleave(bad, image_records(valid[WARMUP:])))

        assert wait_for(lambda: dead_letters() == dict(expected) and min(valid_stored()) >= len(valid),
                        600, interval=2.0), (dead_letters(), dict(expected), valid_stored())
        peak = worker.peak_rss()

        assert worker.process.running, "the worker exited"
        assert valid_stored() == (len(valid),) * 3
        for table in ("images", "fingerprints", "predictions"):
            row = reader.query(f"SELECT count() AS n FROM {table} FINAL WHERE image_id LIKE 'fuzz-%'")[0]
            assert int(row["n"]) == len(valid), f"duplicate {table} rows"
        # One dead letter per malformed record (FINAL collapses the copies several agents send), each
        # with its reason, and no valid image among them.
        per_record = reader.query("SELECT source_topic AS t, uniqExact(source_partition, source_offset) AS u, "
                                  "countIf(error = '') AS blank FROM dlq FINAL GROUP BY source_topic")
        assert {str(r["t"]): (int(r["u"]), int(r["blank"])) for r in per_record} == {
            topic: (n, 0) for topic, n in expected.items()}
        reasons = {bytes.fromhex(str(r["k"])).decode(): str(r["e"]) for r in reader.query(
            "SELECT key_hex AS k, error AS e FROM dlq FINAL WHERE source_topic = 'images.raw' "
            f"AND key_hex LIKE '{b'hostile-'.hex()}%'")}
        for h in hostile:
            assert h.reason in reasons[f"hostile-{h.name}"], (h.name, reasons.get(f"hostile-{h.name}"))
        per_topic = ", ".join(f"{topic} {n}" for topic, n in expected.items())
        print(f"\nmeasured: {sum(expected.values())} malformed records dead-lettered once each ({per_topic}); "
              f"{len(valid)} valid images stored once; peak RSS {baseline >> 20} MiB after warm-up, "
              f"{peak >> 20} MiB at the end")
        assert peak < baseline + MEMORY_MARGIN
    finally:
        worker.stop()
