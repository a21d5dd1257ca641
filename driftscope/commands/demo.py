"""``driftscope demo``: the whole loop on the embedded stack, watched live.

Example::

    driftscope demo                      # live progress, a summary table, report.html
    driftscope demo --json               # one JSON line at the end (progress goes to stderr)
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from driftscope.settings import load_settings

if TYPE_CHECKING:
    from driftscope.demo import DemoProgress

__all__ = ["demo"]


def demo(
    home: Annotated[Path | None, typer.Option("--home", help="where the demo's stack lives "
                                              "(default: a new folder under $DRIFTSCOPE_HOME/demo)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line with the outcome")] = False,
    report: Annotated[Path, typer.Option(help="where to write the HTML report")] = Path("report.html"),
    drift: Annotated[str, typer.Option(help="the drift, name:severity[,name:severity...]")] = "noise:1.0,defocus:1.0",
    in_distribution: Annotated[int, typer.Option(help="images before the drift")] = 150,
    rate: Annotated[float, typer.Option(help="images per second the instrument publishes")] = 4.0,
    label_fraction: Annotated[float, typer.Option(help="fraction of images an annotator labels")] = 0.25,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 900.0,
) -> None:
    """Stream synthetic images that drift partway, and watch drift → retrain → promote → hot swap.

    Example: driftscope demo --json
    """
    from driftscope.demo import DemoOptions, DemoProgress, run_demo

    logging.basicConfig(level=logging.WARNING)
    settings = load_settings()
    home = home or settings.home / "demo" / time.strftime("%Y%m%d-%H%M%S")
    options = DemoOptions(home=home, report=report.resolve(), drift=drift, in_distribution=in_distribution,
                          rate=rate, label_fraction=label_fraction, timeout_s=timeout)
    console = Console(stderr=True)
    with Live(_progress_table(DemoProgress()), console=console, refresh_per_second=4, transient=as_json) as live:
        summary = run_demo(options, on_progress=lambda p: live.update(_progress_table(p)))
    if as_json:
        print(json.dumps(summary.public()), flush=True)
    else:
        table = Table(title="driftscope demo")
        table.add_column("")
        table.add_column("")
        for key, value in summary.public().items():
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
        Console().print(table)
    if summary.promoted_version is None:
        raise typer.Exit(1)


def _progress_table(progress: DemoProgress) -> Table:
    table = Table(title=f"driftscope demo — {progress.phase}", show_header=False)
    table.add_row("images published / labelled", f"{progress.published} / {progress.labels}")
    table.add_row("predictions (by model version)",
                  f"{progress.predictions}  " + ", ".join(f"{v}: {n}" for v, n in progress.versions.items()))
    table.add_row("drift events", ", ".join(sorted({e.signal for e in progress.drift_events})) or "none yet")
    table.add_row("retrain requests", str(len(progress.requests)) if progress.requests else "none yet")
    table.add_row("retrain runs", ", ".join(f"{r.status} ({r.reason})" for r in progress.runs) or "none yet")
    table.add_row("promoted", ", ".join(p.version for p in progress.promoted) or "none yet")
    return table
