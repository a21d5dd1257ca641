"""Plain confluent-kafka clients against Tansu: every registry topic, seeking by time, resuming a group.

Tansu's high watermark is wrong for batches of several records, so nothing here reads "up to the
end": tests read until they hold what they produced, or until a sentinel record.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from schemas.topics import TOPICS
from tests.fixtures.broker import (
    consume,
    consumer_config,
    create_topics,
    producer_config,
    roundtrip_every_topic,
    unique_topic,
    value_of,
)

pytestmark = pytest.mark.broker


def test_registry_topics_are_created_once_with_their_partitions(tansu_broker: str) -> None:
    create_topics(tansu_broker)
    again = create_topics(tansu_broker)
    assert again.created == []
    assert sorted(again.existing) == sorted(TOPICS)
    assert again.fewer_partitions == {}

    metadata = AdminClient({"bootstrap.servers": tansu_broker}).list_topics(timeout=10)
    for name, spec in TOPICS.items():
        assert len(metadata.topics[name].partitions) == spec.partitions, name


def test_registry_topic_configs_are_stored(tansu_broker: str) -> None:
    create_topics(tansu_broker)
    admin = AdminClient({"bootstrap.servers": tansu_broker})
    resource = ConfigResource(ResourceType.TOPIC, "models.published")
    configs = admin.describe_configs([resource], request_timeout=10)[resource].result()
    assert configs["cleanup.policy"].value == "compact"


def test_every_registry_topic_round_trips_through_a_consumer_group(tansu_broker: str) -> None:
    create_topics(tansu_broker)
    roundtrip_every_topic(tansu_broker)


def test_seek_by_timestamp_starts_at_the_first_later_record(tansu_broker: str) -> None:
    topic = unique_topic("seek")
    create_topics(tansu_broker, [topic])
    producer = Producer(producer_config(tansu_broker))
    for i in range(5):
        producer.produce(topic.name, value=f"early-{i}")
    assert producer.flush(10) == 0
    time.sleep(0.05)  # spacing only: the split timestamp must fall strictly between the halves
    split_ms = int(time.time() * 1000)
    time.sleep(0.05)
    for i in range(5):
        producer.produce(topic.name, value=f"late-{i}")
    assert producer.flush(10) == 0

    consumer = Consumer(consumer_config(tansu_broker))
    try:
        first = consumer.offsets_for_times([TopicPartition(topic.name, 0, 0)], timeout=10)[0]
        assert first.offset == 0
        (start,) = consumer.offsets_for_times([TopicPartition(topic.name, 0, split_ms)], timeout=10)
        assert start.error is None
        assert start.offset == 5
        consumer.assign([start])
        values = [value_of(m) for m in consume(consumer, 5, timeout=30)]
    finally:
        consumer.close()
    assert values == [f"late-{i}" for i in range(5)]


def test_a_restarted_consumer_resumes_from_the_committed_offset(tansu_broker: str) -> None:
    topic = unique_topic("resume", partitions=3)
    create_topics(tansu_broker, [topic])
    keys = ["a", "b", "c"]
    producer = Producer(producer_config(tansu_broker))
    produced = [f"{keys[i % 3]}-{i}" for i in range(30)]
    for value in produced:
        producer.produce(topic.name, key=value.split("-")[0], value=value)
    assert producer.flush(10) == 0

    group = f"resume-{uuid.uuid4().hex[:8]}"
    first = Consumer(consumer_config(tansu_broker, group))
    first.subscribe([topic.name])
    try:
        seen_first = []
        for msg in consume(first, 12):
            seen_first.append(value_of(msg))
            first.commit(message=msg, asynchronous=False)
    finally:
        first.close()
    assert len(seen_first) == 12

    # One sentinel per key lands behind that key's records, so reading up to every sentinel
    # proves the second consumer saw everything left, without trusting the high watermark.
    for key in keys:
        producer.produce(topic.name, key=key, value=f"{key}-end")
    assert producer.flush(10) == 0

    second = Consumer(consumer_config(tansu_broker, group))
    second.subscribe([topic.name])
    seen_second: list[str] = []
    try:
        while {f"{k}-end" for k in keys} - set(seen_second):
            batch = consume(second, 1, timeout=60)
            assert batch, f"no record within 60 s; have {seen_second}"
            seen_second.append(value_of(batch[0]))
    finally:
        second.close()

    resumed = [v for v in seen_second if not v.endswith("-end")]
    assert not set(resumed) & set(seen_first), "records were delivered twice"
    assert sorted(seen_first + resumed) == sorted(produced), "records were lost"
