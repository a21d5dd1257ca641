"""Build the processing steps a :class:`StreamsConfig` asks for, then the app around them.

Models are loaded once here (verified against the registry), the store is opened and migrated only
when this worker runs the sink or the retrain trigger (in embedded mode exactly one worker may).
"""

from __future__ import annotations

from models.registry import Registry
from schemas.blobstore import BlobStore
from streams.app import Steps, StreamsApp
from streams.config import StreamsConfig
from streams.driftwatch import DriftWatch
from streams.fingerprint import Fingerprinter
from streams.retrain import RetrainTrigger
from streams.segment import Segmenter
from streams.serving import ModelSlot, load_encoder, load_segmenter
from streams.sink import ClickHouseSink

__all__ = ["build_app", "build_steps"]


def build_steps(config: StreamsConfig) -> Steps:
    """The steps of every agent in ``config.agents``, with their models and store."""
    from consumers.store import open_store  # only workers with the sink or the trigger touch the store

    blobs = BlobStore(config.blob_url)
    registry = Registry(blobs)
    steps = Steps(registry=registry)
    agents = config.agents
    if "segment" in agents:
        runner, version = load_segmenter(registry, intra_op_threads=config.intra_op_threads,
                                         batch_size=config.image_batch_size, device=config.device)
        steps.segment = Segmenter(ModelSlot(runner, version), blobs, pixel_budget=config.segment_pixel_budget)
    if "fingerprint" in agents:
        encoder, encoder_version = load_encoder(registry, intra_op_threads=config.intra_op_threads,
                                                batch_size=config.image_batch_size, device=config.device)
        steps.fingerprint = Fingerprinter(ModelSlot(encoder, encoder_version), blobs)
    if "drift" in agents:
        steps.drift = DriftWatch(blobs, namespace=config.app_id)
    if agents & {"sink", "retrain"}:
        assert config.store_url is not None  # enforced by StreamsConfig
        store = open_store(config.store_url)
        store.migrate()
        steps.store = store
        if "sink" in agents:
            steps.sink = ClickHouseSink(store, blobs)
        if "retrain" in agents:
            steps.retrain = RetrainTrigger(
                store,
                config.retrain,
                serving_version=lambda: registry.serving("segmenter").version,
                encoder_version=lambda: registry.serving_versions().get("encoder"),
            )
    return steps


def build_app(config: StreamsConfig) -> StreamsApp:
    return StreamsApp(config, build_steps(config))
