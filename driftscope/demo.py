"""The demo: the whole loop on the embedded stack, from the first image to a hot-swapped model.

A synthetic instrument streams images; partway through, its specimen drifts. A fraction of the
images is labelled (late, as by an annotator). The demo only publishes and watches: detecting the
drift, asking for a retrain, training, gating, promoting and hot-swapping are all done by the
stack's worker and trainer, exactly as in production. The demo watches the output topics, scores
every prediction against the instrument's ground truth, and stops once the new model has served
enough drifted images to compare it with the old one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer

from driftscope.demo_report import write_demo_report
from driftscope.stack import start_detached, stop_running_stack
from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec
from models.metrics import dice
from producers.instrument import InstrumentConfig, SyntheticInstrument
from producers.kafka import EventProducer
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_from_blob
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.events import DriftEvent, ModelPublished, PredictionEvent, RetrainRequest, TrainingRunEvent

__all__ = ["DemoOptions", "DemoProgress", "DemoSummary", "run_demo"]

log = logging.getLogger(__name__)

WATCHED_TOPICS = ("predictions", "drift.events", "retrain.requests", "training.runs", "models.published")


@dataclass(frozen=True)
class DemoOptions:
    """What the demo streams, and when it gives up."""

    home: Path
    report: Path | None = None
    instrument_id: str = "demo-scope"
    size: int = 256
    in_distribution: int = 150
    # A switch to a noisier, softer-focus acquisition: the baseline's Dice falls from 0.96 to about
    # 0.5 on it, and a few minutes of fine-tuning on a dozen labelled images bring it back near 0.9.
    drift: str = "noise:1.0,defocus:1.0"
    label_fraction: float = 0.25
    rate: float = 4.0
    #: While a retrain runs the instrument slows down: on 2 CPU cores the worker and the trainer
    #: would otherwise fight over them and the demo would take twice as long.
    training_rate: float = 1.0
    after_swap: int = 40
    max_images: int = 2000
    timeout_s: float = 900.0
    seed: int = 0


@dataclass
class DemoProgress:
    """What the demo has seen so far; the CLI renders it."""

    published: int = 0
    labels: int = 0
    predictions: int = 0
    drift_events: list[DriftEvent] = field(default_factory=list)
    requests: list[RetrainRequest] = field(default_factory=list)
    runs: list[TrainingRunEvent] = field(default_factory=list)
    promoted: list[ModelPublished] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: per partition of ``predictions``: the offset of the promoted model's first prediction
    first_promoted_offset: dict[int, int] = field(default_factory=dict)
    #: predictions by another version after that offset (a hot swap that did not hold)
    stale_after_swap: int = 0
    phase: str = "starting the stack"


@dataclass(frozen=True)
class DemoSummary:
    images: int
    drift_onset: int
    drift_detected_at: int | None
    retrain_runs: int
    promoted_version: str | None
    dice_drifted_before: float | None
    dice_drifted_after: float | None
    seconds: float
    base_version: str | None
    stale_after_swap: int = 0
    report: str | None = None

    def public(self) -> dict[str, Any]:
        """The fields `driftscope demo --json` prints."""
        return {
            "images": self.images, "drift_detected_at": self.drift_detected_at, "retrain_runs": self.retrain_runs,
            "promoted_version": self.promoted_version, "dice_drifted_before": self.dice_drifted_before,
            "dice_drifted_after": self.dice_drifted_after, "seconds": round(self.seconds, 1),
            "drift_onset": self.drift_onset, "base_version": self.base_version,
            "stale_after_swap": self.stale_after_swap, "report": self.report,
        }


def _index_of(image_id: str) -> int:
    return int(image_id.rsplit("/", 1)[-1])


class _Scorer:
    """Dice of each prediction against the instrument's ground truth, by model version."""

    def __init__(self, instrument: SyntheticInstrument, store: BlobStore, onset: int) -> None:
        self._instrument, self._store, self.onset = instrument, store, onset
        self.scores: list[tuple[int, str, float]] = []

    def add(self, prediction: PredictionEvent) -> None:
        index = _index_of(prediction.image_id)
        _, truth = self._instrument.ground_truth(index)
        predicted = array_from_blob(prediction.mask, self._store)
        self.scores.append((index, prediction.model_version, dice(predicted > 0, truth > 0)))

    def drifted_mean(self, version: str) -> float | None:
        values = [s for i, v, s in self.scores if v == version and i >= self.onset]
        return float(np.mean(values)) if values else None

    def drifted_count(self, version: str) -> int:
        return sum(1 for i, v, _ in self.scores if v == version and i >= self.onset)


def run_demo(options: DemoOptions, on_progress: Callable[[DemoProgress], None] = lambda p: None) -> DemoSummary:
    """Bring the stack up in ``options.home``, run the loop until it closes (or times out), stop it."""
    started = time.monotonic()
    progress = DemoProgress()
    on_progress(progress)
    info = start_detached(options.home)
    try:
        return _drive(options, info.bootstrap_servers, BlobStore(info.blob_url), progress, on_progress, started)
    finally:
        progress.phase = "stopping the stack"
        on_progress(progress)
        stop_running_stack(options.home)


