"""The fingerprint step: ``images.raw`` → ``images.fingerprints``.

For each image: the ONNX encoder's latent and its autoencoder reconstruction error (how familiar
the image looks to a model trained on reference data), and cheap statistics of the raw intensities
(percentiles, focus, noise, saturation), which catch acquisition drift before normalisation hides it.

The pixels are archived in the blob store (content-addressed, so a redelivery writes nothing new)
and the fingerprint carries the reference: the fingerprints table is then the data database D
from which the retrain trigger selects training images by fingerprint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from models.imagestats import image_stats
from models.runners import EncoderRunner
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_to_blob
from schemas.events import BlobRef, FingerprintEvent, ImageStats
from streams.images import DecodedImage, decode_images, run_isolating_failures
from streams.messages import Outcome, RawMessage, output_for
from streams.serving import ModelSlot

__all__ = ["FINGERPRINT_TOPIC", "Fingerprinter"]

FINGERPRINT_TOPIC = "images.fingerprints"


class Fingerprinter:
    """Turns a batch of raw image records into fingerprint records (and dead letters)."""

    def __init__(self, slot: ModelSlot[EncoderRunner], blobs: BlobStore | None) -> None:
        self.slot = slot
        self.blobs = blobs

    def process(self, messages: Sequence[RawMessage]) -> Outcome:
        started = time.perf_counter()
        outcome = Outcome()
        images = decode_images(messages, self.blobs, outcome)
        runner, version = self.slot.current

        def encode(batch: Sequence[DecodedImage]) -> list[tuple[list[float], float]]:
            latents, errors = runner.encode([image.pixels for image in batch])
            return [(latent.tolist(), float(error)) for latent, error in zip(latents, errors, strict=True)]

        for image, (latent, error) in run_isolating_failures(images, encode, lambda i: i.message, outcome):
            try:
                stats = ImageStats(**image_stats(image.pixels))
                event = FingerprintEvent(
                    image_id=image.event.image_id,
                    instrument_id=image.event.instrument_id,
                    acquired_at=image.event.acquired_at,
                    encoder_version=version,
                    latent=latent,
                    reconstruction_error=error,
                    stats=stats,
                    image=self._archive(image),
                )
            except ValueError as exc:  # non-finite latent or statistics: a bad input, not a bad worker
                outcome.dead(image.message, exc)
                continue
            outcome.outputs.append(output_for(FINGERPRINT_TOPIC, event.instrument_id, event))
            outcome.processed += 1
            outcome.latencies_ms.append((time.perf_counter() - started) * 1000)
        return outcome

    def _archive(self, image: DecodedImage) -> BlobRef | None:
        if image.event.blob is not None:
            return image.event.blob
        if self.blobs is None:
            return None
        return array_to_blob(image.pixels, self.blobs, prefix="images")
