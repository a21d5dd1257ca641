"""The producer is honest: a message the broker never acknowledged makes flush fail, and says so."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from producers.kafka import EventProducer, PublishError, event_key, header_items, producer_config
from schemas.events import ImageEvent, RetrainRequest


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on exit: nothing listens there


def _event() -> ImageEvent:
    return ImageEvent(image_id="i1", instrument_id="scope-9", acquired_at=datetime(2026, 1, 1, tzinfo=UTC),
                      shape=(16, 16), dtype="uint8", pixels=np.zeros((16, 16), dtype=np.uint8))


def test_undelivered_messages_raise_with_the_reason() -> None:
    producer = EventProducer({"bootstrap.servers": f"127.0.0.1:{_dead_port()}", "log_level": 0},
                             delivery_timeout_s=1.0)
    producer.send("images.raw", _event())
    with pytest.raises(PublishError, match="1 of 1 messages were not delivered") as caught:
        producer.flush(timeout=10)
    assert caught.value.failures and caught.value.failures[0].key == b"scope-9"
    assert producer.delivered == 0
    # Reported once: the producer is usable again (a watcher retries later).
    assert producer.flush(timeout=1) == 0


def test_context_manager_flushes_and_raises() -> None:
    conf = {"bootstrap.servers": f"127.0.0.1:{_dead_port()}", "log_level": 0}
    with pytest.raises(PublishError), EventProducer(conf, delivery_timeout_s=1.0) as producer:
        producer.send("images.raw", _event())


def test_keys_follow_the_topic_registry() -> None:
    request = RetrainRequest(idempotency_key="k-1", base_model_version="v1")
    assert event_key(_event(), "images.raw") == b"scope-9"
    assert event_key(request, "retrain.requests") == b"k-1"
    assert event_key(_event(), "any.topic", "image_id") == b"i1"


def test_config_is_idempotent_and_connection_settings_win() -> None:
    conf = producer_config({"bootstrap.servers": "h:1", "client.id": "mine"})
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["client.id"] == "mine"


def test_header_items_accepts_every_shape_the_client_uses() -> None:
    token = uuid.uuid4().hex
    assert header_items({"a": token, "b": None}) == [("a", token.encode()), ("b", b"")]
    assert header_items([("c", b"x")]) == [("c", b"x")]
    assert header_items(None) == []
