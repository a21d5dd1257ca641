"""Prediction signals: what the served segmentation model says about each image.

These catch what intensity statistics cannot: nuclei that change shape or size (morphology,
magnification), crowding (density), and a model that grows unsure (confidence, entropy). Object
area and eccentricity are the means over the image's objects; an image without objects has no
value for them (its count and foreground fraction still speak).

>>> from datetime import UTC, datetime
>>> from schemas.events import BlobRef, ObjectMeasurement, PredictionEvent
>>> obj = ObjectMeasurement(label=1, area=300, perimeter=65, eccentricity=0.6, mean_intensity=1.0,
...                         centroid_y=5, centroid_x=5)
>>> event = PredictionEvent(image_id="i1", instrument_id="scope", acquired_at=datetime(2026, 1, 1, tzinfo=UTC),
...     model_version="v1", mask=BlobRef(uri="file:///m", sha256="0" * 64, size=1), object_count=1,
...     foreground_fraction=0.1, mean_confidence=0.9, entropy=0.2, latency_ms=3, objects=[obj])
>>> prediction_values(event)["prediction.object_area"]
300.0
"""

from __future__ import annotations

from schemas.events import PredictionEvent

__all__ = ["prediction_values"]


def prediction_values(event: PredictionEvent) -> dict[str, float]:
    """One value per prediction signal, named ``prediction.<quantity>``."""
    values = {
        "prediction.foreground_fraction": event.foreground_fraction,
        "prediction.object_count": float(event.object_count),
        "prediction.mean_confidence": event.mean_confidence,
        "prediction.entropy": event.entropy,
    }
    if event.objects:
        count = len(event.objects)
        values["prediction.object_area"] = sum(o.area for o in event.objects) / count
        values["prediction.object_eccentricity"] = sum(o.eccentricity for o in event.objects) / count
    return values
