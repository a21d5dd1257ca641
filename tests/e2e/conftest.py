"""End-to-end fixtures: a private broker per test, and a blob store serving the baseline models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftscope.kafka_admin import ensure_topics
from driftscope.tansu import TansuBroker
from tests.e2e.harness import bootstrap_models


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A fresh Tansu broker with every registry topic: no test sees another's records or offsets."""
    with TansuBroker(tmp_path / "tansu") as tansu:
        ensure_topics({"bootstrap.servers": tansu.bootstrap_servers})
        yield tansu.bootstrap_servers


@pytest.fixture(scope="session")
def served_blob_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A blob store whose registry serves the baseline segmenter and encoder."""
    url = str(tmp_path_factory.mktemp("blobs"))
    bootstrap_models(url)
    return url
