"""What the agents pass around: a consumed record with its position, and a record to produce.

The processing steps (fingerprint, segment, drift, retrain) are plain synchronous functions from
:class:`RawMessage` to :class:`Outcome`, so they run in a worker thread, are testable without a
broker, and the Faust layer only moves bytes in and out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from schemas.codec import Headers, encode, headers_for
from schemas.events import DeadLetter, Event
from schemas.topics import dlq_name

__all__ = ["Outcome", "Output", "RawMessage", "dead_letter", "output_for"]

# Dead letters of one record share one id, whichever agent (or replay) produced them, so the
# store and any reader collapse duplicates.
_DLQ_NAMESPACE = uuid.UUID("6c0b7f64-3f3c-4b6f-9a36-2f1a4d7d0e11")


@dataclass(frozen=True)
class RawMessage:
    """One consumed Kafka record: bytes as they arrived, and where they came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    #: Broker/producer timestamp in seconds since the epoch (0 when unknown).
    timestamp: float = 0.0


@dataclass(frozen=True)
class Output:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)


@dataclass
class Outcome:
    """What processing a batch produced: records to send, and how many inputs failed."""

    outputs: list[Output] = field(default_factory=list)
    processed: int = 0
    dead_lettered: int = 0
    #: Per-message processing latency (ms) of the successful ones.
    latencies_ms: list[float] = field(default_factory=list)

    def dead(self, message: RawMessage, error: BaseException) -> DeadLetter:
        """Record ``message`` as failed with ``error``; returns the dead letter that will be sent."""
        letter = dead_letter(message, error)
        self.outputs.append(Output(dlq_name(message.topic), message.key, encode(letter), headers_for(letter)))
        self.dead_lettered += 1
        return letter

    def extend(self, other: Outcome) -> None:
        self.outputs.extend(other.outputs)
        self.processed += other.processed
        self.dead_lettered += other.dead_lettered
        self.latencies_ms.extend(other.latencies_ms)


def dead_letter(message: RawMessage, error: BaseException) -> DeadLetter:
    """The dead letter for ``message``: original bytes, position and reason, with a stable id."""
    return DeadLetter(
        event_id=uuid.uuid5(_DLQ_NAMESPACE, f"{message.topic}/{message.partition}/{message.offset}"),
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        original=message.value or b"",
        error=str(error) or repr(error),
        error_type=type(error).__name__,
    )


def output_for(topic: str, key: str | None, event: Event) -> Output:
    """The record that publishes ``event`` on ``topic`` keyed by ``key``."""
    return Output(topic, key.encode() if key is not None else None, encode(event), headers_for(event))


