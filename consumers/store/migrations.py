"""Versioned DDL for the data database D and the model database M.

Every statement sticks to the subset that both ClickHouse 18.16 (Debian's server) and chDB 26.x
accept: ``ENGINE = ReplacingMergeTree(version) PARTITION BY ... ORDER BY ...`` (18.16 knows this
syntax; it does not know TTL, CODEC, Map, DateTime64 or window functions), ``DateTime('UTC')``,
Float, UInt/Int, String, Array, Nullable, Enum8 and UUID. Steps that need a newer server carry
``min_server_version`` and are skipped (not recorded) on older ones, so they apply after an upgrade.

Idempotency: every table is a ReplacingMergeTree whose sorting key is the natural id of what it
holds, so a replayed event replaces its own row at merge time; readers deduplicate with ``FINAL``
until then (see :mod:`consumers.store.queries`). The version column is the event's own time, so
a later correction (a new label by the same annotator, a model re-published as promoted) wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumers.store.errors import StoreReadOnly

if TYPE_CHECKING:
    from consumers.store.base import Store

__all__ = ["MIGRATIONS", "TABLES", "Migration", "applied_versions", "apply_migrations"]


@dataclass(frozen=True)
class Migration:
    """One schema step: its statements run in order, then its version is recorded."""

    version: int
    name: str
    statements: tuple[str, ...]
    min_server_version: tuple[int, ...] = (0,)


_SCHEMA_MIGRATIONS = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version
"""

_IMAGES = """
CREATE TABLE IF NOT EXISTS images (
    image_id String,
    event_id UUID,
    schema_version UInt8,
    instrument_id String,
    acquired_at DateTime('UTC'),
    experiment Nullable(String),
    plate Nullable(String),
    well Nullable(String),
    pixel_size_um Nullable(Float64),
    shape Array(UInt32),
    dtype String,
    channels Array(String),
    pixels_inline UInt8,
    blob_uri Nullable(String),
    blob_sha256 Nullable(String),
    blob_size Nullable(UInt64),
    source Nullable(String)
) ENGINE = ReplacingMergeTree(acquired_at)
PARTITION BY toYYYYMM(acquired_at)
ORDER BY (instrument_id, image_id)
"""

_FINGERPRINTS = """
CREATE TABLE IF NOT EXISTS fingerprints (
    image_id String,
    event_id UUID,
    instrument_id String,
    acquired_at DateTime('UTC'),
    encoder_version String,
    latent Array(Float32),
    reconstruction_error Float64,
    p01 Float64,
    p50 Float64,
    p99 Float64,
    mean Float64,
    std Float64,
    focus Float64,
    noise Float64,
    saturation_fraction Float64,
    image_uri Nullable(String),
    image_sha256 Nullable(String),
    image_size Nullable(UInt64),
    created_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(acquired_at)
ORDER BY (instrument_id, image_id, encoder_version)
"""

_PREDICTIONS = """
CREATE TABLE IF NOT EXISTS predictions (
    image_id String,
    event_id UUID,
    instrument_id String,
    acquired_at DateTime('UTC'),
    model_version String,
    mask_uri String,
    mask_sha256 String,
    mask_size UInt64,
    object_count UInt32,
    foreground_fraction Float64,
    mean_confidence Float64,
    entropy Float64,
    latency_ms Float64,
    created_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(acquired_at)
ORDER BY (instrument_id, image_id, model_version)
"""

_OBJECTS = """
CREATE TABLE IF NOT EXISTS objects (
    image_id String,
    instrument_id String,
    acquired_at DateTime('UTC'),
    model_version String,
    label UInt32,
    prediction_event_id UUID,
    area Float64,
    perimeter Float64,
    eccentricity Float64,
    mean_intensity Float64,
    centroid_y Float64,
    centroid_x Float64,
    created_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(acquired_at)
ORDER BY (instrument_id, image_id, model_version, label)
"""

_DRIFT_EVENTS = """
CREATE TABLE IF NOT EXISTS drift_events (
    event_id UUID,
    detector String,
    signal String,
    instrument_id String,
    model_version String,
    statistic Float64,
    threshold Float64,
    window_size UInt32,
    first_seen_at DateTime('UTC'),
    detected_at DateTime('UTC'),
    evidence Array(String),
    severity Enum8('low' = 1, 'medium' = 2, 'high' = 3)
) ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(detected_at)
ORDER BY (instrument_id, event_id)
"""

