"""The metrics sink: every event type → ClickHouse, in batches, idempotently, never dropping.

Shaped like a Quix Streams batching sink. The agent hands over a batch of records (bounded by
count and time); :meth:`ClickHouseSink.prepare` decodes them and maps each event to its rows
(:func:`consumers.store.rows.rows_for`), dead-lettering what cannot be decoded;
:meth:`ClickHouseSink.write` inserts one batch per table. When the store is down or slow it
raises :class:`~consumers.store.StoreUnavailable` and the caller (:func:`write_until_stored`)
waits with a growing back-off and retries the *same* batch: while it waits the agent takes no new
records, so Faust's bounded stream buffer fills and fetching from those partitions pauses. Memory
stays bounded and nothing is dropped. Rows are idempotent (ReplacingMergeTree keyed by the
event's natural id), so a retried or replayed batch never doubles a metric.

A batch the store rejects for good (a row it cannot take) is split per record, and only the
records that still fail are dead-lettered.

Labels that arrive with their mask inline are archived in the blob store first, so the labels
table can point the trainer at every mask (the trainer never reads Kafka history).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from consumers.store import Row, Store, StoreError, StoreUnavailable
from consumers.store.rows import rows_for
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_to_blob
from schemas.codec import decode
from schemas.errors import BlobWriteError, SchemaError
from schemas.events import Event, LabelEvent
from schemas.topics import DLQ_SUFFIX, event_type
from streams.counters import AgentCounters
from streams.logs import log_event
from streams.messages import Outcome, RawMessage

__all__ = ["ClickHouseSink", "PreparedBatch", "write_until_stored"]

log = logging.getLogger(__name__)


@dataclass
class PreparedBatch:
    """Decoded records of one batch with their rows, plus the dead letters of the undecodable ones."""

    records: list[tuple[RawMessage, dict[str, list[Row]]]] = field(default_factory=list)
    outcome: Outcome = field(default_factory=Outcome)
    #: Records of a dead-letter topic that cannot be decoded either: logged, counted, not re-queued.
    unreadable: int = 0

    @property
    def tables(self) -> dict[str, list[Row]]:
        merged: dict[str, list[Row]] = {}
        for _, rows_by_table in self.records:
            for table, rows in rows_by_table.items():
                merged.setdefault(table, []).extend(rows)
        return merged


class ClickHouseSink:
    """Turns records into rows and writes them to the store."""

    def __init__(self, store: Store, blobs: BlobStore | None = None) -> None:
        self.store = store
        self.blobs = blobs

    def prepare(self, messages: Sequence[RawMessage]) -> PreparedBatch:
        batch = PreparedBatch()
        for message in messages:
            try:
                rows = rows_for(self._archived(decode(message.value, expected=event_type(message.topic))))
            except (SchemaError, StoreError, ValueError) as exc:
                if message.topic.endswith(DLQ_SUFFIX):
                    # A dead letter nobody can read: there is no dead-letter queue of a dead-letter queue.
                    batch.unreadable += 1
                    log_event(log, "sink_unreadable_dead_letter", level=logging.ERROR, topic=message.topic,
                              partition=message.partition, offset=message.offset, error=str(exc))
                else:
                    batch.outcome.dead(message, exc)
                continue
            batch.records.append((message, rows))
        return batch

    def _archived(self, event: Event) -> Event:
        """``event`` with an inline label mask moved to the blob store (retried while it is unwritable)."""
        if not (isinstance(event, LabelEvent) and event.mask is not None and self.blobs is not None):
            return event
        delay = 0.5
        while True:
            try:
                ref = array_to_blob(event.mask, self.blobs, prefix="masks")
                return event.model_copy(update={"mask": None, "mask_blob": ref})
            except BlobWriteError as exc:  # like a store outage: wait (consumption pauses), never drop
                log_event(log, "sink_blob_store_unavailable", level=logging.WARNING, error=str(exc),
                          retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def write(self, batch: PreparedBatch) -> Outcome:
        """Insert the batch, one insert per table; raises :class:`StoreUnavailable` to ask for a retry."""
        outcome = Outcome()
        try:
            for table, rows in batch.tables.items():
                self.store.insert(table, rows)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            log_event(log, "sink_batch_rejected", level=logging.WARNING, records=len(batch.records), error=str(exc))
            return self._write_one_by_one(batch)
        outcome.processed = len(batch.records)
        return outcome

    def _write_one_by_one(self, batch: PreparedBatch) -> Outcome:
        outcome = Outcome()
        for message, rows_by_table in batch.records:
            try:
                for table, rows in rows_by_table.items():
                    self.store.insert(table, rows)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                outcome.dead(message, exc)
                continue
            outcome.processed += 1
        return outcome


async def write_until_stored(
    sink: ClickHouseSink,
    batch: PreparedBatch,
    executor: Executor,
    counters: AgentCounters,
    *,
    backoff_s: float,
    max_backoff_s: float,
) -> Outcome:
    """Write ``batch`` in ``executor``, retrying while the store is unavailable; never gives up.

    The wait is the larger of the store's ``retry_after`` and an exponential back-off, capped at
    ``max_backoff_s``. Cancellation (worker shutdown) leaves the records unacknowledged, so they
    are consumed again after a restart.
    """
    loop = asyncio.get_running_loop()
    delay = backoff_s
    attempt = 0
    while True:
        attempt += 1
        try:
            outcome = await loop.run_in_executor(executor, sink.write, batch)
        except StoreUnavailable as exc:
            counters.retries += 1
            counters.last_error = str(exc)
            wait = min(max(exc.retry_after, delay), max_backoff_s)
            log_event(log, "sink_store_unavailable", level=logging.WARNING, records=len(batch.records),
                      retry_in_s=round(wait, 3), attempt=attempt, error=str(exc))
            await asyncio.sleep(wait)
            delay = min(delay * 2, max_backoff_s)
            continue
        if attempt > 1:
            log_event(log, "sink_store_recovered", records=len(batch.records), attempts=attempt)
        return outcome
