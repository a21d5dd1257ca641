"""Serving modules must import, and the baseline must be scored, without torch installed."""

from __future__ import annotations

import subprocess
import sys

BLOCK_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "onnxscript"):
            raise ImportError(f"{name} is not installed in a serving image")
sys.meta_path.insert(0, NoTorch())
"""


def test_serving_modules_import_without_torch() -> None:
    code = BLOCK_TORCH + (
        "import models.runners, models.registry, models.fingerprint, models.train_eval, models.baseline\n"
        "import driftscope.commands.models\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
