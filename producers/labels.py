"""Publish annotators' masks to ``labels``: one mask for one image id, or a whole dataset folder.

A dataset folder follows the seeds' dataset-formation rules (``x.tif`` with ``x_mask.tif`` beside it,
or ``images/`` + ``masks/``); each image's id is derived exactly as :mod:`producers.publish` derives
it (instrument, file name, sha256), so labelling the folder that was published labels those images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.data.dataset import DatasetError, find_pairs, read_image
from producers.kafka import EventProducer
from producers.publish import image_events
from schemas.blobstore import BlobStore
from schemas.claimcheck import DEFAULT_THRESHOLD_BYTES, array_to_blob
from schemas.events import LabelEvent

__all__ = ["LABEL_TOPIC", "LabelledImage", "label_event", "publish_dataset_labels", "read_mask"]

LABEL_TOPIC = "labels"
_MASK_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "int32": np.int32}


@dataclass(frozen=True)
class LabelledImage:
    image_id: str
    mask: Path
    objects: int


def read_mask(path: Path) -> np.ndarray:
    """A 2-D instance (or binary) mask as an integer array; anything else is a :class:`DatasetError`."""
    mask, _ = read_image(path)
    if mask.ndim != 2:
        raise DatasetError(path, f"a mask must be 2-D, got shape {mask.shape}")
    if mask.dtype.kind == "f" or mask.dtype.kind == "b":
        if mask.dtype.kind == "f" and not np.array_equal(mask, np.round(mask)):
            raise DatasetError(path, "a float mask must hold whole numbers (instance labels)")
        mask = mask.astype(np.int32)
    if mask.dtype.name not in _MASK_DTYPES:
        if mask.min() < 0 or mask.max() > np.iinfo(np.int32).max:
            raise DatasetError(path, f"mask values {mask.min()}..{mask.max()} do not fit instance labels")
        mask = mask.astype(np.int32)
    return mask


def label_event(
    image_id: str,
    instrument_id: str,
    mask: np.ndarray,
    *,
    annotator: str,
    store: BlobStore | None,
    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES,
) -> LabelEvent:
    """A LabelEvent with the mask inline, or claim-checked when it is large."""
    if store is not None and mask.nbytes > threshold_bytes:
        ref = array_to_blob(mask, store, prefix="masks")
        if ref.size > threshold_bytes:
            return LabelEvent(image_id=image_id, instrument_id=instrument_id, annotator=annotator, mask_blob=ref)
    return LabelEvent(image_id=image_id, instrument_id=instrument_id, annotator=annotator, mask=mask)


def publish_dataset_labels(
    root: Path,
    producer: EventProducer,
    *,
    instrument_id: str,
    annotator: str,
    store: BlobStore | None,
    mask_suffix: str = "_mask",
) -> list[LabelledImage]:
    """Queue a label for every image of the dataset at ``root``; raises on the first bad pair."""
    done: list[LabelledImage] = []
    for _, image_path, mask_path in find_pairs(root, mask_suffix):
        events = image_events(image_path, instrument_id=instrument_id, store=None)
        if len(events) != 1:
            raise DatasetError(image_path, f"{len(events)} image planes: label stacks one plane at a time")
        mask = read_mask(mask_path)
        if tuple(mask.shape) != tuple(events[0].shape[:2]):
            raise DatasetError(mask_path, f"mask {mask.shape} does not match image {events[0].shape[:2]}")
        event = label_event(events[0].image_id, instrument_id, mask, annotator=annotator, store=store)
        producer.send(LABEL_TOPIC, event, key_field="instrument_id")
        done.append(LabelledImage(events[0].image_id, mask_path, len(np.unique(mask[mask > 0]))))
    return done
