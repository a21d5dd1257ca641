"""Shared first step of the image agents: decode ``images.raw`` records, dead-letter the bad ones.

Decoding checks everything the contract promises (framing, schema version, event type, shape,
dtype, non-empty pixels, claim-check integrity), so what reaches a model is an array of the
declared shape. Whatever fails here goes to ``images.raw.dlq`` with the codec's reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from schemas.blobstore import BlobStore
from schemas.claimcheck import image_pixels
from schemas.codec import decode
from schemas.errors import BlobError, SchemaError
from schemas.events import ImageEvent
from streams.messages import Outcome, RawMessage

__all__ = ["DecodedImage", "decode_images", "run_isolating_failures"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class DecodedImage:
    """A valid image event, its pixels (inline or fetched from the blob store), and its record."""

    message: RawMessage
    event: ImageEvent
    pixels: np.ndarray


def decode_images(messages: Sequence[RawMessage], blobs: BlobStore | None, outcome: Outcome) -> list[DecodedImage]:
    """The decodable images of ``messages``; every other record is dead-lettered into ``outcome``."""
    decoded: list[DecodedImage] = []
    for message in messages:
        try:
            event = decode(message.value, expected=ImageEvent)
            assert isinstance(event, ImageEvent)
            pixels = image_pixels(event, blobs)
        except (SchemaError, BlobError) as exc:
            outcome.dead(message, exc)
            continue
        decoded.append(DecodedImage(message, event, pixels))
    return decoded


def run_isolating_failures(
    items: Sequence[T],
    run: Callable[[Sequence[T]], Sequence[R]],
    message_of: Callable[[T], RawMessage],
    outcome: Outcome,
) -> list[tuple[T, R]]:
    """``run`` the whole batch; if it fails, run each item alone and dead-letter those that fail.

    One unprocessable image (a size the model cannot take, a channel count it was not trained on)
    must not take its batch-mates down with it.
    """
    if not items:
        return []
    try:
        results = run(items)
        return list(zip(items, results, strict=True))
    except Exception as exc:
        log.debug("batch of %d failed (%r); retrying one by one", len(items), exc)
    paired: list[tuple[T, R]] = []
    for item in items:
        try:
            (result,) = run([item])
        except Exception as exc:
            outcome.dead(message_of(item), exc)
            continue
        paired.append((item, result))
    return paired
