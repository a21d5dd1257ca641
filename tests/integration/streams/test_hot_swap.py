"""Hot swap: a worker serves whatever the registry promotes, and keeps the old model if the new one is bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import Registry
from schemas.blobstore import BlobStore
from schemas.codec import decode
from schemas.errors import BlobIntegrityError
from schemas.events import PredictionEvent
from streams.app import Steps, refresh_models
from streams.config import StreamsConfig
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_segmenter
from tests.e2e.harness import artifacts_dir, bootstrap_models, image_events
from tests.integration.streams.conftest import record


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Registry, Steps, StreamsConfig, bytes]:
    candidate = artifacts_dir() / "segmenter-int8.onnx"
    if not candidate.exists():
        pytest.skip(f"no second segmenter artifact ({candidate}) to swap to")
    registry = bootstrap_models(str(tmp_path / "blobs"))
    runner, version = load_segmenter(registry)
    steps = Steps(segment=Segmenter(ModelSlot(runner, version), registry.store), registry=registry)
    config = StreamsConfig(bootstrap_servers="127.0.0.1:9", datadir=tmp_path / "faust", status_dir=tmp_path / "workers",
                           blob_url=str(tmp_path / "blobs"), agents=frozenset({"segment"}))
    return registry, steps, config, candidate.read_bytes()


def test_a_promoted_segmenter_serves_the_next_batch(setup: tuple[Registry, Steps, StreamsConfig, bytes]) -> None:
    registry, steps, config, candidate = setup
    assert steps.segment is not None
    old = steps.segment.slot.version
    assert refresh_models(registry, steps, config) == []

    new = registry.register("segmenter", candidate, parent=old).version
    registry.promote("segmenter", new)
    assert refresh_models(registry, steps, config) == [("segmenter", old, new)]

    outcome = steps.segment.process([record("images.raw", image_events(1, size=64, seed=9)[0])])
    prediction = decode(outcome.outputs[0].value, expected=PredictionEvent)
    assert isinstance(prediction, PredictionEvent) and prediction.model_version == new


def test_a_corrupt_artifact_is_refused_and_the_old_model_keeps_serving(
    setup: tuple[Registry, Steps, StreamsConfig, bytes],
) -> None:
    registry, steps, config, candidate = setup
    assert steps.segment is not None
    old = steps.segment.slot.version
    record_ = registry.register("segmenter", candidate)
    registry.promote("segmenter", record_.version)
    key = BlobStore.key_of(record_.artifact.uri)
    registry.store.write(key, b"not the promoted model")

    with pytest.raises(BlobIntegrityError):
        refresh_models(registry, steps, config)
    assert steps.segment.slot.version == old