_LABELS = """
CREATE TABLE IF NOT EXISTS labels (
    image_id String,
    event_id UUID,
    instrument_id String,
    annotator String,
    created_at DateTime('UTC'),
    mask_inline UInt8,
    mask_uri Nullable(String),
    mask_sha256 Nullable(String),
    mask_size Nullable(UInt64)
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (instrument_id, image_id, annotator)
"""

_RETRAIN_REQUESTS = """
CREATE TABLE IF NOT EXISTS retrain_requests (
    idempotency_key String,
    event_id UUID,
    created_at DateTime('UTC'),
    reason Array(String),
    instrument_id Nullable(String),
    base_model_version String,
    time_from Nullable(DateTime('UTC')),
    time_to Nullable(DateTime('UTC')),
    labelled_image_ids Array(String),
    neighbour_image_ids Array(String),
    hyperparameter_names Array(String),
    hyperparameter_values Array(String)
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY idempotency_key
"""

_MODEL_RUNS = """
CREATE TABLE IF NOT EXISTS model_runs (
    run_id String,
    event_id UUID,
    request_key String,
    status Enum8('promoted' = 1, 'rejected' = 2, 'failed' = 3),
    reason String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    duration_s Float64,
    device String,
    base_model_version String,
    candidate_version Nullable(String),
    instrument_id Nullable(String),
    time_from Nullable(DateTime('UTC')),
    time_to Nullable(DateTime('UTC')),
    labelled_image_ids Array(String),
    neighbour_image_ids Array(String),
    metric_names Array(String),
    metric_values Array(Float64)
) ENGINE = ReplacingMergeTree(finished_at)
ORDER BY run_id
"""

_MODELS = """
CREATE TABLE IF NOT EXISTS models (
    kind Enum8('segmenter' = 1, 'encoder' = 2),
    version String,
    event_id UUID,
    artifact_uri String,
    artifact_sha256 String,
    artifact_size UInt64,
    parent_version Nullable(String),
    run_id Nullable(String),
    metric_names Array(String),
    metric_values Array(Float64),
    promoted UInt8,
    created_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(created_at)
ORDER BY (kind, version)
"""

_DLQ = """
CREATE TABLE IF NOT EXISTS dlq (
    source_topic String,
    source_partition UInt32,
    source_offset UInt64,
    event_id UUID,
    key_hex Nullable(String),
    original_size UInt64,
    original_prefix_b64 String,
    error String,
    error_type String,
    failed_at DateTime('UTC')
) ENGINE = ReplacingMergeTree(failed_at)
PARTITION BY toYYYYMM(failed_at)
ORDER BY (source_topic, source_partition, source_offset)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "data database D and model database M",
        (_IMAGES, _FINGERPRINTS, _PREDICTIONS, _OBJECTS, _DRIFT_EVENTS, _LABELS,
         _RETRAIN_REQUESTS, _MODEL_RUNS, _MODELS, _DLQ),
    ),
    # Table TTL arrived in ClickHouse 19.6; dead letters are operational data, not science.
    Migration(
        2,
        "dead letters expire after 90 days",
        ("ALTER TABLE dlq MODIFY TTL failed_at + INTERVAL 90 DAY",),
        min_server_version=(19, 6),
    ),
)

#: every table the migrations create, in creation order
TABLES: tuple[str, ...] = (
    "images", "fingerprints", "predictions", "objects", "drift_events", "labels",
    "retrain_requests", "model_runs", "models", "dlq",
)


def applied_versions(store: Store) -> list[int]:
    """The migration versions recorded in ``schema_migrations``, ascending."""
    rows = store.query("SELECT version FROM schema_migrations FINAL ORDER BY version")
    return [int(row["version"]) for row in rows]


def apply_migrations(store: Store) -> list[int]:
    """Apply the pending migrations this server supports; return the versions applied now.

    Re-running is harmless: applied versions are skipped and every CREATE says IF NOT EXISTS,
    so a run interrupted between a statement and its record completes on the next call.
    """
    if store.readonly:
        raise StoreReadOnly("migrate() needs a writable store; open it with readonly=False")
    store.execute(_SCHEMA_MIGRATIONS)
    done = set(applied_versions(store))
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done or store.server_version < migration.min_server_version:
            continue
        for statement in migration.statements:
            store.execute(statement)
        store.insert("schema_migrations", [{
            "version": migration.version,
            "name": migration.name,
            "applied_at": datetime.now(UTC),
        }])
        applied.append(migration.version)
    return applied
