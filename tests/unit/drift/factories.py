"""Events with chosen signal values, so unit tests drive the monitor without images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from schemas.events import BlobRef, FingerprintEvent, ImageStats, ObjectMeasurement, PredictionEvent

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
MASK = BlobRef(uri="file:///mask", sha256="0" * 64, size=1)


def at(index: int) -> datetime:
    return EPOCH + timedelta(seconds=index)


def fingerprint(
    index: int,
    rng: np.random.Generator,
    *,
    instrument_id: str = "scope-1",
    encoder_version: str = "enc-1",
    p50_shift: float = 0.0,
    latent_shift: float = 0.0,
    latent_dim: int = 8,
) -> FingerprintEvent:
    """An in-distribution fingerprint (plus the given shifts, in standard deviations)."""
    p50 = 500.0 + 20.0 * (rng.standard_normal() + p50_shift)
    stats = ImageStats(
        p01=100.0 + 2.0 * rng.standard_normal(),
        p50=p50,
        p99=2000.0 + 50.0 * rng.standard_normal(),
        mean=p50 + 30.0,
        std=300.0 * float(np.exp(0.05 * rng.standard_normal())),
        focus=4000.0 * float(np.exp(0.1 * rng.standard_normal())),
        noise=8.0 * float(np.exp(0.05 * rng.standard_normal())),
        saturation_fraction=0.0,
    )
    return FingerprintEvent(
        image_id=f"{instrument_id}-{index}",
        instrument_id=instrument_id,
        acquired_at=at(index),
        encoder_version=encoder_version,
        latent=(rng.standard_normal(latent_dim) + latent_shift).tolist(),
        reconstruction_error=0.01 * float(np.exp(0.1 * rng.standard_normal())),
        stats=stats,
    )


def prediction(
    index: int,
    rng: np.random.Generator,
    *,
    instrument_id: str = "scope-1",
    model_version: str = "seg-1",
    area_shift: float = 0.0,
    objects: int = 5,
) -> PredictionEvent:
    """An in-distribution prediction (object area shifted by ``area_shift`` standard deviations)."""
    measured = [
        ObjectMeasurement(
            label=i + 1,
            area=max(300.0 + 40.0 * (rng.standard_normal() + area_shift), 1.0),
            perimeter=60.0,
            eccentricity=float(np.clip(0.6 + 0.1 * rng.standard_normal(), 0.0, 0.99)),
            mean_intensity=800.0,
            centroid_y=10.0,
            centroid_x=10.0,
        )
        for i in range(objects)
    ]
    return PredictionEvent(
        image_id=f"{instrument_id}-{index}",
        instrument_id=instrument_id,
        acquired_at=at(index),
        model_version=model_version,
        mask=MASK,
        object_count=objects,
        foreground_fraction=float(np.clip(0.15 + 0.02 * rng.standard_normal(), 0.0, 1.0)),
        mean_confidence=float(np.clip(0.9 + 0.02 * rng.standard_normal(), 0.0, 1.0)),
        entropy=float(abs(0.2 + 0.02 * rng.standard_normal())),
        latency_ms=5.0,
        objects=measured,
    )
