"""Replay against a real broker, checked by a plain confluent-kafka consumer (not the project's code)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from confluent_kafka import Consumer, Message, Producer

from producers.kafka import header_items
from producers.replay import HEADER_ORIGIN, HEADER_REPLAY_ID, ReplayError, ReplaySpec, replay
from schemas.codec import decode, encode, headers_for
from schemas.events import ImageEvent
from schemas.topics import Topic
from tests.fixtures.broker import consume, consumer_config, create_topics, producer_config
from tests.integration.producers.reading import read_topic

pytestmark = pytest.mark.broker

N_EVENTS = 200
PARTITIONS = 3
INSTRUMENTS = ("scope-a", "scope-b", "scope-c", "scope-d")
# Known, strictly increasing message timestamps one second apart: event i is at T0 + i s.
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(frozen=True)
class Row:
    timestamp_ms: int
    image_id: str
    instrument_id: str


@dataclass(frozen=True)
class SourceTopic:
    name: str
    partitions: dict[int, list[Row]]


def _topic(name: str) -> Topic:
    return Topic(name, PARTITIONS, "instrument_id", "replay test")


def _image_id(message: Message) -> str:
    event = decode(message.value(), expected=ImageEvent)
    assert isinstance(event, ImageEvent)
    return event.image_id


@pytest.fixture(scope="module")
def source(tansu_broker: str) -> SourceTopic:
    """A topic holding 200 image events, and what a plain consumer saw in each partition, in order."""
    name = f"replay-src-{datetime.now(UTC).strftime('%H%M%S%f')}"
    create_topics(tansu_broker, [_topic(name)])
    producer = Producer(producer_config(tansu_broker))
    for i in range(N_EVENTS):
        instrument = INSTRUMENTS[i % len(INSTRUMENTS)]
        acquired = T0 + timedelta(seconds=i)
        event = ImageEvent(
            image_id=f"img-{i:03d}", instrument_id=instrument, acquired_at=acquired,
            shape=(16, 16), dtype="uint8", pixels=np.full((16, 16), i, dtype=np.uint8),
        )  # fmt: skip
        producer.produce(name, encode(event), instrument.encode(), headers=headers_for(event), timestamp=_ms(acquired))
    assert producer.flush(30) == 0
    consumer = Consumer(consumer_config(tansu_broker))
    consumer.subscribe([name])
    partitions: dict[int, list[Row]] = defaultdict(list)
    for message in consume(consumer, N_EVENTS):
        key = message.key()
        assert key is not None
        partitions[message.partition() or 0].append(Row(message.timestamp()[1], _image_id(message), key.decode()))
    consumer.close()
    assert sum(len(rows) for rows in partitions.values()) == N_EVENTS
    return SourceTopic(name, dict(partitions))


def test_replays_exactly_a_time_range_to_another_topic_in_partition_order(
    tansu_broker: str, source: SourceTopic
) -> None:
    target = f"{source.name}-replayed"
    create_topics(tansu_broker, [_topic(target)])
    start, end = T0 + timedelta(seconds=50), T0 + timedelta(seconds=150)
    spec = ReplaySpec(topic=source.name, target=target, start=start, end=end, idle_timeout_s=3.0)

    report = replay(spec, {"bootstrap.servers": tansu_broker})

    expected = {
        p: [r.image_id for r in rows if _ms(start) <= r.timestamp_ms < _ms(end)]
        for p, rows in source.partitions.items()
    }
    assert report.replayed == 100
    messages = read_topic(tansu_broker, target, 100)  # a plain consumer, not the project's code
    assert len(messages) == 100
    got: dict[int, list[str]] = defaultdict(list)
    for message in messages:
        headers = dict(header_items(message.headers()))
        assert headers[HEADER_REPLAY_ID] == report.replay_id.encode()
        origin_topic, origin_partition, _ = headers[HEADER_ORIGIN].decode().rsplit("/", 2)
        assert (origin_topic, int(origin_partition)) == (source.name, message.partition())
        got[message.partition() or 0].append(_image_id(message))
    assert dict(got) == {p: ids for p, ids in expected.items() if ids}


def test_dry_run_counts_without_producing(tansu_broker: str, source: SourceTopic) -> None:
    spec = ReplaySpec(
        topic=source.name, target="never-created-topic", start=T0 + timedelta(seconds=190),
        dry_run=True, idle_timeout_s=2.0,
    )  # fmt: skip
    report = replay(spec, {"bootstrap.servers": tansu_broker})
    assert report.replayed == 10
    assert report.dry_run


def test_offset_range_with_partition_and_instrument_filters(tansu_broker: str, source: SourceTopic) -> None:
    partition, rows = max(source.partitions.items(), key=lambda item: len(item[1]))
    spec = ReplaySpec(topic=source.name, from_offset=5, to_offset=15, partitions=(partition,), dry_run=True,
                      idle_timeout_s=2.0)
    assert replay(spec, {"bootstrap.servers": tansu_broker}).replayed == 10

    instrument = rows[0].instrument_id
    spec = ReplaySpec(topic=source.name, partitions=(partition,), instrument_id=instrument, dry_run=True,
                      idle_timeout_s=2.0)
    report = replay(spec, {"bootstrap.servers": tansu_broker})
    assert report.replayed == sum(1 for r in rows if r.instrument_id == instrument)
    assert report.replayed + report.skipped == len(rows)


def test_unknown_topic_is_an_error(tansu_broker: str) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        replay(ReplaySpec(topic="no-such-topic-here", dry_run=True), {"bootstrap.servers": tansu_broker}, timeout=5)


def test_replay_into_the_source_topic_does_not_reread_its_own_output(tansu_broker: str) -> None:
    name = f"replay-self-{uuid.uuid4().hex[:8]}"
    create_topics(tansu_broker, [Topic(name, 1, "instrument_id", "replay test")])
    producer = Producer(producer_config(tansu_broker))
    for i in range(10):
        producer.produce(name, f"m{i}".encode(), b"scope-a")
    assert producer.flush(30) == 0

    report = replay(ReplaySpec(topic=name, idle_timeout_s=2.0), {"bootstrap.servers": tansu_broker})

    assert report.replayed == 10
    messages = read_topic(tansu_broker, name, 20)
    assert [m.value() for m in messages] == [f"m{i}".encode() for i in range(10)] * 2
    assert all(HEADER_REPLAY_ID in dict(header_items(m.headers())) for m in messages[10:])
