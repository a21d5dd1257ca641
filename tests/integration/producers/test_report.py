"""The HTML report is one self-contained file holding the window's data, on both store backends."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import imageio
import numpy as np
import pytest

from consumers.store import Store
from consumers.store.rows import rows_by_table
from driftscope.commands.report import build_report
from schemas.events import (
    BlobRef,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    ImageStats,
    PredictionEvent,
    TrainingRunEvent,
)

NOW = datetime.now(UTC).replace(microsecond=0)
REF = BlobRef(uri="ds-blob://masks/ab/" + "ab" * 32, sha256="ab" * 32, size=10)


def _events() -> list[Event]:
    events: list[Event] = []
    for i in range(6):
        at = NOW - timedelta(hours=i)
        image_id = f"scope-r/{i}"
        stats = ImageStats(p01=1, p50=100 + i, p99=900, mean=120, std=30, focus=5 - i * 0.5, noise=2,
                           saturation_fraction=0)
        events += [
            ImageEvent(image_id=image_id, instrument_id="scope-r", acquired_at=at, shape=(16, 16), dtype="uint8",
                       pixels=np.zeros((16, 16), dtype=np.uint8)),
            FingerprintEvent(image_id=image_id, instrument_id="scope-r", acquired_at=at, encoder_version="e1",
                             latent=[float(i), 1.0 - i, 0.5 * i], reconstruction_error=0.1, stats=stats),
            PredictionEvent(image_id=image_id, instrument_id="scope-r", acquired_at=at, model_version="seg-7",
                            mask=REF, object_count=10 + i, foreground_fraction=0.2, mean_confidence=0.9,
                            entropy=0.1, latency_ms=12.0),
        ]
    events.append(DriftEvent(detector="adwin", signal="focus", instrument_id="scope-r", model_version="seg-7",
                             statistic=4.2, threshold=1.0, window=32, first_seen_at=NOW - timedelta(hours=2),
                             detected_at=NOW - timedelta(hours=2), severity="high"))
    events.append(TrainingRunEvent(run_id="run-1", request_key="k", status="promoted", started_at=NOW,
                                   finished_at=NOW, duration_s=60, device="cpu", base_model_version="seg-7",
                                   candidate_version="seg-8", metrics={"serving_dice": 0.5, "candidate_dice": 0.87}))
    old = NOW - timedelta(days=30)
    events.append(DriftEvent(detector="kswin", signal="p50", instrument_id="scope-old", model_version="seg-1",
                             statistic=1.0, threshold=0.5, window=8, first_seen_at=old, detected_at=old))
    return events


def test_report_is_self_contained_and_holds_the_window(store: Store) -> None:
    for table, rows in rows_by_table(_events()).items():
        store.insert(table, rows)
    document = build_report(store, since=NOW - timedelta(days=1))

    assert document.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]+src=", document), "every script must be inline"
    assert document.count("plotly.js v") == 1  # the library once, not per figure
    for section in ("Images", "Image statistics and drift", "Drift events", "Segmentation", "Fingerprint latent map",
                    "Model quality by version", "Training runs"):
        assert f"<h2>{section}</h2>" in document
    assert "seg-7" in document and "adwin" in document
    assert "scope-old" not in document  # outside the window

    only_other = build_report(store, since=NOW - timedelta(days=1), instrument="scope-none")
    assert "no images in this window" in only_other


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("Debian's chromium is not installed (make setup installs it)")


def _headless(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Debian's Chromium, headless, with nothing that reaches beyond this machine."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium_with_its_plots_and_no_console_errors(
    chdb_store: Store, tmp_path: Path
) -> None:
    binary = _chromium()
    for table, rows in rows_by_table(_events()).items():
        chdb_store.insert(table, rows)
    page = tmp_path / "report.html"
    page.write_text(build_report(chdb_store, since=NOW - timedelta(days=1)))

    dom = _headless(binary, tmp_path / "profile-dom", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console_errors = [line for line in dom.stderr.splitlines()
                      if "CONSOLE" in line and ("ERROR" in line.upper() or "Uncaught" in line)]
    assert console_errors == []
    figures = page.read_text().count('class="plotly-graph-div"')
    assert figures >= 5
    assert dom.stdout.count('class="main-svg"') >= figures  # plotly drew every figure

    shot = tmp_path / "report.png"
    taken = _headless(binary, tmp_path / "profile-shot", "--window-size=1280,2400", f"--screenshot={shot}",
                      page.as_uri())
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    pixels = imageio.v3.imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.std() > 10  # a drawn page, not a blank one
