"""The contract every store backend keeps: chDB in-process and a real ClickHouse server (18.16 here).

Each test runs once per backend through the parametrised ``store``/``store_url`` fixtures, so a
difference in DDL, types, parameter binding, deduplication or read-only handling fails here.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.store import (
    MIGRATIONS,
    TABLES,
    Store,
    StoreQueryError,
    StoreReadOnly,
    open_store,
)
from consumers.store.migrations import applied_versions
from consumers.store.queries import (
    count_distinct,
    count_rows,
    dead_letters,
    labelled_image_ids,
    latest_drift_events,
    mean_latents,
    model_runs,
    nearest_images,
    serving_model,
    table_counts,
)
from consumers.store.rows import rows_by_table
from schemas.events import Event


def _insert(store: Store, events: list[Event]) -> None:
    for table, rows in rows_by_table(events).items():
        assert store.insert(table, rows) == len(rows)


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=repr)


def _expected_versions(store: Store) -> list[int]:
    return [m.version for m in MIGRATIONS if store.server_version >= m.min_server_version]


def test_fresh_migrate_applies_every_supported_version_once(store_url: str) -> None:
    with open_store(store_url) as store:
        expected = _expected_versions(store)
        assert store.migrate() == expected
        assert store.migrate() == []
        assert applied_versions(store) == expected
        tables = {row["name"] for row in store.query("SHOW TABLES")}
        assert tables == {*TABLES, "schema_migrations"}


def test_ttl_migration_is_gated_on_server_version(store: Store) -> None:
    modern = store.server_version >= (19, 6)
    assert (2 in applied_versions(store)) is modern
    ddl = store.query(
        "SELECT create_table_query AS ddl FROM system.tables "
        "WHERE database = currentDatabase() AND name = 'dlq'"
    )[0]["ddl"]
    assert ("TTL" in ddl) is modern


def test_rows_fill_every_column_of_their_table(store: Store, sample_events: list[Event]) -> None:
    produced = rows_by_table(sample_events)
    assert set(produced) == set(TABLES), "the sample events should cover every table"
    for table, rows in produced.items():
        columns = store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = %(table)s",
            {"table": table},
        )
        assert {c["name"] for c in columns} == set(rows[0]), table


def test_every_table_round_trips(store: Store, sample_events: list[Event]) -> None:
    _insert(store, sample_events)
    for table, rows in rows_by_table(sample_events).items():
        got = store.query(f"SELECT {', '.join(rows[0])} FROM {table} FINAL")
        assert _sorted(got) == _sorted(rows), table


def _snapshot(store: Store) -> dict[str, Any]:
    """Everything a reader can see: full tables and every helper's answer."""
    snap: dict[str, Any] = {table: _sorted(store.query(f"SELECT * FROM {table} FINAL")) for table in TABLES}
    snap["counts"] = table_counts(store)
    snap["instruments"] = count_distinct(store, "images", "instrument_id")
    snap["drift"] = latest_drift_events(store, 10)
    snap["runs"] = model_runs(store)
    snap["serving"] = serving_model(store)
    snap["labelled"] = labelled_image_ids(store)
    snap["nearest"] = nearest_images(store, [0.5, -1.25, 2.0], k=5, encoder_version="enc-1")
    snap["means"] = mean_latents(store, encoder_version="enc-1")
    snap["dlq"] = dead_letters(store)
    return snap


def test_replaying_events_changes_nothing_a_reader_sees(store: Store, sample_events: list[Event]) -> None:
    _insert(store, sample_events)
    once = _snapshot(store)
    _insert(store, sample_events)  # a replay after a crash ...
    _insert(store, sample_events[::-1])  # ... and another one, in a different order
    assert _snapshot(store) == once


def test_read_helpers_answer_from_the_data(store: Store, sample_events: list[Event]) -> None:
    _insert(store, sample_events)
    assert table_counts(store) == {
        "images": 2, "fingerprints": 2, "predictions": 2, "objects": 2, "drift_events": 2, "labels": 1,
        "retrain_requests": 1, "model_runs": 2, "models": 2, "dlq": 1,
    }
    assert count_rows(store, "objects") == 2
    assert count_distinct(store, "images", "instrument_id") == 2
    assert [e["detector"] for e in latest_drift_events(store)] == ["adwin", "page_hinkley"]
    assert [e["signal"] for e in latest_drift_events(store, instrument_id="scope-a")] == ["focus"]
    runs = model_runs(store)
    assert [r["run_id"] for r in runs] == ["run-2", "run-1"]
    assert runs[0]["metrics"] == {"dice": 0.875, "iou": 0.75}
    failed = model_runs(store, status="failed")
    assert [(r["run_id"], r["reason"]) for r in failed] == [("run-1", "CUDA out of memory")]
    serving = serving_model(store)
    assert serving is not None
    assert (serving["version"], serving["metrics"]) == ("seg-2", {"dice": 0.875})
    assert serving_model(store, "encoder") is None
    assert labelled_image_ids(store) == ["img-1"]
    assert labelled_image_ids(store, instrument_id="scope-b") == []
    nearest = nearest_images(store, [0.5, -1.25, 2.0], k=2, encoder_version="enc-1")
    assert [(n["image_id"], n["distance"]) for n in nearest] == [("img-1", 0.0), ("img-2", 20.0625)]
    labelled = nearest_images(store, [4.0, 0.0, -0.5], k=2, encoder_version="enc-1", labelled_only=True)
    assert [n["image_id"] for n in labelled] == ["img-1"]
    assert nearest_images(store, [1.0, 2.0], k=2, encoder_version="enc-1") == []
    assert mean_latents(store, encoder_version="enc-1") == {
        "scope-a": [0.5, -1.25, 2.0], "scope-b": [4.0, 0.0, -0.5],
    }
    (letter,) = dead_letters(store)
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == ("images.raw", 3, 42)
    assert (letter["original_size"], letter["key_hex"]) == (800, b"scope-a".hex())


