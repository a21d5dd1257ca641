"""The operator commands against a real worker that owns an embedded store: simulate, then query and status.

chDB admits one process per data directory, so ``query`` and ``status`` must reach the store through
the worker's loopback query page, found by themselves from ``--home``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest

from driftscope.kafka_admin import ensure_topics
from driftscope.tansu import TansuBroker
from tests.e2e.harness import WorkerProcess, bootstrap_models, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.broker]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    with TansuBroker(tmp_path / "tansu") as tansu:
        ensure_topics({"bootstrap.servers": tansu.bootstrap_servers})
        yield tansu.bootstrap_servers


def _cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "driftscope", *args, "--home", str(home)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_simulate_then_query_and_status_through_the_worker(broker: str, tmp_path: Path) -> None:
    home, blobs = tmp_path / "home", str(tmp_path / "blobs")
    bootstrap_models(blobs)
    store_url = f"chdb://{tmp_path / 'chdb'}"
    worker = WorkerProcess(home, bootstrap_servers=broker, blob_url=blobs, store_url=store_url, name="w1").start()
    env = {**os.environ, "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": broker, "DRIFTSCOPE_BLOB_URL": blobs,
           "DRIFTSCOPE_CLICKHOUSE_URL": store_url}
    try:
        # Commands find the worker by its status file, which it writes every few seconds.
        assert wait_for(worker.status_path.exists, timeout=60)
        simulated = _cli(home, env, "simulate", "--count", "6", "--rate", "0", "--size", "64", "--json")
        assert simulated.returncode == 0, simulated.stderr
        run_id = json.loads(simulated.stdout)["run_id"]

        def stored() -> int:
            result = _cli(home, env, "query", "--json",
                          f"SELECT count() AS n FROM predictions FINAL WHERE image_id LIKE 'synth-1/{run_id}/%'")
            assert result.returncode == 0, result.stderr
            return int(json.loads(result.stdout)[0]["n"])

        if not wait_for(lambda: stored() == 6, timeout=120, interval=2):
            counts = _cli(home, env, "query", "--json", "SELECT (SELECT count() FROM images) AS images, "
                          "(SELECT count() FROM predictions) AS predictions, (SELECT count() FROM dlq) AS dlq")
            pytest.fail(f"predictions not stored: {counts.stdout} {counts.stderr}\n{worker.log_text()[-3000:]}")

        refused = _cli(home, env, "query", "DROP TABLE predictions")
        assert refused.returncode == 1

        # The worker rewrites its status file every few seconds: wait for one written after the images went through.
        snapshots: list[dict[str, Any]] = []

        def status_after_the_images() -> bool:
            status = _cli(home, env, "status", "--json")
            assert status.returncode == 0, status.stderr
            snapshots.append(json.loads(status.stdout))
            listed = snapshots[-1]["workers"]
            return bool(listed) and all("segment" in (entry.get("cpu_s") or {}) for entry in listed)

        assert wait_for(status_after_the_images, timeout=60, interval=1), snapshots[-1]
        shown = snapshots[-1]
        assert shown["store_error"] is None
        [worker_status] = shown["workers"]
        assert worker_status["models"]["segmenter"]
        # --device auto (the default): CUDA where onnxruntime can run on it, else the CPU.
        expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else \
            "CPUExecutionProvider"
        assert worker_status["providers"] == {"segmenter": expected, "encoder": expected}
        assert worker_status["cpu_s"]["segment"] > 0 and worker_status["cpu_s"]["process"] > 0
        table = _cli(home, {**env, "COLUMNS": "300"}, "status")  # wide enough that no cell wraps
        assert table.returncode == 0 and "event_loop" in table.stdout and "CPU s" in table.stdout, table.stdout
        assert f" on {expected.removesuffix('ExecutionProvider').lower()}" in table.stdout, table.stdout
        assert any(row["topic"] == "images.raw" for row in shown["lag"])
    finally:
        worker.stop()
