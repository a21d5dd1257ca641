"""Map each event to the table rows that record it (one event may fill several tables).

The sink calls :func:`rows_for` per event and inserts the result per table in batches. Columns
follow :mod:`schemas.events` one to one, flattened where ClickHouse 18.16 has no type for the
shape: nested models become prefixed columns, ``dict[str, float]`` becomes parallel
``*_names``/``*_values`` arrays (no Map type), bytes become a size and a short prefix.
Inline pixels and masks are not stored here: the table records that they were inline.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from functools import singledispatch
from typing import Any

from consumers.store.base import Row
from consumers.store.errors import StoreQueryError
from schemas.events import (
    BlobRef,
    DataSelection,
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    LabelEvent,
    ModelPublished,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
)

__all__ = ["DLQ_PREFIX_BYTES", "rows_by_table", "rows_for"]

#: how much of a dead letter's original bytes the dlq table keeps (the topic keeps all of them)
DLQ_PREFIX_BYTES = 512


def _blob(prefix: str, ref: BlobRef | None) -> Row:
    return {
        f"{prefix}_uri": ref.uri if ref else None,
        f"{prefix}_sha256": ref.sha256 if ref else None,
        f"{prefix}_size": ref.size if ref else None,
    }


def _selection(selection: DataSelection) -> Row:
    return {
        "instrument_id": selection.instrument_id,
        "time_from": selection.time_from,
        "time_to": selection.time_to,
        "labelled_image_ids": list(selection.labelled_image_ids),
        "neighbour_image_ids": list(selection.neighbour_image_ids),
    }


def _pairs(prefix: str, mapping: dict[str, Any], cast: type) -> Row:
    names = sorted(mapping)
    return {f"{prefix}_names": names, f"{prefix}_values": [cast(mapping[name]) for name in names]}


@singledispatch
def rows_for(event: Event) -> dict[str, list[Row]]:
    """The rows recording ``event``, per table name."""
    raise StoreQueryError(f"no table records {type(event).__name__} events")


@rows_for.register
def _image(event: ImageEvent) -> dict[str, list[Row]]:
    return {"images": [{
        "image_id": event.image_id,
        "event_id": event.event_id,
        "schema_version": event.schema_version,
        "instrument_id": event.instrument_id,
        "acquired_at": event.acquired_at,
        "experiment": event.experiment,
        "plate": event.plate,
        "well": event.well,
        "pixel_size_um": event.pixel_size_um,
        "shape": list(event.shape),
        "dtype": event.dtype,
        "channels": list(event.channels),
        "pixels_inline": int(event.pixels is not None),
        **_blob("blob", event.blob),
        "source": event.source,
    }]}


@rows_for.register
def _fingerprint(event: FingerprintEvent) -> dict[str, list[Row]]:
    return {"fingerprints": [{
        "image_id": event.image_id,
        "event_id": event.event_id,
        "instrument_id": event.instrument_id,
        "acquired_at": event.acquired_at,
        "encoder_version": event.encoder_version,
        "latent": list(event.latent),
        "reconstruction_error": event.reconstruction_error,
        **event.stats.model_dump(),
        **_blob("image", event.image),
        "created_at": event.created_at,
    }]}


@rows_for.register
def _prediction(event: PredictionEvent) -> dict[str, list[Row]]:
    prediction = {
        "image_id": event.image_id,
        "event_id": event.event_id,
        "instrument_id": event.instrument_id,
        "acquired_at": event.acquired_at,
        "model_version": event.model_version,
        "mask_uri": event.mask.uri,
        "mask_sha256": event.mask.sha256,
        "mask_size": event.mask.size,
        "object_count": event.object_count,
        "foreground_fraction": event.foreground_fraction,
        "mean_confidence": event.mean_confidence,
        "entropy": event.entropy,
        "latency_ms": event.latency_ms,
        "created_at": event.created_at,
    }
    objects = [
        {
            "image_id": event.image_id,
            "instrument_id": event.instrument_id,
            "acquired_at": event.acquired_at,
            "model_version": event.model_version,
            "prediction_event_id": event.event_id,
            **measurement.model_dump(),
            "created_at": event.created_at,
        }
        for measurement in event.objects
    ]
    return {"predictions": [prediction], "objects": objects} if objects else {"predictions": [prediction]}


@rows_for.register
def _label(event: LabelEvent) -> dict[str, list[Row]]:
    return {"labels": [{
        "image_id": event.image_id,
        "event_id": event.event_id,
        "instrument_id": event.instrument_id,
        "annotator": event.annotator,
        "created_at": event.created_at,
        "mask_inline": int(event.mask is not None),
        **_blob("mask", event.mask_blob),
    }]}


@rows_for.register
def _drift(event: DriftEvent) -> dict[str, list[Row]]:
    return {"drift_events": [{
        "event_id": event.event_id,
        "detector": event.detector,
        "signal": event.signal,
        "instrument_id": event.instrument_id,
        "model_version": event.model_version,
        "statistic": event.statistic,
        "threshold": event.threshold,
        "window_size": event.window,
        "first_seen_at": event.first_seen_at,
        "detected_at": event.detected_at,
        "evidence": list(event.evidence),
        "severity": event.severity,
    }]}


@rows_for.register
def _retrain_request(event: RetrainRequest) -> dict[str, list[Row]]:
    selection = _selection(event.selection)
    return {"retrain_requests": [{
        "idempotency_key": event.idempotency_key,
        "event_id": event.event_id,
        "created_at": event.created_at,
        "reason": list(event.reason),
        "base_model_version": event.base_model_version,
        **selection,
        # the request's own instrument wins over the selection's when both are set
        "instrument_id": event.instrument_id or selection["instrument_id"],
        **_pairs("hyperparameter", event.hyperparameters, str),
    }]}


@rows_for.register
def _training_run(event: TrainingRunEvent) -> dict[str, list[Row]]:
    return {"model_runs": [{
        "run_id": event.run_id,
        "event_id": event.event_id,
        "request_key": event.request_key,
        "status": event.status,
        "reason": event.reason,
        "started_at": event.started_at,
        "finished_at": event.finished_at,
        "duration_s": event.duration_s,
        "device": event.device,
        "base_model_version": event.base_model_version,
        "candidate_version": event.candidate_version,
        **_selection(event.selection),
        **_pairs("metric", event.metrics, float),
    }]}


@rows_for.register
def _model_published(event: ModelPublished) -> dict[str, list[Row]]:
    return {"models": [{
        "kind": event.kind,
        "version": event.version,
        "event_id": event.event_id,
        "artifact_uri": event.artifact.uri,
        "artifact_sha256": event.artifact.sha256,
        "artifact_size": event.artifact.size,
        "parent_version": event.parent_version,
        "run_id": event.run_id,
        **_pairs("metric", event.holdout_metrics, float),
        "promoted": int(event.promoted),
        "created_at": event.created_at,
    }]}


@rows_for.register
def _dead_letter(event: DeadLetter) -> dict[str, list[Row]]:
    return {"dlq": [{
        "source_topic": event.source_topic,
        "source_partition": event.partition,
        "source_offset": event.offset,
        "event_id": event.event_id,
        "key_hex": event.key.hex() if event.key is not None else None,
        "original_size": len(event.original),
        "original_prefix_b64": base64.b64encode(event.original[:DLQ_PREFIX_BYTES]).decode("ascii"),
        "error": event.error,
        "error_type": event.error_type,
        "failed_at": event.failed_at,
    }]}


def rows_by_table(events: Iterable[Event]) -> dict[str, list[Row]]:
    """The rows of many events gathered per table: one ``Store.insert`` per table for a batch."""
    tables: dict[str, list[Row]] = {}
    for event in events:
        for table, rows in rows_for(event).items():
            tables.setdefault(table, []).extend(rows)
    return tables
