"""The drift logic is serving code: it must import without torch, Faust, Kafka or the image stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "torchvision", "faust", "confluent_kafka", "scipy", "skimage", "river")


def test_importing_the_drift_package_pulls_in_nothing_heavy() -> None:
    probe = f"import sys, streams.drift; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
