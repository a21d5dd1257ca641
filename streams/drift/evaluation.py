"""Replay a synthetic instrument through a :class:`DriftMonitor` to measure it.

The synthetic generator (``models.data.synthetic``) draws nuclei images with ground-truth masks and
``models.data.drift`` shifts its spec from a chosen image on. This module turns each image into the
two events the drift agent consumes. The raw-intensity statistics are always the real ones
(``models.imagestats``); the latent, reconstruction error and prediction come from one of two
:class:`ImageModels`:

- :class:`ServedModels` (what the benchmark uses): the served ONNX encoder and U-Net, loaded from
  the baseline artifacts through the registry like a worker loads them, batched, and the prediction
  fields computed by :func:`streams.segment.segmentation`, the function the segment step publishes
  from. The monitor sees what it would see in production.
- :class:`StandInModels` (quick experiments, tests that must not load a model): the encoder is
  :class:`ThumbnailEncoder`, a fixed random projection of a per-image-normalised thumbnail; the
  U-Net is the ground-truth mask split into connected components (``models.measure``: touching
  nuclei merge, as in a semantic U-Net's output), with constant confidence and entropy.

``bench/drift.py`` and ``tests/integration/drift`` use it; nothing that serves imports it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec, generate
from models.imagestats import image_stats
from models.measure import label_instances, measure_objects
from models.registry import ARTIFACTS_DIR, Registry
from models.runners import EncoderRunner, SegmenterRunner
from schemas.blobstore import BlobStore
from schemas.events import BlobRef, DriftEvent, FingerprintEvent, ImageStats, ObjectMeasurement, PredictionEvent
from streams.drift.monitor import DriftMonitor
from streams.segment import Segmentation, segmentation

__all__ = [
    "Detection",
    "ImageModels",
    "ServedModels",
    "StandInModels",
    "StreamImage",
    "ThumbnailEncoder",
    "image_events",
    "replay",
    "synthetic_stream",
]

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


class ImageModels(Protocol):
    """The encoder and segmenter side of a replay: what the fingerprint and segment steps compute."""

    encoder_version: str
    model_version: str

    def fingerprints(self, images: Sequence[np.ndarray]) -> list[tuple[list[float], float]]:
        """(latent, reconstruction error) per image."""
        ...

    def segmentations(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[Segmentation]:
        """The prediction fields per image (``masks`` are the ground truth, for stand-ins only)."""
        ...


class StandInModels:
    """:class:`ThumbnailEncoder` and the ground-truth mask as the U-Net's output (see the module doc)."""

    model_version = "v1"

    def __init__(self, encoder: ThumbnailEncoder | None = None) -> None:
        self.encoder = encoder or ThumbnailEncoder()
        self.encoder_version = "thumbnail-v1"

    def fingerprints(self, images: Sequence[np.ndarray]) -> list[tuple[list[float], float]]:
        return [self.encoder(image) for image in images]

    def segmentations(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[Segmentation]:
        out = []
        for image, mask in zip(images, masks, strict=True):
            labels = label_instances(mask > 0)
            out.append(
                Segmentation(
                    labels=labels,
                    objects=[ObjectMeasurement(**row) for row in measure_objects(labels, image)],
                    foreground_fraction=float(np.count_nonzero(mask)) / mask.size,
                    mean_confidence=_STAND_IN_CONFIDENCE,
                    entropy=_STAND_IN_ENTROPY,
                )
            )
        return out


class ServedModels:
    """The served ONNX encoder and U-Net, with the fingerprint and segment steps' computations."""

    def __init__(
        self, encoder: EncoderRunner, segmenter: SegmenterRunner, *, encoder_version: str, model_version: str
    ) -> None:
        self.encoder = encoder
        self.segmenter = segmenter
        self.encoder_version = encoder_version
        self.model_version = model_version

    @classmethod
    def from_baseline(
        cls, artifacts_dir: Path = ARTIFACTS_DIR, *, intra_op_threads: int = 1, batch_size: int = 8
    ) -> ServedModels:
        """The baseline models a fresh installation serves, verified through a scratch registry."""
        with tempfile.TemporaryDirectory(prefix="drift-models-") as tmp:
            registry = Registry(BlobStore(tmp))
            registry.bootstrap_from_baseline(artifacts_dir)
            return cls(
                EncoderRunner(registry.load_verified("encoder"), intra_op_threads=intra_op_threads,
                              batch_size=batch_size),
                SegmenterRunner(registry.load_verified("segmenter"), intra_op_threads=intra_op_threads,
                                batch_size=batch_size),
                encoder_version=registry.serving("encoder").version,
                model_version=registry.serving("segmenter").version,
            )

    def fingerprints(self, images: Sequence[np.ndarray]) -> list[tuple[list[float], float]]:
        latents, errors = self.encoder.encode(images)
        return [(latent.tolist(), float(error)) for latent, error in zip(latents, errors, strict=True)]

    def segmentations(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> list[Segmentation]:
        probabilities = self.segmenter.predict(images)
        return [segmentation(p, image) for p, image in zip(probabilities, images, strict=True)]


@dataclass(frozen=True)
class StreamImage:
    """One image of a replayed stream: its position and the two events the drift agent sees."""

    index: int
    fingerprint: FingerprintEvent
    prediction: PredictionEvent


def image_events(
    image: np.ndarray,
    *,
    index: int,
    fingerprint: tuple[list[float], float],
    prediction: Segmentation,
    encoder_version: str,
    model_version: str,
    instrument_id: str = "synthetic",
) -> StreamImage:
    """The fingerprint and prediction events of one image, from what the models said about it."""
    image_id = f"{instrument_id}-{index:06d}"
    acquired_at = _EPOCH + timedelta(seconds=index)
    latent, reconstruction_error = fingerprint
    fingerprint_event = FingerprintEvent(
        image_id=image_id,
        instrument_id=instrument_id,
        acquired_at=acquired_at,
        encoder_version=encoder_version,
        latent=latent,
        reconstruction_error=reconstruction_error,
        stats=ImageStats(**image_stats(image)),
        created_at=acquired_at,
    )
    prediction_event = PredictionEvent(
        image_id=image_id,
        instrument_id=instrument_id,
        acquired_at=acquired_at,
        model_version=model_version,
        mask=_NO_BLOB,
        object_count=len(prediction.objects),
        foreground_fraction=prediction.foreground_fraction,
        mean_confidence=prediction.mean_confidence,
        entropy=prediction.entropy,
        latency_ms=0.0,
        objects=prediction.objects,
        created_at=acquired_at,
    )
    return StreamImage(index=index, fingerprint=fingerprint_event, prediction=prediction_event)


def synthetic_stream(
    base: SyntheticSpec,
    schedule: DriftSchedule,
    count: int,
    seed: int,
    *,
    start: int = 0,
    models: ImageModels | None = None,
    instrument_id: str = "synthetic",
    batch_size: int = 8,
) -> Iterator[StreamImage]:
    """Images ``start`` .. ``start + count - 1`` of a synthetic instrument following ``schedule``.

    Images are drawn in order from one generator, so the stream does not depend on ``batch_size``;
    the models see ``batch_size`` images per call, as the workers batch them.
    """
    rng = np.random.default_rng(seed)
    models = models or StandInModels()
    for first in range(start, start + count, batch_size):
        indices = range(first, min(first + batch_size, start + count))
        drawn = [generate(schedule.spec_at(base, index), rng) for index in indices]
        images = [image for image, _ in drawn]
        fingerprints = models.fingerprints(images)
        predictions = models.segmentations(images, [mask for _, mask in drawn])
        for index, image, fingerprint, prediction in zip(indices, images, fingerprints, predictions, strict=True):
            yield image_events(
                image,
                index=index,
                fingerprint=fingerprint,
                prediction=prediction,
                encoder_version=models.encoder_version,
                model_version=models.model_version,
                instrument_id=instrument_id,
            )


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
