"""The demo's HTML report: Dice of every prediction over the stream, by model version, with the events marked.

Self-contained (plotly.js inlined), so it opens from disk with no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

__all__ = ["write_demo_report"]


def write_demo_report(path: Path, scores: Sequence[tuple[int, str, float]], summary: dict[str, Any]) -> Path:
    """Write the report to ``path``; ``scores`` are (image index, model version, Dice) per prediction."""
    figure = go.Figure()
    for version in dict.fromkeys(v for _, v, _ in sorted(scores)):
        points = sorted((i, s) for i, v, s in scores if v == version)
        figure.add_trace(go.Scatter(x=[i for i, _ in points], y=[s for _, s in points], mode="markers",
                                    name=version, marker={"size": 5}))
    promoted = summary.get("promoted_version")
    swapped = min((i for i, v, _ in scores if v == promoted), default=None) if promoted else None
    marks = [("drift onset", summary.get("drift_onset"), "gray", "bottom left"),
             ("drift detected", summary.get("drift_detected_at"), "red", "top right"),
             ("new model serving", swapped, "green", "bottom right")]
    for label, index, colour, position in marks:
        if index is not None:
            figure.add_vline(x=index, line_dash="dash", line_color=colour, annotation_text=label,
                             annotation_position=position)
    figure.update_layout(title="Dice of every prediction against ground truth, by serving model version",
                         xaxis_title="image index in the stream", yaxis_title="Dice", yaxis_range=[0, 1],
                         template="plotly_white", height=480)
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(f'{v:.3f}' if isinstance(v, float) else str(v))}</td></tr>"
        for k, v in summary.items()
    )
    html = (
        "<!doctype html><html><head><meta charset='utf-8'><title>driftscope demo</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        "<h1>driftscope demo</h1><table>" + rows + "</table>"
        + figure.to_html(full_html=False, include_plotlyjs=True)
        + "</body></html>"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path
