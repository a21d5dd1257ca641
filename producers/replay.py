"""Replay a slice of a topic (by time or by offset) to the same topic or another one.

Operators replay to re-run the pipeline over past images (after a fix, a new model, a lost sink).
Every replayed message keeps its key, value and headers and gains three headers saying it is a
replay and where it came from (:data:`HEADER_ORIGIN` = ``topic/partition/offset``), so a consumer
can tell it from a fresh acquisition.

Where the slice ends does not depend on the broker's high watermark, because the Tansu broker
reports a wrong one (it counts record batches, not records): a partition is finished when a message
at or past ``to`` (time or offset) arrives, and the whole replay ends once no message has arrived
for ``idle_timeout_s`` — "the end you can see". ``offsets_for_times`` only gives a starting point
(Tansu answers offset 0 for every time); messages before ``start`` are skipped by their timestamp,
so the result is exact on Kafka and on Tansu alike.

Per-partition order is kept: messages go to the same partition number when the target topic has
enough partitions, otherwise to the partition their key hashes to (per-key order still holds), and
the idempotent producer never reorders them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from producers.kafka import EventProducer, header_items
from schemas.topics import TOPICS

__all__ = [
    "HEADER_ORIGIN",
    "HEADER_REPLAYED_AT",
    "HEADER_REPLAY_ID",
    "ReplayError",
    "ReplayReport",
    "ReplaySpec",
    "replay",
]

HEADER_REPLAY_ID = "ds-replay-id"
HEADER_ORIGIN = "ds-replayed-from"
HEADER_REPLAYED_AT = "ds-replayed-at"


class ReplayError(RuntimeError):
    """The replay cannot start (unknown topic, bad range) or the broker failed it."""


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay. Times are half-open ``[start, end)``; offsets likewise ``[from_offset, to_offset)``.

    ``instrument_id`` keeps only messages keyed by that instrument, so it applies to topics keyed
    by ``instrument_id`` (every image topic). ``rate`` limits messages per second (None: as fast as
    the broker takes them). ``dry_run`` counts what would be replayed and produces nothing.
    """

    topic: str
    target: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    partitions: tuple[int, ...] | None = None
    instrument_id: str | None = None
    rate: float | None = None
    dry_run: bool = False
    idle_timeout_s: float = 5.0

    @property
    def target_topic(self) -> str:
        return self.target or self.topic

    def validate(self) -> None:
        if (self.start or self.end) and (self.from_offset is not None or self.to_offset is not None):
            raise ReplayError("choose a time range (--from/--to) or an offset range, not both")
        if self.start and self.end and self.start >= self.end:
            raise ReplayError(f"empty time range: --from {self.start.isoformat()} is not before --to "
                              f"{self.end.isoformat()}")
        if self.from_offset is not None and self.from_offset < 0:
            raise ReplayError("--from-offset must be >= 0")
        if self.from_offset is not None and self.to_offset is not None and self.from_offset >= self.to_offset:
            raise ReplayError(f"empty offset range [{self.from_offset}, {self.to_offset})")
        if self.rate is not None and self.rate <= 0:
            raise ReplayError("--rate must be positive")
        if self.instrument_id is not None:
            registered = TOPICS.get(self.topic)
            if registered is not None and registered.key != "instrument_id":
                raise ReplayError(
                    f"{self.topic} is keyed by {registered.key}, not instrument_id; --instrument cannot filter it"
                )


@dataclass
class ReplayReport:
    """What a replay did: per source partition the messages replayed and the offsets they spanned."""

    replay_id: str
    source: str
    target: str
    dry_run: bool
    replayed: int = 0
    skipped: int = 0
    per_partition: dict[int, int] = field(default_factory=dict)
    first_offset: dict[int, int] = field(default_factory=dict)
    last_offset: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "replay_id": self.replay_id,
            "source": self.source,
            "target": self.target,
            "dry_run": self.dry_run,
            "replayed": self.replayed,
            "skipped": self.skipped,
            "partitions": {
                str(p): {"count": n, "first_offset": self.first_offset.get(p), "last_offset": self.last_offset.get(p)}
                for p, n in sorted(self.per_partition.items())
            },
        }


def _ms(value: datetime) -> int:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    return int(aware.timestamp() * 1000)


class _RateLimiter:
    """Spaces sends evenly at ``rate`` per second (no burst: replays should not spike the workers)."""

    def __init__(self, rate: float | None) -> None:
        self._interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    def wait(self) -> None:
        if not self._interval:
            return
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next, now) + self._interval


def _partitions(consumer: Consumer, topic_name: str, timeout: float) -> list[int]:
    try:
        metadata = consumer.list_topics(topic_name, timeout=timeout)
    except KafkaException as exc:
        raise ReplayError(f"broker did not answer a metadata request: {exc}") from exc
    described = metadata.topics.get(topic_name)
    if described is None or described.error is not None or not described.partitions:
        raise ReplayError(f"topic {topic_name} does not exist on the broker")
    return sorted(described.partitions)


