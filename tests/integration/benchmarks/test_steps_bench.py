"""bench/steps.py runs the steps' real functions and reports every piece."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def test_steps_bench_prints_one_json_line_with_every_piece() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.steps", "--size", "64", "--images", "2", "--repeats", "1",
                           "--throughput-images", "16", "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    pieces = result["cpu_ms_per_image"]
    assert set(pieces) == {"decode", "encoder_resize", "encoder_with_resize", "image_stats", "image_archive",
                           "unet_with_preprocessing", "split", "measurements", "uncertainty", "mask_write"}
    assert pieces["encoder_with_resize"] > 0 and pieces["unet_with_preprocessing"] > 0
    assert result["total"] >= result["encoder_and_unet"]
    alone = result["steps_alone"]
    assert (alone["segment_actors"], alone["fingerprint_actors"]) == (2, 1)
    assert alone["images_per_s"] > 0 and alone["bare_images_per_s"] > 0
    assert alone["cpu_ms_per_image"] > 0 and alone["one_thread_cpu_ms_per_image"] > 0
    assert alone["ratio"] == pytest.approx(alone["images_per_s"] / alone["bare_images_per_s"])
