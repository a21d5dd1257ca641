"""The closed loop, end to end, with no manual step: drift → retrain → gate → promote → hot swap.

Runs the demo's own driver on a real embedded stack (Tansu, chDB, worker and trainer processes),
then opens the stopped stack's ClickHouse store to check the model database M.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.store import open_store
from driftscope.demo import DemoOptions, run_demo

pytest.importorskip("torch", reason="the trainer needs the train extra (torch)")

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.torch]


def test_drift_retrain_promote_and_hot_swap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    summary = run_demo(DemoOptions(home=home, report=tmp_path / "report.html", timeout_s=1200))

    assert summary.drift_detected_at is not None and summary.drift_detected_at >= summary.drift_onset
    assert summary.promoted_version is not None, summary
    assert summary.dice_drifted_before is not None and summary.dice_drifted_after is not None
    assert summary.dice_drifted_after - summary.dice_drifted_before >= 0.10, summary
    assert summary.stale_after_swap == 0  # every prediction after the swap carries the new version
    assert (tmp_path / "report.html").stat().st_size > 10_000

    with open_store(f"chdb://{home / 'chdb'}", readonly=True) as store:
        requests = store.query("SELECT idempotency_key FROM retrain_requests FINAL")
        runs = store.query("SELECT run_id, request_key, status, candidate_version FROM model_runs FINAL")
    assert requests, "no retrain request reached the store"
    assert sorted(r["request_key"] for r in runs) == sorted(r["idempotency_key"] for r in requests)
    assert any(r["status"] == "promoted" and r["candidate_version"] == summary.promoted_version for r in runs)
