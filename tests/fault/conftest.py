"""Fault tests reuse the streaming fixtures (a blob store serving the baseline models) and get a
private Tansu broker per test, so a fault staged on it reaches no other test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from driftscope.kafka_admin import ensure_topics
from driftscope.tansu import TansuBroker
from tests.integration.streams.conftest import served_blob_url

__all__ = ["served_blob_url", "tansu"]


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[TansuBroker]:
    """A fresh broker with every registry topic (the test may SIGSTOP it: it is its own)."""
    with TansuBroker(tmp_path / "tansu") as broker:
        ensure_topics({"bootstrap.servers": broker.bootstrap_servers})
        yield broker
