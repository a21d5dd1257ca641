"""``driftscope report --out report.html``: one self-contained HTML file an operator can mail around.

The file embeds plotly.js and its data, so it opens offline and years later. It shows, for a time
window: images per hour per instrument; the raw image statistics the drift detectors watch, with
the drift events on the same time axis; segmentation quality per model version; training runs; and
dead letters. Data comes through the same read-only store access as ``driftscope query``.

Exit codes: 0 written; 1 the store refused a query or the file could not be written; 3 no store.
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from driftscope.commands.clients import ExitCode, StoreReader, Unavailable, open_reader, resolve_settings
from driftscope.commands.query import jsonable
from driftscope.commands.replay import parse_time

if TYPE_CHECKING:
    from consumers.store import Row

__all__ = ["build_report", "report"]

stderr = Console(stderr=True)

_MAX_POINTS = 20_000
_SEVERITY_COLOURS = {"low": "#f2c14e", "medium": "#f78154", "high": "#b3001b"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f4f4f4; } .empty { color: #888; font-style: italic; }
"""


def _where(column: str, instrument: str | None) -> str:
    condition = f"{column} >= %(since)s"
    return condition + (" AND instrument_id = %(instrument)s" if instrument is not None else "")


def _table(rows: list[Row], columns: list[str] | None = None) -> str:
    if not rows:
        return '<p class="empty">none in this window</p>'
    names = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(jsonable(row.get(n, ''))))}</td>" for n in names) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class _Figures:
    """Plotly figures as HTML fragments; plotly.js is embedded once, in the first."""

    def __init__(self) -> None:
        self._embedded = False

    def render(self, figure: Any) -> str:
        figure.update_layout(template="plotly_white", height=360, margin={"l": 50, "r": 20, "t": 40, "b": 40})
        fragment: str = figure.to_html(full_html=False, include_plotlyjs=not self._embedded)
        self._embedded = True
        return fragment


def _images_per_hour(reader: StoreReader, params: dict[str, Any], instrument: str | None, figures: _Figures) -> str:
    import plotly.graph_objects as go

    rows = reader.query(
        "SELECT instrument_id, toStartOfHour(acquired_at) AS hour, count() AS images FROM images FINAL "
        f"WHERE {_where('acquired_at', instrument)} GROUP BY instrument_id, hour ORDER BY instrument_id, hour",
        params,
    )
    if not rows:
        return '<p class="empty">no images in this window</p>'
    figure = go.Figure()
    for name, group in _by(rows, "instrument_id").items():
        figure.add_bar(x=[r["hour"] for r in group], y=[r["images"] for r in group], name=name)
    figure.update_layout(barmode="stack", title="images per hour", yaxis_title="images")
    return figures.render(figure)


def _statistics(
    reader: StoreReader, params: dict[str, Any], instrument: str | None, drift: list[Row], figures: _Figures
) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = reader.query(
        "SELECT instrument_id, acquired_at, p50, focus, noise FROM fingerprints FINAL "
        f"WHERE {_where('acquired_at', instrument)} ORDER BY acquired_at LIMIT {_MAX_POINTS}",
        params,
    )
    if not rows:
        return '<p class="empty">no fingerprints in this window</p>'
    signals = ("p50", "focus", "noise")
    figure = make_subplots(rows=len(signals), cols=1, shared_xaxes=True, subplot_titles=signals)
    for index, signal in enumerate(signals, 1):
        for name, group in _by(rows, "instrument_id").items():
            figure.add_trace(go.Scattergl(
                x=[r["acquired_at"] for r in group], y=[r[signal] for r in group], mode="markers",
                marker={"size": 3}, name=name, legendgroup=name, showlegend=index == 1,
            ), row=index, col=1)  # fmt: skip
    for event in drift:
        figure.add_vline(x=event["detected_at"], line_width=1, line_dash="dot",
                         line_color=_SEVERITY_COLOURS.get(str(event["severity"]), "#999"))
    figure.update_layout(height=720, title="raw image statistics (dotted lines: drift events)")
    return figures.render(figure)


