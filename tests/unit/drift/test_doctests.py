"""The docstring examples of the drift package are its first tests: run them."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import streams.drift

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(streams.drift.__path__, prefix="streams.drift.")
    if info.name != "streams.drift.evaluation"  # imports the image generator; exercised by integration tests
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