def _start_positions(
    consumer: Consumer, spec: ReplaySpec, partitions: Sequence[int], timeout: float
) -> list[TopicPartition]:
    if spec.start is not None:
        wanted = [TopicPartition(spec.topic, p, _ms(spec.start)) for p in partitions]
        try:
            found = consumer.offsets_for_times(wanted, timeout=timeout)
        except KafkaException as exc:
            raise ReplayError(f"offsets_for_times failed: {exc}") from exc
        # -1: no message at or after the time, so nothing to replay there.
        return [TopicPartition(spec.topic, tp.partition, tp.offset) for tp in found if tp.offset >= 0]
    start = spec.from_offset if spec.from_offset is not None else OFFSET_BEGINNING
    return [TopicPartition(spec.topic, p, start) for p in partitions]


def _replay_headers(message: Message, replay_id: str) -> list[tuple[str, bytes]]:
    own = {HEADER_REPLAY_ID, HEADER_ORIGIN, HEADER_REPLAYED_AT}
    kept = [(k, v) for k, v in header_items(message.headers()) if k not in own]
    return [
        *kept,
        (HEADER_REPLAY_ID, replay_id.encode()),
        (HEADER_ORIGIN, f"{message.topic()}/{message.partition()}/{message.offset()}".encode()),
        (HEADER_REPLAYED_AT, datetime.now(UTC).isoformat().encode()),
    ]


def replay(
    spec: ReplaySpec,
    client_config: Mapping[str, Any],
    *,
    on_message: Callable[[ReplayReport], None] = lambda report: None,
    timeout: float = 30.0,
) -> ReplayReport:
    """Replay ``spec`` using the librdkafka connection ``client_config``; ``on_message`` drives progress bars.

    Raises :class:`ReplayError` for a bad spec or an unreachable broker, and
    :class:`producers.kafka.PublishError` if the broker did not acknowledge every replayed message.
    """
    spec.validate()
    replay_id = uuid.uuid4().hex
    report = ReplayReport(replay_id, spec.topic, spec.target_topic, spec.dry_run)
    consumer = Consumer({
        **client_config,
        "group.id": f"driftscope-replay-{replay_id}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.message.max.bytes": 8 * 1024 * 1024 + 64 * 1024,
        "client.id": "driftscope-replay",
    })  # fmt: skip
    producer = None if spec.dry_run else EventProducer(client_config)
    try:
        available = _partitions(consumer, spec.topic, timeout)
        chosen = available if spec.partitions is None else sorted(set(spec.partitions))
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise ReplayError(f"{spec.topic} has partitions {available}; no partition {unknown}")
        target_partitions = available if producer is None else _partitions(consumer, spec.target_topic, timeout)
        same_layout = len(target_partitions) >= len(available)
        positions = _start_positions(consumer, spec, chosen, timeout)
        if positions:
            consumer.assign(positions)
            _copy(consumer, producer, spec, report, {tp.partition for tp in positions}, same_layout, on_message)
        if producer is not None:
            producer.flush()
    finally:
        consumer.close()
    return report


def _copy(
    consumer: Consumer,
    producer: EventProducer | None,
    spec: ReplaySpec,
    report: ReplayReport,
    open_partitions: set[int],
    same_layout: bool,
    on_message: Callable[[ReplayReport], None],
) -> None:
    start_ms = _ms(spec.start) if spec.start else None
    end_ms = _ms(spec.end) if spec.end else None
    instrument = spec.instrument_id.encode() if spec.instrument_id is not None else None
    limiter = _RateLimiter(spec.rate)
    last_seen = time.monotonic()
    while open_partitions and time.monotonic() - last_seen < spec.idle_timeout_s:
        message = consumer.poll(0.2)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            if error.fatal() or not error.retriable():
                raise ReplayError(f"reading {spec.topic} failed: {error.str()}")
            continue
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None or partition not in open_partitions:
            continue
        last_seen = time.monotonic()
        headers = dict(header_items(message.headers()))
        if headers.get(HEADER_REPLAY_ID) == report.replay_id.encode():
            continue  # our own output, when replaying into the source topic
        timestamp = message.timestamp()[1]
        if (end_ms is not None and timestamp >= end_ms) or (spec.to_offset is not None and offset >= spec.to_offset):
            open_partitions.discard(partition)
            consumer.pause([TopicPartition(spec.topic, partition)])
            continue
        if (start_ms is not None and timestamp < start_ms) or (instrument is not None and message.key() != instrument):
            report.skipped += 1
            continue
        if producer is not None:
            limiter.wait()
            producer.send_raw(
                spec.target_topic,
                message.value(),
                key=message.key(),
                headers=_replay_headers(message, report.replay_id),
                partition=partition if same_layout else None,
            )
        report.replayed += 1
        report.per_partition[partition] = report.per_partition.get(partition, 0) + 1
        report.first_offset.setdefault(partition, offset)
        report.last_offset[partition] = offset
        on_message(report)
