"""The docstring examples run, and the data side imports without torch (streaming workers have none)."""

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = [
    "models.data.synthetic",
    "models.data.drift",
    "models.data.dsb",
    "models.data.dataset",
    "models.preprocess",
    "models.imagestats",
    "models.measure",
    "models.metrics",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_imports_without_torch() -> None:
    """Import every module in a fresh interpreter where importing torch fails, as on a serving host."""
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['torchvision'] = None\n"
        f"for name in {MODULES!r}:\n"
        "    __import__(name)\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
