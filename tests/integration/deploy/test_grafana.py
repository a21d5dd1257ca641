"""The Grafana provisioning parses, and every dashboard query runs on the project's schema (chDB).

The queries use the ClickHouse data source plugin's macros; the test expands them the way the
plugin does (``$__timeFilter(c)`` -> ``c >= toDateTime(from) AND c <= toDateTime(to)``,
``$__timeInterval(c)`` -> ``toStartOfInterval(toDateTime(c), INTERVAL n second)``,
``$__interval_s`` -> ``n``) and fills the ``instrument`` variable, then runs each query on a
store migrated by ``migrate()`` and filled through the sink's own event-to-row mapping.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from consumers.store import Store
from consumers.store.rows import rows_by_table
from deploy.dashboard import DASHBOARD_UID, DATASOURCE, PANELS
from deploy.generate import DEPLOY
from schemas.events import (
    BlobRef,
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    ModelPublished,
    ObjectMeasurement,
    PredictionEvent,
    TrainingRunEvent,
)

GRAFANA = DEPLOY / "grafana"
NOW = datetime.now(UTC).replace(microsecond=0)
FROM, TO = NOW - timedelta(hours=6), NOW + timedelta(minutes=5)
INTERVAL_S = 60
INSTRUMENTS = ("scope-1", "scope-2")


def expand(sql: str, instruments: tuple[str, ...] = INSTRUMENTS) -> str:
    """The SQL the plugin sends for the dashboard's default time range and the chosen instruments."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 >= toDateTime({start}) AND \1 <= toDateTime({end})", sql)
    bucket = rf"toStartOfInterval(toDateTime(\1), INTERVAL {INTERVAL_S} second)"
    sql = re.sub(r"\$__timeInterval\(([^)]+)\)", bucket, sql)
    sql = sql.replace("$__interval_s", str(INTERVAL_S))
    sql = sql.replace("${instrument:singlequote}", ", ".join(f"'{i}'" for i in instruments))
    assert "$" not in sql, f"unexpanded macro or variable in: {sql}"
    return sql


def _blob(name: str) -> BlobRef:
    return BlobRef(uri=f"ds-blob://test/{name}", sha256="0" * 64, size=1024)


def _events() -> list[Event]:
    """A few hours of two instruments, a drift, two published models, a run and a dead letter."""
    events: list[Event] = []
    for n in range(40):
        instrument = INSTRUMENTS[n % 2]
        acquired = NOW - timedelta(minutes=3 * n)
        image_id = f"img-{n}"
        events.append(ImageEvent(image_id=image_id, instrument_id=instrument, acquired_at=acquired,
                                 shape=(64, 64), dtype="uint16", blob=_blob(image_id)))
        events.append(FingerprintEvent(
            image_id=image_id, instrument_id=instrument, acquired_at=acquired, encoder_version="enc-1",
            latent=[0.1, 0.2, 0.3], reconstruction_error=0.01 * n,
            stats=ImageStats(p01=1, p50=100, p99=900, mean=120, std=40, focus=5 + n, noise=2,
                             saturation_fraction=0.001),
            created_at=acquired + timedelta(seconds=2)))
        if n % 5:  # some images still await their prediction
            events.append(PredictionEvent(
                image_id=image_id, instrument_id=instrument, acquired_at=acquired,
                model_version="seg-1" if n < 20 else "seg-2", mask=_blob(f"mask-{n}"), object_count=3,
                foreground_fraction=0.2, mean_confidence=0.9, entropy=0.3, latency_ms=40 + n,
                objects=[ObjectMeasurement(label=1, area=50, perimeter=30, eccentricity=0.4,
                                           mean_intensity=300, centroid_y=10, centroid_x=12)],
                created_at=acquired + timedelta(seconds=5 + n)))
    events.append(DriftEvent(detector="adwin", signal="focus", instrument_id="scope-1", model_version="seg-1",
                             statistic=4.2, threshold=3.0, window=50, first_seen_at=NOW - timedelta(minutes=30),
                             detected_at=NOW - timedelta(minutes=20), evidence=["img-2", "img-4"], severity="high"))
    for version, dice, promoted in (("seg-1", 0.81, True), ("seg-2", 0.86, True), ("seg-3", 0.79, False)):
        events.append(ModelPublished(kind="segmenter", version=version, artifact=_blob(version),
                                     holdout_metrics={"dice": dice, "iou": dice - 0.1}, promoted=promoted,
                                     created_at=NOW - timedelta(hours=3)))
    events.append(TrainingRunEvent(run_id="run-1", request_key="req-1", status="promoted",
                                   started_at=NOW - timedelta(hours=2), finished_at=NOW - timedelta(hours=1),
                                   duration_s=3600, device="cuda:0", base_model_version="seg-1",
                                   candidate_version="seg-2", metrics={"dice": 0.86, "serving_dice": 0.81}))
    events.append(DeadLetter(source_topic="images.raw", partition=2, offset=17, original=b"\x00garbage",
                             error="unknown frame version", error_type="SchemaError",
                             failed_at=NOW - timedelta(minutes=10)))
    return events


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((GRAFANA / "dashboards" / "driftscope.json").read_text())
    return loaded


