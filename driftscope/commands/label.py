"""``driftscope label`` / ``label-dataset``: publish annotators' masks to ``labels``.

Examples::

    driftscope label "scope-1/plate3_A01.tif@1f2e3d4c5b6a7980" plate3_A01_mask.tif --instrument scope-1
    driftscope label-dataset annotated/ --instrument scope-1      # x.tif + x_mask.tif pairs
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from driftscope.commands.clients import ExitCode, Unavailable, kafka_config, resolve_settings

if TYPE_CHECKING:
    from producers.kafka import EventProducer
    from schemas.blobstore import BlobStore

__all__ = ["label", "label_dataset"]

_err = Console(stderr=True)


def _producer_and_store(home: Path | None) -> tuple[EventProducer, BlobStore, int]:
    """Producer, blob store and claim-check threshold; imported late so ``--help`` stays fast."""
    from producers.kafka import EventProducer
    from schemas.blobstore import BlobStore

    settings = resolve_settings(home)
    try:
        conf = kafka_config(settings, topics=("labels",))
    except Unavailable as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.UNAVAILABLE)) from None
    return EventProducer(conf), BlobStore(settings.resolved_blob_url), settings.claim_check_threshold_bytes


def label(
    image_id: Annotated[str, typer.Argument(help="the image id the mask belongs to (as in predictions)")],
    mask: Annotated[Path, typer.Argument(help="instance mask: TIFF/PNG, 0 = background")],
    instrument: Annotated[str, typer.Option("--instrument", "-i", help="instrument id of the image")],
    annotator: Annotated[str, typer.Option(help="who drew the mask")] = "cli",
    home: Annotated[Path | None, typer.Option("--home", help="state directory")] = None,
) -> None:
    """Publish one annotator's mask for one image.

    Example: driftscope label "scope-1/a.tif@1f2e3d4c5b6a7980" a_mask.tif --instrument scope-1
    """
    from models.data.dataset import DatasetError
    from producers.kafka import PublishError
    from producers.labels import LABEL_TOPIC, label_event, read_mask

    try:
        array = read_mask(mask)
    except DatasetError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.USAGE)) from None
    producer, store, threshold = _producer_and_store(home)
    event = label_event(image_id, instrument, array, annotator=annotator, store=store, threshold_bytes=threshold)
    producer.send(LABEL_TOPIC, event, key_field="instrument_id")
    try:
        producer.flush()
    except PublishError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    print(json.dumps({"image_id": image_id, "label_event_id": str(event.event_id)}))


def label_dataset(
    root: Annotated[Path, typer.Argument(help="dataset folder: x.tif + x_mask.tif, or images/ + masks/")],
    instrument: Annotated[str, typer.Option("--instrument", "-i", help="instrument id the images were published as")],
    annotator: Annotated[str, typer.Option(help="who drew the masks")] = "cli",
    mask_suffix: Annotated[str, typer.Option(help="mask file suffix")] = "_mask",
    home: Annotated[Path | None, typer.Option("--home", help="state directory")] = None,
) -> None:
    """Publish a label for every image of a dataset folder (ids derived as `driftscope publish` does).

    Example: driftscope label-dataset annotated/ --instrument scope-1
    """
    from models.data.dataset import DatasetError
    from producers.kafka import PublishError
    from producers.labels import publish_dataset_labels

    producer, store, _ = _producer_and_store(home)
    try:
        done = publish_dataset_labels(root, producer, instrument_id=instrument, annotator=annotator, store=store,
                                      mask_suffix=mask_suffix)
        producer.flush()
    except DatasetError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.USAGE)) from None
    except PublishError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(int(ExitCode.FAILED)) from None
    print(json.dumps({"labelled": len(done), "image_ids": [d.image_id for d in done]}))