def _segmentation(reader: StoreReader, params: dict[str, Any], instrument: str | None, figures: _Figures) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = reader.query(
        "SELECT model_version, toStartOfHour(acquired_at) AS hour, avg(object_count) AS objects, "
        "avg(mean_confidence) AS confidence, quantileExact(0.99)(latency_ms) AS latency_p99_ms "
        f"FROM predictions FINAL WHERE {_where('acquired_at', instrument)} "
        "GROUP BY model_version, hour ORDER BY model_version, hour",
        params,
    )
    if not rows:
        return '<p class="empty">no predictions in this window</p>'
    measures = ("objects", "confidence", "latency_p99_ms")
    figure = make_subplots(rows=1, cols=len(measures), subplot_titles=measures)
    for index, measure in enumerate(measures, 1):
        for version, group in _by(rows, "model_version").items():
            figure.add_trace(go.Scatter(
                x=[r["hour"] for r in group], y=[r[measure] for r in group], mode="lines+markers",
                name=version, legendgroup=version, showlegend=index == 1,
            ), row=1, col=index)  # fmt: skip
    figure.update_layout(title="segmentation per model version (hourly)")
    return figures.render(figure)


def _latent_map(reader: StoreReader, params: dict[str, Any], instrument: str | None, figures: _Figures) -> str:
    """The seed's figure: every image in the encoder's latent space (2-D by PCA), and each
    instrument's mean latent, the fingerprint of what it produces."""
    import numpy as np
    import plotly.graph_objects as go

    rows = reader.query(
        "SELECT instrument_id, encoder_version, latent FROM fingerprints FINAL "
        f"WHERE {_where('acquired_at', instrument)} ORDER BY acquired_at DESC LIMIT {_MAX_POINTS}",
        params,
    )
    rows = [r for r in rows if r["latent"]]
    if not rows:
        return '<p class="empty">no fingerprints in this window</p>'
    encoder = str(rows[0]["encoder_version"])
    rows = [r for r in rows if r["encoder_version"] == encoder and len(r["latent"]) == len(rows[0]["latent"])]
    latents = np.asarray([r["latent"] for r in rows], dtype=np.float64)
    centred = latents - latents.mean(axis=0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2] if len(rows) > 1 else np.eye(2, latents.shape[1])
    points = centred @ axes.T
    if points.shape[1] == 1:
        points = np.column_stack([points[:, 0], np.zeros(len(points))])
    figure = go.Figure()
    for name, indices in _by([{"i": i, **r} for i, r in enumerate(rows)], "instrument_id").items():
        at = np.asarray([r["i"] for r in indices])
        figure.add_trace(go.Scattergl(x=points[at, 0], y=points[at, 1], mode="markers", name=name,
                                      marker={"size": 4, "opacity": 0.5}, legendgroup=name))
        centre = points[at].mean(axis=0)
        figure.add_trace(go.Scatter(x=[centre[0]], y=[centre[1]], mode="markers+text", text=[f"mean {name}"],
                                    textposition="top center", marker={"size": 14, "symbol": "x"},
                                    legendgroup=name, showlegend=False))
    figure.update_layout(title=f"fingerprint latent map ({encoder}, PCA of the latents; x: instrument mean)",
                         xaxis_title="PC 1", yaxis_title="PC 2")
    return figures.render(figure)


def _holdout_dice(runs: list[Row], figures: _Figures) -> str:
    """Serving vs candidate Dice on each run's holdout, by the version each run produced."""
    import plotly.graph_objects as go

    points = []
    for run in sorted(runs, key=lambda r: r["finished_at"]):
        metrics = dict(zip(run["metric_names"], run["metric_values"], strict=False))
        if "serving_dice" in metrics and "candidate_dice" in metrics:
            points.append((run["finished_at"], run["base_model_version"], metrics["serving_dice"],
                           run["candidate_version"] or "(none)", metrics["candidate_dice"], run["status"]))
    if not points:
        return '<p class="empty">no evaluated training runs in this window</p>'
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[2] for p in points], mode="markers+lines",
                                name="serving model", text=[p[1] for p in points]))
    figure.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[4] for p in points], mode="markers+lines",
                                name="candidate", text=[f"{p[3]} ({p[5]})" for p in points]))
    figure.update_layout(title="Dice on each run's holdout: serving vs candidate model version",
                         yaxis_title="Dice", yaxis_range=[0, 1])
    return figures.render(figure)