@pytest.fixture
def filled_store(chdb_store: Store) -> Store:
    for table, rows in rows_by_table(_events()).items():
        chdb_store.insert(table, rows)
    return chdb_store


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [(panel["title"], target["rawSql"]) for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboard_panels_cover_what_operators_watch(dashboard: dict[str, Any]) -> None:
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("drift", "dice", "throughput", "lag", "dead letters"):
        assert topic in titles
    assert dashboard["uid"] == DASHBOARD_UID
    assert len(_targets(dashboard)) == len(PANELS)


def test_every_query_uses_the_provisioned_data_source(dashboard: dict[str, Any]) -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    source = provisioned["datasources"][0]
    assert {"type": source["type"], "uid": source["uid"]} == DATASOURCE
    assert source["jsonData"]["defaultDatabase"] == "driftscope"
    assert source["secureJsonData"]["password"].startswith("$")  # from Grafana's environment
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])
    variable = dashboard["templating"]["list"][0]
    assert variable["datasource"] == DATASOURCE


def test_dashboard_provider_points_at_the_mounted_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "driftscope.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/driftscope"


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, panel["title"]
        cells |= mine


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p.title)
def test_query_runs_on_the_schema(filled_store: Store, panel: Any) -> None:
    rows = filled_store.query(expand(panel.sql))
    assert rows, f"{panel.title}: no rows from a store holding data for it"
    if panel.kind == "timeseries":
        assert all(isinstance(row["time"], datetime) for row in rows)


def test_instrument_variable_query_runs(filled_store: Store, dashboard: dict[str, Any]) -> None:
    variable = dashboard["templating"]["list"][0]
    rows = filled_store.query(expand(variable["query"]))
    assert [row["instrument_id"] for row in rows] == list(INSTRUMENTS)


def test_queries_answer_what_the_data_says(filled_store: Store) -> None:
    by_title = {panel.title: panel for panel in PANELS}
    awaiting = filled_store.query(expand(by_title["Images awaiting a prediction"].sql))
    assert awaiting == [{"awaiting": 8}]  # every fifth of 40 images has no prediction
    dice = filled_store.query(expand(by_title["Holdout Dice by segmenter version"].sql))
    assert {(row["version"], row["outcome"], round(row["dice"], 2)) for row in dice} == {
        ("seg-1", "promoted", 0.81), ("seg-2", "promoted", 0.86), ("seg-3", "rejected", 0.79)}
    one = filled_store.query(expand(by_title["Drift events by signal"].sql, instruments=("scope-2",)))
    assert one == []  # the instrument filter applies
    runs = filled_store.query(expand(by_title["Training runs: serving vs candidate Dice on the holdout"].sql))
    assert [(row["serving_dice"], row["candidate_dice"]) for row in runs] == [(0.81, 0.86)]
    dead = filled_store.query(expand(by_title["Dead letters per minute by topic"].sql))
    assert [(row["source_topic"], row["dead_letters_per_min"]) for row in dead] == [("images.raw", 1.0)]


def test_expand_leaves_no_macro_behind() -> None:
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT 1 WHERE $__unknownMacro(x)")


def test_counting_panels_ignore_redelivered_rows(chdb_store: Store) -> None:
    tables = rows_by_table(_events())
    for _ in range(2):  # the sink wrote every batch twice (a rebalance redelivered it)
        for table, rows in tables.items():
            chdb_store.insert(table, rows)
    by_title = {panel.title: panel for panel in PANELS}
    assert chdb_store.query(expand(by_title["Images awaiting a prediction"].sql)) == [{"awaiting": 8}]
    drift = chdb_store.query(expand(by_title["Drift events by signal"].sql))
    assert [(row["signal"], row["events"]) for row in drift] == [("focus", 1)]
    dead = chdb_store.query(expand(by_title["Dead letters per minute by topic"].sql))
    assert [row["dead_letters_per_min"] for row in dead] == [1.0]
