"""Fixtures for the streaming steps: a blob store serving the baseline models, and record helpers."""

from __future__ import annotations

import itertools

import pytest

from schemas.codec import encode
from schemas.events import Event
from streams.messages import RawMessage
from tests.e2e.harness import bootstrap_models

_offsets = itertools.count()


@pytest.fixture(scope="session")
def served_blob_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A blob store whose registry serves the baseline segmenter and encoder."""
    url = str(tmp_path_factory.mktemp("blobs"))
    bootstrap_models(url)
    return url


def record(topic: str, value: bytes | Event, *, key: bytes | None = b"scope-0", partition: int = 0,
           offset: int | None = None) -> RawMessage:
    """A consumed record as the agents see it; events are encoded with the production codec."""
    raw = encode(value) if isinstance(value, Event) else value
    return RawMessage(topic, partition, next(_offsets) if offset is None else offset, key, raw)
