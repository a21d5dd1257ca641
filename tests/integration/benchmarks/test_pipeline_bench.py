"""bench/pipeline.py runs a real worker on the embedded stack and prints the figures the streams issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.slow, pytest.mark.broker]


def test_pipeline_bench_prints_one_json_line_and_stays_within_the_memory_bound() -> None:
    done = subprocess.run([sys.executable, "bench/pipeline.py", "--size", "256", "--images", "48",
                           "--latency-images", "16", "--json"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"images_per_s", "bare_images_per_s", "ratio", "p50_ms", "p99_ms", "peak_rss_mib"} <= set(result)
    assert result["ratio"] == pytest.approx(result["images_per_s"] / result["bare_images_per_s"])
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert (result["concurrency"], result["fingerprint_actors"]) == (2, 1)
    # --device auto in the worker and the bare run alike: both say which onnxruntime provider ran the models.
    assert set(result["providers"]["worker"]) == set(result["providers"]["bare"]) == {"segmenter", "encoder"}
    assert result["providers"]["worker"] == result["providers"]["bare"]
    # The worker's peak RSS stays under the 1.5 GiB at 256² (bounded queues and batches).
    assert 0 < result["peak_rss_mib"] < 1.5 * 1024
    assert set(result["cpu_ms_per_image_by_thread"]) >= {"segment", "fingerprint", "event_loop", "process"}
