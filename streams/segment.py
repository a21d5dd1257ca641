"""The segment step: ``images.raw`` → ``predictions`` (objects inside, the mask in the blob store).

A batch of images goes through the U-Net in one onnxruntime call; each probability map becomes
instance labels (threshold + watershed split of touching nuclei), per-object measurements (area,
perimeter, eccentricity, mean raw intensity, centroid) and two uncertainty summaries:

- ``mean_confidence``: mean over pixels of ``max(p, 1 - p)``, in [0.5, 1];
- ``entropy``: mean binary entropy of the pixels, in bits, in [0, 1].

The instance mask is claim-checked into the blob store; the event carries its reference.

>>> import numpy as np
>>> round(mean_confidence(np.array([0.9, 0.2])), 3), round(mean_entropy(np.array([0.5, 0.5])), 3)
(0.85, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.runners import SegmenterRunner, instances_from_probability
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_to_blob
from schemas.events import ObjectMeasurement, PredictionEvent
from streams.images import DecodedImage, decode_images, run_isolating_failures
from streams.messages import Outcome, RawMessage, output_for
from streams.objects import measure_objects
from streams.serving import ModelSlot

__all__ = ["PREDICTION_TOPIC", "Segmentation", "Segmenter", "mean_confidence", "mean_entropy", "segmentation"]

PREDICTION_TOPIC = "predictions"
_EPS = 1e-7


def mean_confidence(probability: np.ndarray) -> float:
    p = probability.astype(np.float32, copy=False)
    return float(np.maximum(p, 1 - p).mean(dtype=np.float64))


def mean_entropy(probability: np.ndarray) -> float:
    p = np.clip(probability.astype(np.float32, copy=False), _EPS, 1 - _EPS)
    bits = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(min(1.0, max(0.0, bits.mean(dtype=np.float64))))


@dataclass(frozen=True)
class Segmentation:
    """What a prediction event says about one image, before it is claim-checked and stamped."""

    labels: np.ndarray
    objects: list[ObjectMeasurement]
    foreground_fraction: float
    mean_confidence: float
    entropy: float


def segmentation(probability: np.ndarray, pixels: np.ndarray) -> Segmentation:
    """Instances, their measurements and the uncertainty summaries of one probability map.

    The one place these are computed, so the drift benchmark (``streams.drift.evaluation``) feeds the
    monitor exactly the values the segment step publishes.
    """
    labels = instances_from_probability(probability)
    return Segmentation(
        labels=labels,
        objects=[ObjectMeasurement(**row) for row in measure_objects(labels, pixels)],
        foreground_fraction=float(np.count_nonzero(labels)) / labels.size,
        mean_confidence=mean_confidence(probability),
        entropy=mean_entropy(probability),
    )


def _compact(labels: np.ndarray) -> np.ndarray:
    """Instance labels in the smallest mask dtype that holds them (most images fit uint16)."""
    return labels.astype(np.uint16) if labels.max(initial=0) < 2**16 else labels.astype(np.int32)


class Segmenter:
    """Turns a batch of raw image records into prediction records (and dead letters)."""

    def __init__(
        self, slot: ModelSlot[SegmenterRunner], blobs: BlobStore, *, pixel_budget: int = 2 * 512 * 512
    ) -> None:
        self.slot = slot
        self.blobs = blobs
        #: Pixels per onnxruntime call. The U-Net's activations (and onnxruntime's arena, which keeps
        #: its peak) grow with the pixels of a call: ~128 MiB per 512x512 image at base width 16.
        #: Batching beyond two 512x512 images buys little speed on a CPU, so larger images go
        #: through in smaller calls and the worker's memory stays bounded whatever the image size.
        self.pixel_budget = pixel_budget

    def process(self, messages: Sequence[RawMessage]) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome()
        images = decode_images(messages, self.blobs, outcome)
        runner, version = self.slot.current

        def predict(batch: Sequence[DecodedImage]) -> list[np.ndarray]:
            largest = max(image.pixels.shape[0] * image.pixels.shape[1] for image in batch)
            per_call = max(1, self.pixel_budget // largest)
            probabilities: list[np.ndarray] = []
            for start in range(0, len(batch), per_call):
                probabilities += runner.predict([image.pixels for image in batch[start:start + per_call]])
            return probabilities

        for image, probability in run_isolating_failures(images, predict, lambda i: i.message, outcome):
            try:
                event = self._prediction(image, probability, version, started)
            except ValueError as exc:  # a probability map the measurements cannot use
                outcome.dead(image.message, exc)
                continue
            outcome.outputs.append(output_for(PREDICTION_TOPIC, event.instrument_id, event))
            outcome.processed += 1
            outcome.latencies_ms.append(event.latency_ms)
        return outcome

    def _prediction(
        self, image: DecodedImage, probability: np.ndarray, version: str, started: float
    ) -> PredictionEvent:
        result = segmentation(probability, image.pixels)
        mask = array_to_blob(_compact(result.labels), self.blobs, prefix="masks")
        return PredictionEvent(
            image_id=image.event.image_id,
            instrument_id=image.event.instrument_id,
            acquired_at=image.event.acquired_at,
            model_version=version,
            mask=mask,
            object_count=len(result.objects),
            foreground_fraction=result.foreground_fraction,
            mean_confidence=result.mean_confidence,
            entropy=result.entropy,
            latency_ms=(time.perf_counter() - started) * 1000,
            objects=result.objects,
        )
