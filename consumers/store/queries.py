"""The read side shared by the agents and the CLI: deduplicated, portable, small.

Every helper reads with ``FINAL`` so a replayed event counts once even before ClickHouse merges
the duplicates away, and sticks to SQL that 18.16 and chDB both run (no window functions, no
``L2Distance``: distances are spelled out with ``arrayMap``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from consumers.store.base import Row, Store
from consumers.store.migrations import TABLES
from consumers.store.sql import identifier

__all__ = [
    "count_distinct",
    "count_rows",
    "dead_letters",
    "labelled_image_ids",
    "latest_drift_events",
    "mean_latents",
    "model_runs",
    "nearest_images",
    "serving_model",
    "table_counts",
]


def count_rows(store: Store, table: str) -> int:
    """Rows of ``table`` after deduplication."""
    return int(store.query(f"SELECT count() AS n FROM {identifier(table)} FINAL")[0]["n"])


def count_distinct(store: Store, table: str, column: str) -> int:
    """Distinct values of ``column`` in ``table`` (e.g. images seen per ``instrument_id``)."""
    sql = f"SELECT uniqExact({identifier(column)}) AS n FROM {identifier(table)} FINAL"
    return int(store.query(sql)[0]["n"])


def table_counts(store: Store) -> dict[str, int]:
    """Deduplicated row count of every table the migrations create: the CLI's status line."""
    return {table: count_rows(store, table) for table in TABLES}


def latest_drift_events(store: Store, limit: int = 20, *, instrument_id: str | None = None) -> list[Row]:
    """The most recent drift events, newest first, optionally for one instrument."""
    where = "WHERE instrument_id = %(instrument_id)s" if instrument_id is not None else ""
    return store.query(
        f"SELECT * FROM drift_events FINAL {where} ORDER BY detected_at DESC, event_id LIMIT %(limit)s",
        {"instrument_id": instrument_id, "limit": int(limit)},
    )


def _with_metrics(rows: list[Row]) -> list[Row]:
    """Fold the ``metric_names``/``metric_values`` arrays back into a ``metrics`` dict."""
    for row in rows:
        row["metrics"] = dict(zip(row.pop("metric_names"), row.pop("metric_values"), strict=True))
    return rows


def model_runs(store: Store, limit: int = 20, *, status: str | None = None) -> list[Row]:
    """Recent training runs (failed ones included), newest first, with ``metrics`` as a dict."""
    where = "WHERE status = %(status)s" if status is not None else ""
    return _with_metrics(store.query(
        f"SELECT * FROM model_runs FINAL {where} ORDER BY finished_at DESC, run_id LIMIT %(limit)s",
        {"status": status, "limit": int(limit)},
    ))


def serving_model(store: Store, kind: str = "segmenter") -> Row | None:
    """The newest promoted model of ``kind`` (what the agents should serve), or None."""
    rows = _with_metrics(store.query(
        "SELECT * FROM models FINAL WHERE kind = %(kind)s AND promoted = 1 "
        "ORDER BY created_at DESC, version DESC LIMIT 1",
        {"kind": kind},
    ))
    return rows[0] if rows else None


def labelled_image_ids(
    store: Store,
    *,
    instrument_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[str]:
    """Images with at least one label, optionally for one instrument and an acquisition window."""
    conditions = ["image_id IN (SELECT image_id FROM labels FINAL)"]
    if instrument_id is not None:
        conditions.append("instrument_id = %(instrument_id)s")
    if since is not None:
        conditions.append("acquired_at >= %(since)s")
    if until is not None:
        conditions.append("acquired_at < %(until)s")
    rows = store.query(
        f"SELECT DISTINCT image_id FROM images FINAL WHERE {' AND '.join(conditions)} ORDER BY image_id",
        {"instrument_id": instrument_id, "since": since, "until": until},
    )
    return [row["image_id"] for row in rows]


def nearest_images(
    store: Store,
    latent: Sequence[float],
    *,
    k: int,
    encoder_version: str,
    instrument_id: str | None = None,
    labelled_only: bool = False,
) -> list[Row]:
    """The ``k`` images whose fingerprint is nearest ``latent`` (squared L2), nearest first.

    Rows carry ``image_id``, ``instrument_id`` and ``distance``. Only fingerprints of the same
    encoder version and dimension are comparable, so others are ignored.
    """
    conditions = ["encoder_version = %(encoder_version)s", "length(latent) = %(dim)s"]
    if instrument_id is not None:
        conditions.append("instrument_id = %(instrument_id)s")
    if labelled_only:
        conditions.append("image_id IN (SELECT image_id FROM labels FINAL)")
    params: dict[str, Any] = {
        "latent": [float(x) for x in latent],
        "dim": len(latent),
        "encoder_version": encoder_version,
        "instrument_id": instrument_id,
        "k": int(k),
    }
    return store.query(
        "SELECT image_id, instrument_id, "
        "arraySum(arrayMap((a, b) -> (a - b) * (a - b), latent, %(latent)s)) AS distance "
        f"FROM fingerprints FINAL WHERE {' AND '.join(conditions)} "
        "ORDER BY distance, image_id LIMIT %(k)s",
        params,
    )


def mean_latents(store: Store, *, encoder_version: str) -> dict[str, list[float]]:
    """The mean fingerprint per instrument: which known dataset a stream is closest to."""
    rows = store.query(
        "SELECT instrument_id, avgForEach(latent) AS mean_latent FROM fingerprints FINAL "
        "WHERE encoder_version = %(encoder_version)s GROUP BY instrument_id ORDER BY instrument_id",
        {"encoder_version": encoder_version},
    )
    return {row["instrument_id"]: list(row["mean_latent"]) for row in rows}


def dead_letters(store: Store, limit: int = 50, *, source_topic: str | None = None) -> list[Row]:
    """The most recent dead letters, newest first, optionally for one source topic."""
    where = "WHERE source_topic = %(source_topic)s" if source_topic is not None else ""
    return store.query(
        f"SELECT * FROM dlq FINAL {where} ORDER BY failed_at DESC, source_topic, source_partition, "
        "source_offset LIMIT %(limit)s",
        {"source_topic": source_topic, "limit": int(limit)},
    )