def _by(rows: list[Row], key: str) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[str(row[key])].append(row)
    return grouped


def build_report(reader: StoreReader, *, since: datetime, instrument: str | None = None) -> str:
    """The report as one HTML document (plotly.js and all data inline)."""
    params: dict[str, Any] = {"since": since, "instrument": instrument}
    figures = _Figures()
    drift = reader.query(
        "SELECT detected_at, instrument_id, signal, detector, severity, statistic, threshold, model_version "
        f"FROM drift_events FINAL WHERE {_where('detected_at', instrument)} ORDER BY detected_at DESC LIMIT 200",
        params,
    )
    runs = reader.query(
        "SELECT finished_at, run_id, status, reason, base_model_version, candidate_version, metric_names, "
        "metric_values FROM model_runs FINAL WHERE finished_at >= %(since)s ORDER BY finished_at DESC LIMIT 50",
        params,
    )
    dead = reader.query(
        "SELECT source_topic, error_type, count() AS messages, max(failed_at) AS last_seen FROM dlq FINAL "
        "WHERE failed_at >= %(since)s GROUP BY source_topic, error_type ORDER BY messages DESC",
        params,
    )
    scope = f" for {html.escape(instrument)}" if instrument else ""
    sections = [
        ("Images", _images_per_hour(reader, params, instrument, figures)),
        ("Image statistics and drift", _statistics(reader, params, instrument, drift, figures)),
        ("Drift events", _table(drift)),
        ("Segmentation", _segmentation(reader, params, instrument, figures)),
        ("Fingerprint latent map", _latent_map(reader, params, instrument, figures)),
        ("Model quality by version", _holdout_dice(runs, figures)),
        ("Training runs", _table(runs)),
        ("Dead letters", _table(dead)),
    ]
    body = "".join(f"<h2>{html.escape(title)}</h2>{content}" for title, content in sections)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>driftscope report{scope}</title><style>{_STYLE}</style></head><body>"
        f"<h1>driftscope report{scope}</h1>"
        f"<p class='meta'>since {since.strftime('%Y-%m-%d %H:%M UTC')}; generated {generated}</p>"
        f"{body}</body></html>"
    )


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="the HTML file to write")] = Path("report.html"),
    since: Annotated[str, typer.Option(help="start of the window: ISO 8601 (UTC if no zone), or -7d, -12h")] = "-7d",
    instrument: Annotated[str | None, typer.Option("--instrument", "-i", help="only this instrument")] = None,
    home: Annotated[
        Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)", show_default=False)
    ] = None,
) -> None:
    """Write a self-contained HTML report: images, image statistics with drift events, segmentation, runs, dead letters.

    The file embeds plotly.js and the data, so it opens offline; it is a few MB.

    Example: driftscope report --out week.html --since -7d --instrument scope-3
    """
    from consumers.store import StoreError, StoreUnavailable

    start = parse_time(since)
    try:
        reader = open_reader(resolve_settings(home))
    except Unavailable as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    try:
        document = build_report(reader, since=start, instrument=instrument)
    except (StoreUnavailable, Unavailable) as exc:
        stderr.print(f"[red]error:[/red] the store is not available: {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    except StoreError as exc:
        stderr.print(f"[red]error:[/red] the store refused a report query: {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    finally:
        reader.close()
    try:
        out.write_text(document, encoding="utf-8")
    except OSError as exc:
        stderr.print(f"[red]error:[/red] cannot write {out}: {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    stderr.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", highlight=False)
