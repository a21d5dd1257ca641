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


def test_examples_exist_where_the_style_asks() -> None:
    with_examples = [
        name for name in MODULES if doctest.DocTestFinder().find(importlib.import_module(name))[0].examples
    ]
    assert {"streams.drift.detectors.cusum", "streams.drift.reference", "streams.drift.track"} <= set(with_examples)
