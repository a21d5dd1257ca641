"""Replay a synthetic instrument through a :class:`DriftMonitor` to measure it.

The synthetic generator (``models.data.synthetic``) draws nuclei images with ground-truth masks and
``models.data.drift`` shifts its spec from a chosen image on. This module turns each image into the
two events the drift agent consumes, using the real serving code where it exists:

- the fingerprint event carries the real raw-intensity statistics (``models.imagestats``); its
  latent and reconstruction error come from :class:`ThumbnailEncoder`, a fixed random projection
  of a per-image-normalised thumbnail that stands in for the ONNX encoder (like the untrained
  embedding DESIGN.md measured, it cannot see gain or blur: the statistics must);
- the prediction event stands in for the U-Net: the foreground is the ground-truth mask, instances
  are its connected components (``models.measure.label_instances``: touching nuclei merge, as they
  do in a semantic U-Net's output) measured by ``models.measure.measure_objects``. Confidence and
  entropy are constants because there is no model to be unsure; those two signals are not tested here.

``bench/drift.py`` and ``tests/integration/drift`` use it; nothing that serves imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec, generate
from models.imagestats import image_stats
from models.measure import label_instances, measure_objects
from schemas.events import BlobRef, DriftEvent, FingerprintEvent, ImageStats, ObjectMeasurement, PredictionEvent
from streams.drift.monitor import DriftMonitor

__all__ = ["Detection", "StreamImage", "ThumbnailEncoder", "image_events", "replay", "synthetic_stream"]

_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_STAND_IN_CONFIDENCE = 0.95
_STAND_IN_ENTROPY = 0.1
_NO_BLOB = BlobRef(uri="file:///dev/null", sha256="0" * 64, size=0)


class ThumbnailEncoder:
    """A stand-in fingerprint encoder: normalised ``side`` x ``side`` thumbnail, fixed random projection.

    The reconstruction error is the share of the thumbnail's energy the projection cannot rebuild
    (least-squares reconstruction through the pseudo-inverse).
    """

    def __init__(self, latent_dim: int = 32, side: int = 16, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.side = side
        self.projection = rng.standard_normal((latent_dim, side * side)) / np.sqrt(side * side)
        self._rebuild = np.linalg.pinv(self.projection)

    def __call__(self, image: np.ndarray) -> tuple[list[float], float]:
        height, width = image.shape[:2]
        rows, cols = height // self.side, width // self.side
        if rows == 0 or cols == 0:
            raise ValueError(f"image {image.shape} is smaller than the {self.side}px thumbnail")
        gray = image.astype(np.float64)
        if gray.ndim == 3:
            gray = gray.mean(axis=2)
        thumb = gray[: rows * self.side, : cols * self.side].reshape(self.side, rows, self.side, cols).mean(axis=(1, 3))
        thumb = (thumb - thumb.mean()) / max(float(thumb.std()), 1e-9)
        flat = thumb.ravel()
        latent = self.projection @ flat
        residual = flat - self._rebuild @ latent
        return latent.tolist(), float(residual @ residual / flat.size)


@dataclass(frozen=True)
class StreamImage:
    """One image of a replayed stream: its position and the two events the drift agent sees."""

    index: int
    fingerprint: FingerprintEvent
    prediction: PredictionEvent


def image_events(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    index: int,
    encoder: ThumbnailEncoder,
    instrument_id: str = "synthetic",
    model_version: str = "v1",
    encoder_version: str = "thumbnail-v1",
) -> StreamImage:
    """The fingerprint and (ground-truth stand-in) prediction events of one image."""
    image_id = f"{instrument_id}-{index:06d}"
    acquired_at = _EPOCH + timedelta(seconds=index)
    latent, reconstruction_error = encoder(image)
    stats = ImageStats(**image_stats(image))
    fingerprint = FingerprintEvent(
        image_id=image_id,
        instrument_id=instrument_id,
        acquired_at=acquired_at,
        encoder_version=encoder_version,
        latent=latent,
        reconstruction_error=reconstruction_error,
        stats=stats,
        created_at=acquired_at,
    )
    instances = label_instances(mask > 0)
    objects = [ObjectMeasurement(**row) for row in measure_objects(instances, image)]
    prediction = PredictionEvent(
        image_id=image_id,
        instrument_id=instrument_id,
        acquired_at=acquired_at,
        model_version=model_version,
        mask=_NO_BLOB,
        object_count=len(objects),
        foreground_fraction=float(np.count_nonzero(mask)) / mask.size,
        mean_confidence=_STAND_IN_CONFIDENCE,
        entropy=_STAND_IN_ENTROPY,
        latency_ms=0.0,
        objects=objects,
        created_at=acquired_at,
    )
    return StreamImage(index=index, fingerprint=fingerprint, prediction=prediction)


def synthetic_stream(
    base: SyntheticSpec,
    schedule: DriftSchedule,
    count: int,
    seed: int,
    *,
    start: int = 0,
    encoder: ThumbnailEncoder | None = None,
    instrument_id: str = "synthetic",
) -> Iterator[StreamImage]:
    """Images ``start`` .. ``start + count - 1`` of a synthetic instrument following ``schedule``."""
    rng = np.random.default_rng(seed)
    encoder = encoder or ThumbnailEncoder()
    for index in range(start, start + count):
        image, mask = generate(schedule.spec_at(base, index), rng)
        yield image_events(image, mask, index=index, encoder=encoder, instrument_id=instrument_id)


@dataclass(frozen=True)
class Detection:
    """A drift event and the stream index of the image that raised it."""

    index: int
    event: DriftEvent


def replay(monitor: DriftMonitor, images: Iterable[StreamImage]) -> list[Detection]:
    """Feed every image's fingerprint then prediction to ``monitor``; collect the drift events."""
    detections = []
    for item in images:
        for event in monitor.observe_fingerprint(item.fingerprint) + monitor.observe_prediction(item.prediction):
            detections.append(Detection(item.index, event))
    return detections
