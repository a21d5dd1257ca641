"""The Faust app: agents wired to topics, thread pools for the heavy steps, counters, web pages.

Each agent is thin. It takes a batch of records (``take_events``: up to N records or T seconds),
hands the raw bytes to a synchronous step (:mod:`streams.fingerprint`, :mod:`streams.segment`,
:mod:`streams.driftwatch`, :mod:`streams.retrain`, :mod:`streams.sink`) running in a thread pool,
so inference never blocks the event loop that heartbeats and fetches, and sends what the step
returned. Records are acknowledged when the agent moves on to its next batch, i.e. after every
output was handed to the producer; Faust flushes the producer before it commits offsets, so a crash
replays records rather than losing outputs (at-least-once; the store deduplicates).

Agents and their topics:

=============  ====================================================  ====================
agent          consumes                                              produces
=============  ====================================================  ====================
fingerprint    images.raw                                            images.fingerprints
segment        images.raw                                            predictions
drift          images.fingerprints, predictions, labels              drift.events
retrain        drift.events                                          retrain.requests
sink           every topic, dead-letter queues included              ClickHouse rows
=============  ====================================================  ====================

Every agent dead-letters what it cannot decode or process to ``<topic>.dlq``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT

from consumers.store import Store, StoreError
from models.registry import Registry
from schemas.errors import BlobWriteError
from schemas.topics import TOPICS
from streams.config import StreamsConfig
from streams.counters import AgentCounters, CounterBoard
from streams.driftwatch import DriftWatch
from streams.fingerprint import Fingerprinter
from streams.logs import log_event
from streams.messages import Outcome, Output, RawMessage
from streams.retrain import RetrainTrigger
from streams.segment import Segmenter
from streams.serving import load_encoder, load_segmenter
from streams.sink import ClickHouseSink, write_until_stored
from streams.web import register_pages

__all__ = ["Steps", "StreamsApp", "refresh_models"]

log = logging.getLogger(__name__)

Step = Callable[[Sequence[RawMessage]], Outcome]
_SUMMARY_EVERY_S = 30.0
_STATUS_EVERY_S = 5.0
_RETRAIN_POLL_S = 5.0
_MODEL_POLL_S = 10.0


@dataclass
class Steps:
    """The processing steps this worker runs (None: that agent runs elsewhere)."""

    fingerprint: Fingerprinter | None = None
    segment: Segmenter | None = None
    drift: DriftWatch | None = None
    retrain: RetrainTrigger | None = None
    sink: ClickHouseSink | None = None
    store: Store | None = None
    registry: Registry | None = None
    executors: list[ThreadPoolExecutor] = field(default_factory=list)


def _raw(event: EventT) -> RawMessage:
    message = event.message
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key if isinstance(message.key, bytes | None) else bytes(message.key),
        value=message.value if isinstance(message.value, bytes | None) else bytes(message.value),
        timestamp=float(message.timestamp or 0.0),
    )


class StreamsApp:
    """driftscope's Faust application for one :class:`StreamsConfig` and its processing steps."""

    def __init__(self, config: StreamsConfig, steps: Steps) -> None:
        self.config = config
        self.steps = steps
        self.counters = CounterBoard()
        self.faust = faust.App(
            config.group_id,
            broker=config.broker_url,
            broker_credentials=_credentials(config),
            broker_session_timeout=config.session_timeout_s,
            broker_heartbeat_interval=max(0.5, config.session_timeout_s / 3),
            consumer_auto_offset_reset="earliest",
            consumer_max_fetch_size=config.max_fetch_bytes,
            producer_max_request_size=config.max_fetch_bytes + 1024 * 1024,
            stream_buffer_maxsize=config.stream_buffer_maxsize,
            stream_wait_empty=False,
            topic_allow_declare=False,
            topic_disable_leader=True,
            datadir=str(config.datadir),
            web_enabled=config.web_enabled,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
            web_port=config.web_port or 6066,
        )
        self._topics: dict[str, faust.TopicT] = {}
        self._store_executor = self._executor("store", 1) if steps.store is not None else None
        self._register()

    # -- wiring --------------------------------------------------------------------------------
    def _executor(self, name: str, threads: int) -> ThreadPoolExecutor:
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"ds-{name}")
        self.steps.executors.append(executor)
        return executor

    def topic(self, name: str) -> faust.TopicT:
        """A raw-bytes topic handle (one per name)."""
        if name not in self._topics:
            self._topics[name] = self.faust.topic(
                name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            )
        return self._topics[name]

    def _register(self) -> None:
        steps, config = self.steps, self.config
        image_batch = (config.image_batch_size, config.image_batch_ms / 1000)
        if steps.fingerprint is not None:
            self._batch_agent("fingerprint", ["images.raw"], steps.fingerprint.process,
                              self._executor("fingerprint", config.fingerprint_actors), *image_batch,
                              config.fingerprint_actors)
        if steps.segment is not None:
            self._batch_agent("segment", ["images.raw"], steps.segment.process,
                              self._executor("segment", config.concurrency), *image_batch, config.concurrency)
        if steps.drift is not None:
            drift = steps.drift
            self._batch_agent("drift", ["images.fingerprints", "predictions", "labels"], drift.process,
                              self._executor("drift", 1), 64, 0.2, 1)

            @self.faust.on_partitions_revoked.connect  # type: ignore[arg-type]
            async def forget_drift_state(app: faust.App, revoked: Any, **_: Any) -> None:
                # The next owner resumes from the checkpoint; a stale copy here must not be reused.
                drift.forget()

        if steps.retrain is not None:
            assert self._store_executor is not None
            self._batch_agent("retrain", ["drift.events"], steps.retrain.process, self._store_executor, 16, 0.5, 1)
            self._retrain_timer(steps.retrain, self._store_executor)
        if steps.sink is not None:
            self._sink_agent(steps.sink)
        if steps.segment is not None or steps.fingerprint is not None:
            self._model_watch()
        self._status_timers()
        if config.web_enabled:
            register_pages(self.faust, self.counters, steps.store, self._store_executor)

    def _batch_agent(
        self, name: str, topics: list[str], step: Step, executor: Executor, size: int, within: float, concurrency: int
    ) -> None:
        counters = self.counters.agent(name)
        channel = self.faust.topic(*topics, key_type=bytes, value_type=bytes, key_serializer="raw",
                                   value_serializer="raw")

        async def agent(stream: StreamT) -> None:
            loop = asyncio.get_running_loop()
            async for events in cast(Stream, stream).take_events(size, within=within):
                messages = [_raw(event) for event in events]
                try:
                    outcome = await _retry_blob_writes(partial(loop.run_in_executor, executor, step, messages),
                                                       name, counters)
                except Exception as exc:  # a bug or an outage inside the step: keep the agent alive
                    log.exception("agent %s failed on a batch of %d", name, len(messages))
                    counters.record_failure(exc, count=len(messages))
                    outcome = Outcome()
                    for message in messages:
                        outcome.dead(message, exc)
                await self._send(outcome.outputs)
                counters.record_batch(size=len(messages), processed=outcome.processed,
                                      dead_lettered=outcome.dead_lettered, latencies_ms=outcome.latencies_ms)
                if outcome.dead_lettered:
                    self._log_dead_letters(name, outcome)

        agent.__name__ = f"{name}_agent"
        self.faust.agent(channel, name=f"driftscope.{name}", concurrency=concurrency)(agent)

    def _retrain_timer(self, trigger: RetrainTrigger, executor: Executor) -> None:
        """Re-check instruments waiting for labels; same single-thread executor as the agent, so no race."""
        counters = self.counters.agent("retrain")

        @self.faust.timer(_RETRAIN_POLL_S, name="driftscope.retrain_poll")
        async def retrain_poll() -> None:
            try:
                outcome = await asyncio.get_running_loop().run_in_executor(executor, trigger.poll)
            except Exception as exc:  # the store may be down: the next tick tries again
                counters.record_failure(exc, count=0)
                return
            await self._send(outcome.outputs)

    def _sink_agent(self, sink: ClickHouseSink) -> None:
        counters = self.counters.agent("sink")
        executor = self._store_executor
        assert executor is not None
        channel = self.faust.topic(*TOPICS, key_type=bytes, value_type=bytes, key_serializer="raw",
                                   value_serializer="raw")
        config = self.config

        async def sink_agent(stream: StreamT) -> None:
            loop = asyncio.get_running_loop()
            async for events in cast(Stream, stream).take_events(config.sink_batch_events,
                                                                  within=config.sink_flush_s):
                messages = [_raw(event) for event in events]
                batch = await loop.run_in_executor(executor, sink.prepare, messages)
                written = await write_until_stored(sink, batch, executor, counters, backoff_s=config.sink_backoff_s,
                                                   max_backoff_s=config.sink_max_backoff_s)
                outcome = batch.outcome
                outcome.extend(written)
                await self._send(outcome.outputs)
                counters.failed += batch.unreadable
                counters.record_batch(size=len(messages), processed=outcome.processed,
                                      dead_lettered=outcome.dead_lettered,
                                      latencies_ms=[_age_ms(m) for m in messages if m.timestamp])
                if outcome.dead_lettered:
                    self._log_dead_letters("sink", outcome)

        self.faust.agent(channel, name="driftscope.sink")(sink_agent)

    async def _send(self, outputs: list[Output]) -> None:
        for output in outputs:
            headers = cast(list[tuple[str, bytes]], output.headers)  # headers_for never yields None values
            await self.topic(output.topic).send(key=output.key, value=output.value, headers=headers)

    def _log_dead_letters(self, agent: str, outcome: Outcome) -> None:
        for output in outcome.outputs:
            if output.topic.endswith(".dlq"):
                log_event(log, "dead_letter", level=logging.WARNING, agent=agent, dlq=output.topic,
                          key=output.key.decode(errors="replace") if output.key else None)

    # -- models --------------------------------------------------------------------------------
    def _model_watch(self) -> None:
        """Poll the registry's serving pointers and hot-swap a runner whose version changed.

        Polling the shared registry (not ``models.published``, whose single partition only one
        worker of the group would see) reaches every worker. The new runner is built and verified
        off the event loop; on any failure the slot keeps serving the old model.
        """
        steps, config = self.steps, self.config
        registry = steps.registry
        if registry is None:
            return
        loop_executor = self._executor("models", 1)

        @self.faust.timer(_MODEL_POLL_S, name="driftscope.model_watch")
        async def model_watch() -> None:
            try:
                swapped = await asyncio.get_running_loop().run_in_executor(
                    loop_executor, refresh_models, registry, steps, config
                )
            except Exception as exc:  # keep serving the current model
                log_event(log, "model_swap_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")
                return
            for kind, old, new in swapped:
                log_event(log, "model_swapped", kind=kind, old_version=old, new_version=new)

    # -- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What ``driftscope status`` shows for this worker."""
        steps = self.steps
        models, providers = {}, {}
        if steps.segment is not None:
            runner, models["segmenter"] = steps.segment.slot.current
            providers["segmenter"] = runner.provider
        if steps.fingerprint is not None:
            encoder, models["encoder"] = steps.fingerprint.slot.current
            providers["encoder"] = encoder.provider
        return {
            "worker": self.config.worker_name,
            "pid": os.getpid(),
            "agents": sorted(self.config.agents),
            "web": f"http://127.0.0.1:{self.config.web_port}" if self.config.web_enabled else None,
            "models": models,
            "providers": providers,
            **self.counters.snapshot(),
        }

    def _status_timers(self) -> None:
        path = self.config.status_dir / f"{self.config.worker_name}.json"

        @self.faust.timer(_STATUS_EVERY_S, name="driftscope.status_file")
        async def write_status() -> None:
            _write_atomically(path, json.dumps(self.status(), default=str).encode())

        @self.faust.timer(_SUMMARY_EVERY_S, name="driftscope.summary")
        async def log_summary() -> None:
            for name, snapshot in self.counters.snapshot()["agents"].items():
                log_event(log, "agent_summary", agent=name, **snapshot)

    # -- running -------------------------------------------------------------------------------
    def run(self) -> None:
        """Run the worker in this process until SIGTERM/SIGINT, then release what the steps hold."""
        from streams.logs import logging_config

        worker = faust.Worker(
            self.faust,
            loglevel=self.config.log_level,
            logging_config=logging_config(self.config.log_level),
            redirect_stdouts=False,
            quiet=True,
        )
        log_event(log, "worker_starting", **{k: v for k, v in self.status().items() if k != "agents"},
                  agents=sorted(self.config.agents))
        try:
            worker.execute_from_commandline()
        except SystemExit:
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread pools, close the store, and remove the status file (this worker is gone)."""
        (self.config.status_dir / f"{self.config.worker_name}.json").unlink(missing_ok=True)
        for executor in self.steps.executors:
            executor.shutdown(wait=True, cancel_futures=True)
        if self.steps.store is not None:
            try:
                self.steps.store.close()
            except StoreError as exc:
                log_event(log, "store_close_failed", level=logging.WARNING, error=str(exc))


def refresh_models(registry: Registry, steps: Steps, config: StreamsConfig) -> list[tuple[str, str, str]]:
    """Swap in the registry's serving segmenter/encoder where it differs from what a slot serves.

    Returns (kind, old version, new version) per swap. Loading verifies the artifact's sha256 and
    builds the session before the swap, so a failure leaves the old model serving.
    """
    swapped: list[tuple[str, str, str]] = []
    serving = registry.serving_versions()
    segment, fingerprint = steps.segment, steps.fingerprint
    if segment is not None and serving.get("segmenter", segment.slot.version) != segment.slot.version:
        old = segment.slot.version
        seg_runner, version = load_segmenter(registry, serving["segmenter"], intra_op_threads=config.intra_op_threads,
                                             batch_size=config.image_batch_size, device=config.device)
        segment.slot.swap(seg_runner, version)
        swapped.append(("segmenter", old, version))
    if fingerprint is not None and serving.get("encoder", fingerprint.slot.version) != fingerprint.slot.version:
        old = fingerprint.slot.version
        enc_runner, version = load_encoder(registry, serving["encoder"], intra_op_threads=config.intra_op_threads,
                                           batch_size=config.image_batch_size, device=config.device)
        fingerprint.slot.swap(enc_runner, version)
        swapped.append(("encoder", old, version))
    return swapped


async def _retry_blob_writes(
    run: Callable[[], Awaitable[Outcome]], agent: str, counters: AgentCounters, max_backoff_s: float = 30.0
) -> Outcome:
    """Run a step, waiting out a blob store that cannot take writes (archives, masks) instead of
    dead-lettering good images: while it waits the agent takes nothing new, so fetching pauses."""
    delay = 0.5
    while True:
        try:
            return await run()
        except BlobWriteError as exc:
            counters.retries += 1
            counters.last_error = str(exc)
            log_event(log, "blob_store_unwritable", level=logging.WARNING, agent=agent, retry_in_s=delay,
                      error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)


def _age_ms(message: RawMessage) -> float:
    return max(0.0, (time.time() - message.timestamp) * 1000)


def _credentials(config: StreamsConfig) -> Any:
    """aiokafka's credentials for the configured protocol: TLS verifies the CA and, unless turned
    off like librdkafka's ``ssl.endpoint.identification.algorithm=none``, the broker's host name."""
    if config.security_protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if config.security_protocol in ("SSL", "SASL_SSL"):
        ssl_context = ssl.create_default_context(cafile=config.ssl_ca_location)
        ssl_context.check_hostname = config.ssl_check_hostname
    if config.security_protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    return faust.SASLCredentials(
        username=config.sasl_username, password=config.sasl_password, ssl_context=ssl_context,
        mechanism=config.sasl_mechanism or "PLAIN",
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
