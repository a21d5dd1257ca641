"""Each event maps to the rows that record it, with nothing lost that the tables can hold."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from consumers.store.errors import StoreQueryError
from consumers.store.rows import DLQ_PREFIX_BYTES, rows_by_table, rows_for
from schemas.events import (
    BlobRef,
    DataSelection,
    DeadLetter,
    Event,
    ImageEvent,
    LabelEvent,
    ModelPublished,
    ObjectMeasurement,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
)

T = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
REF = BlobRef(uri="ds-blob://x", sha256="0" * 64, size=10)


def _prediction(objects: int) -> PredictionEvent:
    return PredictionEvent(
        image_id="img", instrument_id="scope", acquired_at=T, model_version="seg-1", mask=REF,
        object_count=objects, foreground_fraction=0.1, mean_confidence=0.9, entropy=0.1, latency_ms=5.0,
        objects=[ObjectMeasurement(label=i + 1, area=1.0, perimeter=4.0, eccentricity=0.0, mean_intensity=1.0,
                                   centroid_y=0.0, centroid_x=float(i)) for i in range(objects)],
    )


def test_a_prediction_writes_one_object_row_per_object() -> None:
    event = _prediction(3)
    tables = rows_for(event)
    (prediction,) = tables["predictions"]
    assert prediction["mask_uri"] == REF.uri
    assert [o["label"] for o in tables["objects"]] == [1, 2, 3]
    assert {o["prediction_event_id"] for o in tables["objects"]} == {event.event_id}
    assert "objects" not in rows_for(_prediction(0))


def test_inline_and_claim_checked_images_are_told_apart() -> None:
    inline = ImageEvent(image_id="a", instrument_id="s", acquired_at=T, shape=(16, 16), dtype="uint8",
                        pixels=np.zeros((16, 16), np.uint8))
    checked = ImageEvent(image_id="b", instrument_id="s", acquired_at=T, shape=(16, 16), dtype="uint8", blob=REF)
    (a,) = rows_for(inline)["images"]
    (b,) = rows_for(checked)["images"]
    assert (a["pixels_inline"], a["blob_uri"], a["blob_size"]) == (1, None, None)
    assert (b["pixels_inline"], b["blob_uri"], b["blob_size"]) == (0, REF.uri, REF.size)
    assert a["shape"] == [16, 16]


def test_label_mask_reference() -> None:
    (row,) = rows_for(LabelEvent(image_id="a", instrument_id="s", annotator="ana", mask_blob=REF))["labels"]
    assert (row["mask_inline"], row["mask_sha256"]) == (0, REF.sha256)


def test_dicts_become_sorted_parallel_arrays() -> None:
    run = TrainingRunEvent(run_id="r", request_key="k", status="rejected", started_at=T, finished_at=T,
                           duration_s=1.0, device="cpu", base_model_version="seg-1",
                           metrics={"iou": 0.5, "dice": 0.75})
    (row,) = rows_for(run)["model_runs"]
    assert (row["metric_names"], row["metric_values"]) == (["dice", "iou"], [0.75, 0.5])
    request = RetrainRequest(idempotency_key="k", base_model_version="seg-1",
                             selection=DataSelection(instrument_id="scope"),
                             hyperparameters={"lr": 0.001, "epochs": 3, "loss": "dice"})
    (req,) = rows_for(request)["retrain_requests"]
    assert req["hyperparameter_names"] == ["epochs", "loss", "lr"]
    assert req["hyperparameter_values"] == ["3", "dice", "0.001"]
    assert req["instrument_id"] == "scope"


def test_model_promotion_is_a_flag() -> None:
    event = ModelPublished(kind="encoder", version="enc-2", artifact=REF, promoted=False)
    (row,) = rows_for(event)["models"]
    assert (row["kind"], row["promoted"], row["artifact_sha256"]) == ("encoder", 0, REF.sha256)


def test_dead_letters_keep_the_size_and_a_bounded_prefix() -> None:
    original = bytes(range(256)) * 8
    letter = DeadLetter(source_topic="predictions", partition=1, offset=9, key=None, original=original,
                        error="bad", error_type="ValueError")
    (row,) = rows_for(letter)["dlq"]
    assert row["original_size"] == len(original)
    assert base64.b64decode(row["original_prefix_b64"]) == original[:DLQ_PREFIX_BYTES]
    assert row["key_hex"] is None
    assert (row["source_partition"], row["source_offset"]) == (1, 9)


def test_rows_by_table_gathers_a_batch() -> None:
    tables = rows_by_table([_prediction(1), _prediction(2)])
    assert (len(tables["predictions"]), len(tables["objects"])) == (2, 3)


def test_an_event_without_a_table_is_refused() -> None:
    with pytest.raises(StoreQueryError, match="no table records Event"):
        rows_for(Event(event_id=uuid.uuid4()))
