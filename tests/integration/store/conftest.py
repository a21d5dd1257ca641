"""One event of every type, with values a ClickHouse column stores exactly.

Times are whole seconds (DateTime has no fraction) and latents are binary fractions (exact in
Float32), so a round trip can be compared with ``==``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from schemas.events import (
    BlobRef,
    DataSelection,
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    LabelEvent,
    ModelPublished,
    ObjectMeasurement,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
)

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
SHA = "ab" * 32


def _ref(name: str, size: int = 1234) -> BlobRef:
    return BlobRef(uri=f"ds-blob://{name}", sha256=SHA, size=size)


def build_sample_events() -> list[Event]:
    """Two images on two instruments, their fingerprints and predictions, a label, and the rest."""
    stats = ImageStats(p01=1.0, p50=20.5, p99=250.0, mean=30.25, std=12.5, focus=80.0, noise=2.5,
                       saturation_fraction=0.01)
    selection = DataSelection(time_from=T0, time_to=T0 + timedelta(hours=1), instrument_id="scope-a",
                              labelled_image_ids=["img-1"], neighbour_image_ids=["img-2", "img-3"])
    return [
        ImageEvent(image_id="img-1", instrument_id="scope-a", acquired_at=T0, experiment="exp's \\ 1",
                   plate="P1", well=None, pixel_size_um=0.65, shape=(16, 16), dtype="uint8",
                   channels=["dapi"], pixels=np.zeros((16, 16), dtype=np.uint8), source="file:///x.tif"),
        ImageEvent(image_id="img-2", instrument_id="scope-b", acquired_at=T0 + timedelta(seconds=5),
                   shape=(16, 16, 2), dtype="uint16", channels=["dapi", "gfp"], blob=_ref("images/img-2")),
        FingerprintEvent(image_id="img-1", instrument_id="scope-a", acquired_at=T0, encoder_version="enc-1",
                         latent=[0.5, -1.25, 2.0], reconstruction_error=0.125, stats=stats,
                         created_at=T0 + timedelta(seconds=1)),
        FingerprintEvent(image_id="img-2", instrument_id="scope-b", acquired_at=T0 + timedelta(seconds=5),
                         encoder_version="enc-1", latent=[4.0, 0.0, -0.5], reconstruction_error=0.5,
                         stats=stats, created_at=T0 + timedelta(seconds=6)),
        PredictionEvent(image_id="img-1", instrument_id="scope-a", acquired_at=T0, model_version="seg-1",
                        mask=_ref("masks/img-1"), object_count=2, foreground_fraction=0.25,
                        mean_confidence=0.9, entropy=0.2, latency_ms=12.5, created_at=T0 + timedelta(seconds=2),
                        objects=[
                            ObjectMeasurement(label=1, area=10.0, perimeter=12.0, eccentricity=0.5,
                                              mean_intensity=100.0, centroid_y=1.5, centroid_x=2.5),
                            ObjectMeasurement(label=2, area=6.0, perimeter=9.0, eccentricity=0.0,
                                              mean_intensity=80.0, centroid_y=3.0, centroid_x=0.5),
                        ]),
        PredictionEvent(image_id="img-2", instrument_id="scope-b", acquired_at=T0 + timedelta(seconds=5),
                        model_version="seg-1", mask=_ref("masks/img-2"), object_count=0,
                        foreground_fraction=0.0, mean_confidence=0.5, entropy=0.7, latency_ms=11.0,
                        created_at=T0 + timedelta(seconds=7)),
        LabelEvent(image_id="img-1", instrument_id="scope-a", annotator="ana", created_at=T0 + timedelta(hours=2),
                   mask_blob=_ref("labels/img-1")),
        DriftEvent(detector="adwin", signal="p99", instrument_id="scope-b", model_version="seg-1",
                   statistic=3.5, threshold=2.0, window=50, first_seen_at=T0,
                   detected_at=T0 + timedelta(minutes=5), evidence=["img-2"], severity="high"),
        DriftEvent(detector="page_hinkley", signal="focus", instrument_id="scope-a", model_version="seg-1",
                   statistic=1.5, threshold=1.0, window=20, first_seen_at=T0,
                   detected_at=T0 + timedelta(minutes=1), evidence=[], severity="low"),
        RetrainRequest(idempotency_key="scope-a:seg-1:1", created_at=T0 + timedelta(minutes=6),
                       reason=[str(uuid.UUID(int=1))], instrument_id="scope-a", base_model_version="seg-1",
                       selection=selection, hyperparameters={"epochs": 3, "lr": 0.001, "loss": "dice"}),
        TrainingRunEvent(run_id="run-1", request_key="scope-a:seg-1:1", status="failed",
                         reason="CUDA out of memory", started_at=T0 + timedelta(minutes=7),
                         finished_at=T0 + timedelta(minutes=8), duration_s=60.0, device="cuda:0",
                         base_model_version="seg-1", selection=selection),
        TrainingRunEvent(run_id="run-2", request_key="scope-a:seg-1:1", status="promoted",
                         started_at=T0 + timedelta(minutes=9), finished_at=T0 + timedelta(minutes=19),
                         duration_s=600.0, device="cpu", base_model_version="seg-1", candidate_version="seg-2",
                         selection=selection, metrics={"dice": 0.875, "iou": 0.75}),
        ModelPublished(kind="segmenter", version="seg-1", artifact=_ref("models/seg-1", 9999), promoted=True,
                       created_at=T0 - timedelta(days=1)),
        ModelPublished(kind="segmenter", version="seg-2", artifact=_ref("models/seg-2", 8888),
                       parent_version="seg-1", run_id="run-2", holdout_metrics={"dice": 0.875},
                       promoted=True, created_at=T0 + timedelta(minutes=20)),
        DeadLetter(source_topic="images.raw", partition=3, offset=42, key=b"scope-a", original=b"\x00garbage" * 100,
                   error="schema_version 9 is not supported", error_type="SchemaError",
                   failed_at=T0 + timedelta(minutes=3)),
    ]


@pytest.fixture
def sample_events() -> list[Event]:
    return build_sample_events()
