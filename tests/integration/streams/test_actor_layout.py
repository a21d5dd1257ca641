"""How many actors (and executor threads) each image agent gets: the fingerprint agent gets fewer."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftscope.settings import KafkaSettings, Settings
from driftscope.worker import WorkerOptions, streams_config
from streams.app import Steps, StreamsApp
from streams.config import StreamsConfig, fingerprint_actors
from streams.fingerprint import Fingerprinter
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_encoder, load_segmenter
from tests.e2e.harness import bootstrap_models


@pytest.mark.parametrize(("segment", "fingerprint"), [(1, 1), (2, 1), (3, 2), (8, 4)])
def test_the_fingerprint_agent_gets_half_the_segment_actors_rounded_up(segment: int, fingerprint: int) -> None:
    assert fingerprint_actors(segment) == fingerprint


def _app(tmp_path: Path, **options: int) -> StreamsApp:
    registry = bootstrap_models(str(tmp_path / "blobs"))
    steps = Steps(fingerprint=Fingerprinter(ModelSlot(*load_encoder(registry)), registry.store),
                  segment=Segmenter(ModelSlot(*load_segmenter(registry)), registry.store))
    config = StreamsConfig(bootstrap_servers="127.0.0.1:9", datadir=tmp_path / "faust", status_dir=tmp_path / "workers",
                           blob_url=str(tmp_path / "blobs"), agents=frozenset({"fingerprint", "segment"}), **options)
    return StreamsApp(config, steps)


def _layout(app: StreamsApp) -> dict[str, tuple[int, int]]:
    """Per image agent: (Faust actors, executor threads)."""
    threads = {executor._thread_name_prefix: executor._max_workers for executor in app.steps.executors}
    return {name: (app.faust.agents[f"driftscope.{name}"].concurrency, threads[f"ds-{name}"])
            for name in ("fingerprint", "segment")}


def test_by_default_two_segment_actors_and_one_fingerprint_actor(tmp_path: Path) -> None:
    app = _app(tmp_path)
    try:
        assert _layout(app) == {"fingerprint": (1, 1), "segment": (2, 2)}
    finally:
        for executor in app.steps.executors:
            executor.shutdown()


def test_the_fingerprint_actors_can_be_set_apart(tmp_path: Path) -> None:
    app = _app(tmp_path, concurrency=3, fingerprint_concurrency=3)
    try:
        assert _layout(app) == {"fingerprint": (3, 3), "segment": (3, 3)}
    finally:
        for executor in app.steps.executors:
            executor.shutdown()


@pytest.mark.parametrize(("option", "actors"), [(None, 2), (1, 1)])
def test_the_worker_command_passes_the_fingerprint_actors_down(tmp_path: Path, option: int | None, actors: int) -> None:
    settings = Settings(home=tmp_path, kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"))
    config = streams_config(settings, WorkerOptions(concurrency=4, fingerprint_concurrency=option))
    assert (config.concurrency, config.fingerprint_actors) == (4, actors)
