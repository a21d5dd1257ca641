"""``driftscope trainer``: the training worker (retrain on request, gate, publish).

Example::

    driftscope trainer                       # against the stack running in $DRIFTSCOPE_HOME
    DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 DRIFTSCOPE_BLOB_URL=s3://models driftscope trainer

Uses CUDA when present, else the CPU. Needs the ``train`` extra (torch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from driftscope.settings import load_settings
from driftscope.stack import apply_running_stack

__all__ = ["trainer"]


def trainer(
    home: Annotated[Path | None, typer.Option("--home", help="state directory (default: $DRIFTSCOPE_HOME)")] = None,
    margin: Annotated[float, typer.Option(help="holdout Dice a candidate must gain over the serving model")] = 0.01,
    max_seconds: Annotated[float, typer.Option(help="training time budget per run, seconds")] = 240.0,
    max_epochs: Annotated[int, typer.Option(help="training epochs per run, at most")] = 6,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda if present, else cpu)")] = None,
    ready_file: Annotated[Path | None, typer.Option(help="touched once the trainer is consuming")] = None,
    max_requests: Annotated[int | None, typer.Option(help="exit after this many requests")] = None,
) -> None:
    """Consume retrain.requests; fine-tune, evaluate serving vs candidate, promote only a better model.

    Example: driftscope trainer --margin 0.02 --max-seconds 600
    """
    # torch is imported here, not at CLI start: serving commands must work without it.
    from consumers.trainer.executor import RetrainPolicy, SegmenterRetrainer
    from consumers.trainer.run_record import RunRecords
    from consumers.trainer.worker import TrainingWorker
    from models.registry import Registry
    from schemas.blobstore import BlobStore

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = apply_running_stack(load_settings(home=home))
    if not settings.kafka.bootstrap_servers:
        typer.echo("error: no Kafka bootstrap servers: start `driftscope stack up` or set "
                   "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS", err=True)
        raise typer.Exit(2)
    store = BlobStore(settings.resolved_blob_url)
    registry = Registry(store)
    if "segmenter" not in registry.serving_versions():
        registry.bootstrap_from_baseline()
    policy = RetrainPolicy(margin=margin, max_seconds=max_seconds, max_epochs=max_epochs, device=device)

    def mark_ready() -> None:
        if ready_file is not None:
            ready_file.touch()

    worker = TrainingWorker(
        settings.kafka.librdkafka_config(), SegmenterRetrainer(store, registry, policy), RunRecords(store),
        session_timeout_ms=int(settings.kafka.session_timeout_s * 1000), on_assigned=mark_ready,
    )
    worker.install_signal_handlers()
    worker.run_forever(max_requests=max_requests)
