"""The synthetic instrument: a stream of generated microscope images whose acquisition drifts on schedule.

Image ``i`` is drawn from ``schedule.spec_at(spec, i)`` (see :mod:`models.data.drift`) with a
random generator seeded by ``(seed, i)``, so a run is reproducible image by image whatever the rate
or the point where it was interrupted. A fraction of images also gets its ground-truth mask
published as a :class:`~schemas.events.LabelEvent`, ``label_delay`` images later — labels arrive
late, as from a human annotator.

>>> import numpy as np
>>> from models.data.synthetic import SyntheticSpec
>>> instrument = SyntheticInstrument(InstrumentConfig(spec=SyntheticSpec(size=(32, 32)), label_fraction=1.0))
>>> image, label = instrument.acquire(0, store=None)
>>> image.shape, label is not None and label.image_id == image.image_id
((32, 32), True)
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec, generate
from producers.kafka import EventProducer
from schemas.blobstore import BlobStore
from schemas.claimcheck import DEFAULT_THRESHOLD_BYTES, array_to_blob, image_event
from schemas.events import ImageEvent, LabelEvent, utcnow

__all__ = ["IMAGE_TOPIC", "LABEL_TOPIC", "InstrumentConfig", "SimulationReport", "SyntheticInstrument"]

IMAGE_TOPIC = "images.raw"
LABEL_TOPIC = "labels"
_ROWS = "ABCDEFGH"


@dataclass(frozen=True)
class InstrumentConfig:
    """What the synthetic instrument acquires and how its acquisition drifts."""

    instrument_id: str = "synth-1"
    spec: SyntheticSpec = field(default_factory=SyntheticSpec)
    schedule: DriftSchedule = field(default_factory=DriftSchedule)
    label_fraction: float = 0.0
    label_delay: int = 0
    annotator: str = "synthetic-ground-truth"
    pixel_size_um: float = 0.65
    experiment: str = "synthetic"
    seed: int = 0
    #: Part of every image id; two runs with the same run id publish the same ids (deduplicated).
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction must be in [0, 1], got {self.label_fraction}")
        if self.label_delay < 0:
            raise ValueError(f"label_delay must be >= 0, got {self.label_delay}")


@dataclass
class SimulationReport:
    """What a simulation published."""

    images: int = 0
    labels: int = 0
    claim_checked: int = 0
    drift_onset: int | None = None


class SyntheticInstrument:
    """Acquires image ``i`` on demand; :meth:`run` publishes a paced stream of them."""

    def __init__(self, config: InstrumentConfig) -> None:
        self.config = config

    def acquire(
        self, index: int, *, store: BlobStore | None, threshold_bytes: int = DEFAULT_THRESHOLD_BYTES
    ) -> tuple[ImageEvent, LabelEvent | None]:
        """Image ``index`` of the stream and, for the labelled fraction, its ground-truth label."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index])
        image, mask = generate(cfg.schedule.spec_at(cfg.spec, index), rng)
        image_id = f"{cfg.instrument_id}/{cfg.run_id}/{index:06d}"
        plate, well = divmod(index, 96)
        event = image_event(
            image, store=store, threshold_bytes=threshold_bytes,
            image_id=image_id, instrument_id=cfg.instrument_id, acquired_at=utcnow(),
            experiment=cfg.experiment, plate=f"plate-{plate + 1:03d}", well=f"{_ROWS[well // 12]}{well % 12 + 1:02d}",
            pixel_size_um=cfg.pixel_size_um, source=f"synthetic:{cfg.run_id}:{index}",
        )  # fmt: skip
        if rng.random() >= cfg.label_fraction:
            return event, None
        return event, self._label(image_id, mask, store, threshold_bytes)

    def ground_truth(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` and its full instance mask, exactly as :meth:`acquire` generates them.

        The demo and the benchmarks score every prediction against it, labelled or not.
        """
        cfg = self.config
        return generate(cfg.schedule.spec_at(cfg.spec, index), np.random.default_rng([cfg.seed, index]))

    def _label(self, image_id: str, mask: np.ndarray, store: BlobStore | None, threshold_bytes: int) -> LabelEvent:
        cfg = self.config
        if store is not None and mask.nbytes > threshold_bytes:
            ref = array_to_blob(mask, store, prefix="masks")
            if ref.size > threshold_bytes:
                return LabelEvent(image_id=image_id, instrument_id=cfg.instrument_id, annotator=cfg.annotator,
                                  mask_blob=ref)
        return LabelEvent(image_id=image_id, instrument_id=cfg.instrument_id, annotator=cfg.annotator, mask=mask)

    def run(
        self,
        producer: EventProducer,
        *,
        count: int | None,
        rate: float | None,
        store: BlobStore | None,
        threshold_bytes: int = DEFAULT_THRESHOLD_BYTES,
        stop: threading.Event | None = None,
        on_image: Callable[[SimulationReport], None] = lambda report: None,
        flush_every: int = 100,
        image_topic: str = IMAGE_TOPIC,
        label_topic: str = LABEL_TOPIC,
    ) -> SimulationReport:
        """Publish ``count`` images (None: until ``stop``) at ``rate`` per second (None: as fast as possible).

        Flushes every ``flush_every`` images and at the end, so a broker failure surfaces as
        :class:`producers.kafka.PublishError` within one flush window instead of after the run.
        """
        report = SimulationReport(drift_onset=self.config.schedule.onset)
        stop = stop or threading.Event()
        delayed: collections.deque[tuple[int, LabelEvent]] = collections.deque()
        started = time.monotonic()
        index = 0
        while (count is None or index < count) and not stop.is_set():
            if rate:
                wait = started + index / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            image, label = self.acquire(index, store=store, threshold_bytes=threshold_bytes)
            producer.send(image_topic, image, key_field="instrument_id")
            report.images += 1
            report.claim_checked += image.blob is not None
            if label is not None:
                delayed.append((index + self.config.label_delay, label))
            while delayed and delayed[0][0] <= index:
                producer.send(label_topic, delayed.popleft()[1], key_field="instrument_id")
                report.labels += 1
            index += 1
            if index % flush_every == 0:
                producer.flush()
            on_image(report)
        for _, pending in delayed:  # the run ends: the annotator catches up
            producer.send(label_topic, pending, key_field="instrument_id")
            report.labels += 1
        producer.flush()
        return report
