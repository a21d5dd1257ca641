"""The provisioned Grafana dashboard, built from its panels' SQL.

The SQL is written here, once, against the project's schema (``consumers.store.migrations``);
the dashboard JSON under ``grafana/dashboards/`` is rendered from it by ``python -m
deploy.generate``, and a test runs every query on chDB so a renamed column breaks the build, not
the dashboard. Queries use the ClickHouse data source plugin's macros (``$__timeFilter``,
``$__timeInterval``, ``$__interval_s``) and the ``instrument`` template variable.

What the panels can and cannot show: consumer-group offset lag lives in Kafka, not ClickHouse, so
"lag" here is the event-time delay from acquisition to fingerprint/prediction (what an operator
feels) plus the images still awaiting a prediction; offset lag drives autoscaling (KEDA) instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DASHBOARD_UID", "DATASOURCE", "PANELS", "Panel", "dashboard_json"]

DASHBOARD_UID = "driftscope-overview"
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": "driftscope-clickhouse"}

# one instrument, several, or all: Grafana renders the selection as 'a','b'
_INSTRUMENTS = "instrument_id IN (${instrument:singlequote})"


@dataclass(frozen=True)
class Panel:
    """One dashboard panel: what it shows, its SQL, and where it sits on the 24-column grid."""

    title: str
    kind: Literal["timeseries", "table", "stat", "barchart"]
    sql: str
    width: int = 12
    height: int = 8
    unit: str | None = None
    description: str = ""


PANELS: tuple[Panel, ...] = (
    Panel(
        "Drift events by signal",
        "timeseries",
        f"""
SELECT $__timeInterval(detected_at) AS time, signal, count() AS events
FROM drift_events FINAL
WHERE $__timeFilter(detected_at) AND {_INSTRUMENTS}
GROUP BY time, signal
ORDER BY time""",
        description="Detectors that fired, per signal (statistics, fingerprint, prediction, labels).",
    ),
    Panel(
        "Latest drift events",
        "table",
        f"""
SELECT detected_at, instrument_id, signal, detector, severity, statistic, threshold,
       model_version, length(evidence) AS evidence_images
FROM drift_events FINAL
WHERE $__timeFilter(detected_at) AND {_INSTRUMENTS}
ORDER BY detected_at DESC
LIMIT 200""",
    ),
    Panel(
        "Image statistics: focus and saturation",
        "timeseries",
        f"""
SELECT $__timeInterval(acquired_at) AS time, instrument_id,
       avg(focus) AS focus, avg(saturation_fraction) AS saturation_fraction
FROM fingerprints
WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
GROUP BY time, instrument_id
ORDER BY time""",
        description="Raw-intensity statistics: the fastest drift signals (defocus, gain, noise).",
    ),
    Panel(
        "Fingerprint reconstruction error",
        "timeseries",
        f"""
SELECT $__timeInterval(acquired_at) AS time, instrument_id,
       avg(reconstruction_error) AS reconstruction_error
FROM fingerprints
WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
GROUP BY time, instrument_id
ORDER BY time""",
    ),
    Panel(
        "Prediction confidence and entropy by model version",
        "timeseries",
        f"""
SELECT $__timeInterval(acquired_at) AS time, model_version,
       avg(mean_confidence) AS mean_confidence, avg(entropy) AS entropy,
       avg(foreground_fraction) AS foreground_fraction
FROM predictions
WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
GROUP BY time, model_version
ORDER BY time""",
    ),
    Panel(
        "Holdout Dice by segmenter version",
        "barchart",
        """
SELECT version, if(promoted = 1, 'promoted', 'rejected') AS outcome,
       arrayElement(metric_values, indexOf(metric_names, 'dice')) AS dice
FROM models FINAL
WHERE kind = 'segmenter' AND has(metric_names, 'dice')
ORDER BY created_at""",
        unit="percentunit",
        description="Dice on the shared holdout of every published candidate, promoted or not.",
    ),
    Panel(
        "Training runs: serving vs candidate Dice on the holdout",
        "table",
        """
SELECT finished_at, run_id, status, reason, base_model_version, candidate_version, device,
       round(duration_s) AS duration_s,
       arrayElement(metric_values, indexOf(metric_names, 'serving_dice')) AS serving_dice,
       arrayElement(metric_values, indexOf(metric_names, 'dice')) AS candidate_dice