_SCRATCH = """
CREATE TABLE scratch (
    k UInt32, u UUID, t DateTime('UTC'), tn Nullable(DateTime('UTC')), f32 Float32, f64 Float64,
    fn Nullable(Float64), i64 Int64, u64 UInt64, s String, sn Nullable(String),
    e Enum8('a' = 1, 'b' = 2), af Array(Float32), a_s Array(String), an Array(Nullable(String))
) ENGINE = MergeTree ORDER BY k
"""
_NASTY = "it's \\ \"quoted\"\n\ttab ü 🦠 '); DROP TABLE scratch; --"


def test_column_types_round_trip(store: Store) -> None:
    store.execute(_SCRATCH)
    t = datetime(2100, 1, 1, 23, 59, 59, tzinfo=UTC)
    rows = [
        {"k": 1, "u": uuid.UUID(int=2**128 - 1), "t": t, "tn": None, "f32": 0.1, "f64": -1e308,
         "fn": None, "i64": -(2**63), "u64": 2**64 - 1, "s": _NASTY, "sn": None, "e": "a",
         "af": [], "a_s": [], "an": []},
        {"k": 2, "u": uuid.UUID(int=0), "t": datetime(1970, 1, 2, tzinfo=UTC), "tn": t, "f32": float("inf"),
         "f64": 5e-324, "fn": float("nan"), "i64": 2**63 - 1, "u64": 0, "s": "", "sn": _NASTY, "e": "b",
         "af": [0.5, -2.25], "a_s": ["", _NASTY], "an": [None, "x"]},
    ]
    assert store.insert("scratch", rows) == 2
    first, second = store.query("SELECT * FROM scratch ORDER BY k")
    assert first == {**rows[0], "f32": pytest.approx(0.1, rel=1e-7)}
    assert math.isnan(second.pop("fn"))
    assert second == {k: v for k, v in rows[1].items() if k != "fn"}


def test_query_parameters_are_bound_as_values(store: Store) -> None:
    t = datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC)
    u = uuid.uuid4()
    params = {"s": _NASTY, "t": t, "u": u, "xs": ["a", "b'"], "n": None, "f": 0.25, "i": -7}
    row = store.query(
        "SELECT %(s)s AS s, %(t)s AS t, %(u)s AS u, %(xs)s AS xs, %(n)s AS n, %(f)s AS f, %(i)s AS i",
        params,
    )[0]
    assert row == params


def test_readonly_store_is_refused_writes_by_the_server(store_url: str, sample_events: list[Event]) -> None:
    images = rows_by_table(sample_events)["images"]
    with open_store(store_url) as writer:
        writer.migrate()
        writer.insert("images", images)
    with open_store(store_url, readonly=True) as reader:
        assert count_rows(reader, "images") == 2
        with pytest.raises(StoreReadOnly):
            reader.insert("images", images)
        with pytest.raises(StoreReadOnly):
            reader.execute("INSERT INTO images SELECT * FROM images")
        with pytest.raises(StoreReadOnly):
            reader.execute("CREATE TABLE sneaky (a UInt8) ENGINE = MergeTree ORDER BY a")
        with pytest.raises(StoreReadOnly):
            reader.query("SELECT 1 AS one SETTINGS readonly = 0")
        with pytest.raises(StoreReadOnly):
            reader.migrate()
        assert count_rows(reader, "images") == 2


def test_bad_statements_and_rows_raise_query_errors(store: Store) -> None:
    with pytest.raises(StoreQueryError) as syntax:
        store.query("SELEC 1")
    assert syntax.value.code == 62
    with pytest.raises(StoreQueryError) as missing:
        store.query("SELECT * FROM no_such_table")
    assert missing.value.code == 60
    with pytest.raises(StoreQueryError, match=r"Store\.insert"):
        store.execute("INSERT INTO labels (image_id) VALUES ('x')")
    with pytest.raises(StoreQueryError, match=r"Store\.insert"):
        store.execute('insert into labels FORMAT JSONEachRow {"image_id": "x"}')
    with pytest.raises(StoreQueryError, match="not given"):
        store.query("SELECT %(a)s AS a", {})
    with pytest.raises(StoreQueryError, match="columns"):
        store.insert("labels", [{"image_id": "a"}, {"annotator": "b"}])
    with pytest.raises(StoreQueryError):
        store.insert("objects", [{"label": "not a number"}])
    assert count_rows(store, "labels") == 0
    assert count_rows(store, "objects") == 0


def test_server_version_is_numeric(store: Store) -> None:
    version = store.server_version
    assert len(version) >= 3
    assert all(isinstance(part, int) for part in version)
    assert version >= (18, 16)
