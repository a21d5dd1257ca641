"""The training worker's Kafka loop: one retrain request at a time, committed only once recorded.

A plain confluent-kafka consumer, not a Faust agent: a run takes minutes, longer than any sane
``max.poll.interval``. While a run is in progress the worker pauses its assignment and keeps
polling (which returns nothing for paused partitions) so the group sees it alive and does not
rebalance. The offset is committed only after the outcome has been published and recorded: a
trainer killed mid-run gets the request redelivered and runs it again under the same run id.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, Message

from consumers.trainer.run_record import RunOutcome, RunRecords
from producers.kafka import EventProducer, header_items
from schemas.codec import decode, encode, headers_for
from schemas.errors import SchemaError
from schemas.events import DeadLetter, RetrainRequest
from schemas.topics import dlq_name

__all__ = ["RunExecutor", "TrainingWorker"]

log = logging.getLogger(__name__)

REQUESTS_TOPIC = "retrain.requests"
RUNS_TOPIC = "training.runs"
PUBLISHED_TOPIC = "models.published"


class RunExecutor(Protocol):
    """Turns a request into an outcome; failures are outcomes too (status ``failed``)."""

    def run(self, request: RetrainRequest) -> RunOutcome: ...


class TrainingWorker:
    """Consume ``retrain.requests``, run each once, publish ``training.runs`` and ``models.published``."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        executor: RunExecutor,
        records: RunRecords,
        *,
        group_id: str = "driftscope-trainer",
        session_timeout_ms: int = 6000,
        on_outcome: Callable[[RunOutcome], None] | None = None,
        on_assigned: Callable[[], None] | None = None,
    ) -> None:
        self._executor = executor
        self._records = records
        self._on_outcome = on_outcome
        self._on_assigned = on_assigned
        self._stopping = threading.Event()
        self._consumer = Consumer({
            **kafka_config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 3),
        })
        # A delivery failure raises PublishError before the commit: the request is then redelivered.
        self._producer = EventProducer(kafka_config)

    def stop(self) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run_forever(self, *, max_requests: int | None = None) -> int:
        """Serve requests until stopped (or ``max_requests`` handled); returns how many were handled."""
        handled = 0
        self._consumer.subscribe([REQUESTS_TOPIC], on_assign=self._assigned)
        log.info("trainer consuming %s", REQUESTS_TOPIC)
        try:
            while not self._stopping.is_set() and (max_requests is None or handled < max_requests):
                msg = self._consumer.poll(0.5)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", error)
                    continue
                self._handle(msg)
                handled += 1
        finally:
            self._consumer.close()
        return handled

    def _assigned(self, _consumer: Consumer, partitions: list[Any]) -> None:
        log.info("trainer assigned %s", [p.partition for p in partitions])
        if self._on_assigned is not None:
            self._on_assigned()

    def _handle(self, msg: Message) -> None:
        try:
            request = decode(msg.value(), expected=RetrainRequest)
        except SchemaError as exc:
            self._dead_letter(msg, exc)
            self._consumer.commit(message=msg, asynchronous=False)
            return
        assert isinstance(request, RetrainRequest)
        outcome = self._records.get(request.idempotency_key)
        if outcome is not None:
            log.info("request %s already ran as %s: republishing", request.idempotency_key, outcome.run.run_id)
        else:
            outcome = self._run_paused(request)
        self._producer.send(RUNS_TOPIC, outcome.run)
        for published in outcome.published:
            self._producer.send(PUBLISHED_TOPIC, published)
        self._producer.flush()
        self._records.put(request.idempotency_key, outcome)
        self._consumer.commit(message=msg, asynchronous=False)
        log.info("run %s %s (%s)", outcome.run.run_id, outcome.run.status, outcome.run.reason)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def _run_paused(self, request: RetrainRequest) -> RunOutcome:
        """Run in a thread while this thread keeps the consumer alive with its assignment paused."""
        assignment = self._consumer.assignment()
        self._consumer.pause(assignment)
        result: list[RunOutcome] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                result.append(self._executor.run(request))
            except BaseException as exc:  # the executor reports failures; anything else is a bug to surface
                errors.append(exc)

        thread = threading.Thread(target=target, name=f"train-{request.idempotency_key}", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                self._consumer.poll(0.5)
                thread.join(0.5)
        finally:
            self._consumer.resume(self._consumer.assignment() or assignment)
        if errors:
            raise errors[0]
        return result[0]

    def _dead_letter(self, msg: Message, exc: SchemaError) -> None:
        letter = DeadLetter(
            source_topic=REQUESTS_TOPIC, partition=msg.partition() or 0, offset=msg.offset() or 0, key=msg.key(),
            original=msg.value() or b"", error=str(exc), error_type=type(exc).__name__,
        )
        self._producer.send_raw(dlq_name(REQUESTS_TOPIC), encode(letter), key=msg.key(),
                                 headers=header_items(headers_for(letter)))
        self._producer.flush()
        log.warning("retrain request at %s[%d]@%d to DLQ: %s", msg.topic(), msg.partition(), msg.offset(), exc)
