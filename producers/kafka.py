"""The one Kafka producer every publisher uses: idempotent, and honest about what was delivered.

librdkafka reports each message's fate asynchronously in a delivery report. A publisher that only
calls ``produce`` and exits cannot tell a sent image from a lost one, so :class:`EventProducer`
counts every report and :meth:`EventProducer.flush` raises :class:`PublishError` unless every
message it accepted was acknowledged by the broker. The producer is idempotent (``acks=all``,
sequence numbers), so librdkafka's own retries never duplicate or reorder a partition.

Messages are keyed by the field the topic registry names (``instrument_id`` for every image topic),
so per-instrument order holds across partitions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka._types import HeadersType

from schemas.codec import encode, headers_for
from schemas.events import Event
from schemas.topics import topic as lookup_topic

__all__ = [
    "DeliveryFailure",
    "EventProducer",
    "PublishError",
    "event_key",
    "header_items",
    "producer_config",
]

log = logging.getLogger(__name__)

#: Large enough for any inline event under the topics' ``max.message.bytes`` (8 MiB).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
Headers = Sequence[tuple[str, bytes]]


class PublishError(RuntimeError):
    """Messages were not acknowledged by the broker; ``failures`` says which and why."""

    def __init__(self, message: str, failures: Sequence[DeliveryFailure] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass(frozen=True)
class DeliveryFailure:
    """One message the broker did not acknowledge."""

    topic: str
    key: bytes | None
    error: str


def producer_config(client_config: Mapping[str, Any], *, delivery_timeout_s: float = 30.0) -> dict[str, Any]:
    """librdkafka producer properties on top of the connection ``client_config``.

    ``delivery_timeout_s`` bounds how long librdkafka retries one message before reporting it
    failed; the default of five minutes would leave an operator staring at a silent terminal
    when the broker is down.
    """
    conf: dict[str, Any] = {
        "enable.idempotence": True,
        "acks": "all",
        # No batch compression: frames already zstd-compress their arrays, and the Faust workers'
        # aiokafka reads only gzip or uncompressed batches unless cramjam is installed (lz4 crashed them).
        "compression.type": "none",
        "linger.ms": 5,
        "message.max.bytes": MAX_MESSAGE_BYTES + 64 * 1024,
        "message.timeout.ms": int(delivery_timeout_s * 1000),
        "client.id": "driftscope-producer",
    }
    conf.update(client_config)
    return conf


def header_items(headers: HeadersType | None) -> list[tuple[str, bytes]]:
    """Message headers as ``(name, bytes)`` pairs, whichever of its accepted shapes the client used."""
    items = headers.items() if isinstance(headers, dict) else headers or []
    return [(name, value.encode() if isinstance(value, str) else value or b"") for name, value in items]


def event_key(event: Event, topic_name: str, key_field: str | None = None) -> bytes | None:
    """The message key: the event's ``key_field``, by default the field the topic registry names."""
    value = getattr(event, key_field or lookup_topic(topic_name).key, None)
    return None if value is None else str(value).encode()


@dataclass
class _Tally:
    accepted: int = 0
    delivered: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)
    fatal: str | None = None


class EventProducer:
    """Publish framed events (or raw replayed messages) and account for every delivery report.

    >>> with EventProducer({"bootstrap.servers": servers}) as producer:   # doctest: +SKIP
    ...     producer.send("images.raw", event)
    ... # leaving the block flushes and raises PublishError if anything was lost
    """

    def __init__(self, client_config: Mapping[str, Any], *, delivery_timeout_s: float = 30.0) -> None:
        self._tally = _Tally()
        self.delivery_timeout_s = delivery_timeout_s
        conf = producer_config(client_config, delivery_timeout_s=delivery_timeout_s)
        conf["error_cb"] = self._on_error
        self._producer = Producer(conf)

    @property
    def delivered(self) -> int:
        """Messages acknowledged by the broker so far."""
        return self._tally.delivered

    @property
    def failures(self) -> list[DeliveryFailure]:
        return list(self._tally.failures)

    def send(self, topic_name: str, event: Event, *, key_field: str | None = None, headers: Headers = ()) -> None:
        """Frame ``event`` and queue it for ``topic_name``, keyed by ``key_field`` (default: the registry's key)."""
        framed = [*header_items(headers_for(event)), *headers]
        self.send_raw(topic_name, encode(event), key=event_key(event, topic_name, key_field), headers=framed)

    def send_raw(
        self,
        topic_name: str,
        value: bytes | None,
        *,
        key: bytes | None,
        headers: Headers = (),
        partition: int | None = None,
    ) -> None:
        """Queue already-encoded bytes (replay); waits for queue space instead of failing."""
        self._raise_if_fatal()
        kwargs: dict[str, Any] = {
            "key": key, "value": value, "headers": list(headers), "on_delivery": self._on_delivery,
        }  # fmt: skip
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic_name, **kwargs)
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise PublishError(f"cannot publish to {topic_name}: {exc.args[0].str()}") from exc
        self._tally.accepted += 1
        self._producer.poll(0)

    def flush(self, timeout: float | None = None) -> int:
        """Wait for every delivery report; the number delivered so far, or :class:`PublishError`.

        Failures are reported once: after a :class:`PublishError` the producer may be used again
        (a watcher retries the same files later).
        """
        remaining = self._producer.flush(self.delivery_timeout_s + 5 if timeout is None else timeout)
        self._raise_if_fatal()
        tally = self._tally
        failures, accepted = tally.failures, tally.accepted
        tally.failures, tally.accepted = [], remaining
        if failures or remaining:
            first = failures[0].error if failures else "no delivery report before the timeout"
            raise PublishError(
                f"{len(failures) + remaining} of {accepted} messages were not delivered (first error: {first}); "
                "check that the broker is reachable and the topic exists",
                failures,
            )
        return tally.delivered

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self._tally.delivered += 1
            return
        failure = DeliveryFailure(message.topic() or "?", message.key(), error.str())
        log.error("delivery failed: topic %s key %r: %s", failure.topic, failure.key, failure.error)
        self._tally.failures.append(failure)

    def _on_error(self, error: KafkaError) -> None:
        # A fatal error (for example a fenced idempotent producer) makes every later send fail.
        if error.fatal():
            self._tally.fatal = error.str()
        log.debug("kafka client error: %s", error.str())

    def _raise_if_fatal(self) -> None:
        if self._tally.fatal is not None:
            raise PublishError(f"the producer hit a fatal error and cannot continue: {self._tally.fatal}")

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
        else:
            # Already failing: give queued messages a short chance, but report the original error.
            self._producer.flush(min(5.0, self.delivery_timeout_s))