def _drive(
    options: DemoOptions,
    bootstrap: str,
    store: BlobStore,
    progress: DemoProgress,
    on_progress: Callable[[DemoProgress], None],
    started: float,
) -> DemoSummary:
    schedule = DriftSchedule.parse(
        ",".join(f"{step.strip()}@{options.in_distribution}" for step in options.drift.split(",") if step.strip())
    )
    instrument = SyntheticInstrument(InstrumentConfig(
        instrument_id=options.instrument_id, spec=SyntheticSpec(size=(options.size, options.size)),
        schedule=schedule, label_fraction=options.label_fraction, label_delay=3, seed=options.seed,
    ))
    scorer = _Scorer(instrument, store, options.in_distribution)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"demo-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
    consumer.subscribe(list(WATCHED_TOPICS))
    stop = threading.Event()
    producer = EventProducer({"bootstrap.servers": bootstrap})

    def pace(images: int, labels: int) -> None:
        progress.published, progress.labels = images, labels
        training = bool(progress.requests) and not progress.promoted and len(progress.runs) < len(progress.requests)
        stop.wait(1.0 / (options.training_rate if training else options.rate))

    def publish() -> None:
        try:
            instrument.run(producer, count=options.max_images, rate=None, store=store, stop=stop,
                           on_image=lambda report: pace(report.images, report.labels), flush_every=10)
        except Exception:
            log.exception("the synthetic instrument failed")
            stop.set()

    publisher = threading.Thread(target=publish, name="instrument", daemon=True)
    progress.phase = "streaming in-distribution images"
    publisher.start()
    base_version: str | None = None
    promoted: str | None = None
    deadline = started + options.timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                try:
                    event = decode(msg.value())
                except SchemaError:
                    continue
                if isinstance(event, PredictionEvent):
                    base_version = base_version or event.model_version
                    _track_swap(progress, promoted, event.model_version, msg.partition() or 0, msg.offset() or 0)
                    progress.predictions += 1
                    progress.versions[event.model_version] += 1
                    scorer.add(event)
                elif isinstance(event, DriftEvent):
                    progress.drift_events.append(event)
                elif isinstance(event, RetrainRequest):
                    if event.idempotency_key not in {r.idempotency_key for r in progress.requests}:
                        progress.requests.append(event)
                elif isinstance(event, TrainingRunEvent):
                    if event.run_id not in {r.run_id for r in progress.runs}:
                        progress.runs.append(event)
                elif isinstance(event, ModelPublished) and event.promoted and event.kind == "segmenter":
                    progress.promoted.append(event)
                    promoted = event.version
            progress.phase = _phase(progress, options, promoted)
            on_progress(progress)
            if promoted and scorer.drifted_count(promoted) >= options.after_swap:
                break
    finally:
        stop.set()
        publisher.join(30)
        consumer.close()
    detected = _detected_at(progress.drift_events, options.in_distribution)
    summary = DemoSummary(
        images=progress.published, drift_onset=options.in_distribution, drift_detected_at=detected,
        retrain_runs=len(progress.runs), promoted_version=promoted,
        dice_drifted_before=scorer.drifted_mean(base_version) if base_version else None,
        dice_drifted_after=scorer.drifted_mean(promoted) if promoted else None,
        seconds=time.monotonic() - started, base_version=base_version, stale_after_swap=progress.stale_after_swap,
        report=str(options.report) if options.report else None,
    )
    if options.report is not None:
        write_demo_report(options.report, scorer.scores, summary.public())
    return summary


def _track_swap(progress: DemoProgress, promoted: str | None, version: str, partition: int, offset: int) -> None:
    """Count predictions by an older model made after the promoted one served in the same partition."""
    if promoted is None:
        return
    if version == promoted:
        first = progress.first_promoted_offset.get(partition)
        progress.first_promoted_offset[partition] = offset if first is None else min(first, offset)
    elif offset > progress.first_promoted_offset.get(partition, offset):
        progress.stale_after_swap += 1


def _phase(progress: DemoProgress, options: DemoOptions, promoted: str | None) -> str:
    if promoted:
        return f"new model {promoted} serving: scoring it on drifted images"
    if progress.runs:
        return f"retrain run {progress.runs[-1].status}; waiting for a promoted model"
    if progress.requests:
        return "retraining on the labelled drifted images (the instrument slows down meanwhile)"
    if progress.drift_events:
        return "drift detected: waiting for labels and the retrain run"
    if progress.published >= options.in_distribution:
        return f"specimen drifted at image {options.in_distribution} ({options.drift}): watching for drift"
    return "streaming in-distribution images"


def _detected_at(events: list[DriftEvent], onset: int) -> int | None:
    """The stream index at which the first post-onset drift event fired (its latest evidence image)."""
    indices = [max(_index_of(i) for i in e.evidence) for e in events if e.evidence]
    after = [i for i in indices if i >= onset]
    return min(after) if after else None