FROM model_runs FINAL
WHERE $__timeFilter(finished_at)
ORDER BY finished_at DESC
LIMIT 100""",
    ),
    Panel(
        "Throughput (images/s)",
        "timeseries",
        f"""
SELECT t AS time, sum(received) AS received, sum(predicted) AS predicted
FROM (
    SELECT $__timeInterval(acquired_at) AS t, uniq(image_id) / $__interval_s AS received, 0 AS predicted
    FROM images
    WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
    GROUP BY t
    UNION ALL
    SELECT $__timeInterval(created_at) AS t, 0 AS received, uniq(image_id) / $__interval_s AS predicted
    FROM predictions
    WHERE $__timeFilter(created_at) AND {_INSTRUMENTS}
    GROUP BY t
)
GROUP BY time
ORDER BY time""",
        unit="reqps",
        description="Images acquired per second (event time) and predictions made per second (processing time).",
    ),
    Panel(
        "Lag: acquisition to prediction",
        "timeseries",
        f"""
SELECT $__timeInterval(created_at) AS time,
       quantile(0.5)(toInt64(created_at) - toInt64(acquired_at)) AS p50_s,
       quantile(0.95)(toInt64(created_at) - toInt64(acquired_at)) AS p95_s,
       max(toInt64(created_at) - toInt64(acquired_at)) AS max_s
FROM predictions
WHERE $__timeFilter(created_at) AND {_INSTRUMENTS}
GROUP BY time
ORDER BY time""",
        unit="s",
        description="Event-time delay through the pipeline; a growing p95 means the workers fall behind.",
    ),
    Panel(
        "Images awaiting a prediction",
        "stat",
        f"""
SELECT uniqExact(image_id) AS awaiting
FROM images
WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
  AND image_id NOT IN (
      SELECT image_id FROM predictions WHERE $__timeFilter(acquired_at) AND {_INSTRUMENTS}
  )""",
        width=6,
    ),
    Panel(
        "Inference latency p95 by model version",
        "stat",
        f"""
SELECT model_version, quantile(0.95)(latency_ms) AS latency_p95_ms
FROM predictions
WHERE $__timeFilter(created_at) AND {_INSTRUMENTS}
GROUP BY model_version
ORDER BY model_version""",
        width=6,
        unit="ms",
    ),
    Panel(
        "Dead letters per minute by topic",
        "timeseries",
        """
SELECT $__timeInterval(failed_at) AS time, source_topic, count() * 60 / $__interval_s AS dead_letters_per_min
FROM dlq FINAL
WHERE $__timeFilter(failed_at)
GROUP BY time, source_topic
ORDER BY time""",
        description="Bad input diverted to <topic>.dlq; anything above zero deserves a look.",
    ),
    Panel(
        "Latest dead letters",
        "table",
        """
SELECT failed_at, source_topic, source_partition, source_offset, error_type, error, original_size
FROM dlq FINAL
WHERE $__timeFilter(failed_at)
ORDER BY failed_at DESC
LIMIT 100""",
    ),
)

_INSTRUMENT_VARIABLE: dict[str, Any] = {
    "name": "instrument",
    "label": "Instrument",
    "type": "query",
    "datasource": DATASOURCE,
    "query": "SELECT DISTINCT instrument_id FROM images WHERE $__timeFilter(acquired_at) ORDER BY instrument_id",
    "definition": "SELECT DISTINCT instrument_id FROM images WHERE $__timeFilter(acquired_at) ORDER BY instrument_id",
    "refresh": 2,
    "multi": True,
    "includeAll": True,
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "sort": 1,
}


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    timeseries = panel.kind == "timeseries"
    defaults: dict[str, Any] = {"unit": panel.unit} if panel.unit else {}
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {},
        "targets": [{
            "refId": "A",
            "datasource": DATASOURCE,
            "editorType": "sql",
            "queryType": "timeseries" if timeseries else "table",
            "format": 0 if timeseries else 1,
            "rawSql": panel.sql.strip(),
        }],
    }


def dashboard_json() -> str:
    """The dashboard as Grafana's file provisioner reads it (panels laid out left to right)."""
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(PANELS, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel, panel_id, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    dashboard = {
        "uid": DASHBOARD_UID,
        "title": "driftscope: drift, models and pipeline",
        "description": "Drift signals, model quality by version, throughput, lag and dead letters.",
        "tags": ["driftscope"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [_INSTRUMENT_VARIABLE]},
        "annotations": {"list": []},
        "panels": panels,
    }
    return json.dumps(dashboard, indent=2) + "\n"
