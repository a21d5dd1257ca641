"""Scale-out: three ``driftscope worker`` processes share the 6 partitions of ``images.raw``.

What an operator relies on when running ``--scale worker=3`` (compose) or several KEDA replicas:
every partition is consumed by some worker, the work spreads over all of them, each image is
stored once after deduplication (delivery is at-least-once; the sink is idempotent), and when a
worker dies (SIGKILL, no goodbye) its partitions move to the survivors and no image is lost. The
workers run the sink agent only (it needs no model), against a private Tansu broker (no other
test's records or groups interfere) and a fresh database on the ClickHouse server (three
processes cannot share an embedded chDB).

Tansu answers DescribeGroups without members, so ownership is read from its effect: the group's
committed offset on every partition passes the last record written there.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from consumers.store import open_store
from driftscope.tansu import TansuBroker
from schemas.topics import TOPICS
from tests.e2e.harness import StoreReader, WorkerProcess, image_events, image_records, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.clickhouse_server]

GROUP = "driftscope.sink"  # the consumer group of workers that run only the sink (StreamsConfig.group_id)
PARTITIONS = TOPICS["images.raw"].partitions
BATCH = 60
INSTRUMENTS = 20  # the capacity example's facility; its keys land on every partition
TIMEOUT_S = 240


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with TansuBroker(tmp_path / "tansu") as tansu:
        yield tansu.bootstrap_servers


def _publish(bootstrap: str, records: list[tuple[str, bytes | None, bytes]]) -> dict[int, int]:
    """Produce ``records``; the highest offset written to each partition of images.raw."""
    last: dict[int, int] = {}
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
            return
        partition, offset = msg.partition(), msg.offset()
        assert partition is not None and offset is not None
        last[partition] = max(last.get(partition, -1), offset)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, f"not delivered: {errors}"
    return last


def _committed(bootstrap: str) -> dict[int, int]:
    """The group's committed offsets on images.raw (what the workers have finished), per partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition("images.raw", p) for p in range(PARTITIONS)]
        return {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=10)}
    finally:
        consumer.close()


def _consumed(bootstrap: str, last: dict[int, int]) -> bool:
    committed = _committed(bootstrap)
    return all(committed.get(p, -1) > offset for p, offset in last.items())


def _stored(reader: StoreReader) -> tuple[int, int]:
    """(rows as written, distinct image ids) of the images table, before deduplication."""
    row = reader.query("SELECT count() AS n, uniqExact(image_id) AS u FROM images")[0]
    return int(row["n"]), int(row["u"])


def test_three_workers_share_partitions_and_survive_a_kill(tmp_path: Path, broker: str, server_url: str) -> None:
    with open_store(server_url) as store:
        store.migrate()  # once, before the workers race to it
    workers = [
        WorkerProcess(tmp_path / f"w{i}", bootstrap_servers=broker, blob_url=str(tmp_path / "blobs"),
                      store_url=server_url, name=f"w{i}", args=["--agents", "sink"])
        for i in range(3)
    ]
    reader = StoreReader(server_url)
    try:
        for worker in workers:
            worker.start()

        first = image_events(BATCH, size=16, seed=3, instruments=INSTRUMENTS, prefix="before")
        last = _publish(broker, image_records(first))
        assert sorted(last) == list(range(PARTITIONS)), "the keys did not reach every partition"
        assert wait_for(lambda: _stored(reader)[1] >= BATCH, TIMEOUT_S), f"stored {_stored(reader)}"
        assert wait_for(lambda: _consumed(broker, last), TIMEOUT_S), f"committed {_committed(broker)}, last {last}"
        # at-least-once: a rebalance while workers join may redeliver a batch; reads deduplicate
        assert reader.count("images") == (BATCH, BATCH)
        processed = {w.name: w.counters()["sink"]["processed"] for w in workers}
        assert all(processed.values()), f"a worker owns no partition: {processed}"

        victim = workers.pop(0)
        assert victim.process.pid is not None
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.stop()

        second = image_events(BATCH, size=16, seed=4, instruments=INSTRUMENTS, prefix="after")
        last = _publish(broker, image_records(second))
        # every partition, the dead worker's included, is consumed again, by the two survivors
        assert wait_for(lambda: _consumed(broker, last), TIMEOUT_S), f"committed {_committed(broker)}, last {last}"
        assert wait_for(lambda: _stored(reader)[1] >= 2 * BATCH, TIMEOUT_S), f"stored {_stored(reader)}"
        expected = {e.image_id for e in first + second}
        assert {row["image_id"] for row in reader.query("SELECT image_id FROM images FINAL")} == expected
        assert reader.count("images") == (2 * BATCH, 2 * BATCH)  # a redelivery is deduplicated on read
        assert sum(w.counters()["sink"]["processed"] for w in workers) > sum(processed[w.name] for w in workers)
    finally:
        for worker in workers:
            worker.stop()
