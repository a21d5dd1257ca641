"""Read a whole topic with a plain confluent-kafka consumer, and notice messages beyond those expected."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from tests.fixtures.broker import consumer_config


def read_topic(
    bootstrap: str, topic: str, expected: int, *, timeout: float = 30.0, quiet: float = 3.0
) -> list[Message]:
    """Every message of ``topic``: waits up to ``timeout`` for ``expected`` of them, then ``quiet``
    seconds more so that an unexpected extra (a duplicate) is caught too.

    Partitions are assigned, not subscribed: no group join to wait for.
    """
    consumer = Consumer(consumer_config(bootstrap))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and (len(messages) < expected or time.monotonic() - last < quiet):
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                pytest.fail(f"consumer error: {message.error()}")
            messages.append(message)
            last = time.monotonic()
    finally:
        consumer.close()
    return messages
