"""Publish image files to ``images.raw``: one ImageEvent per image, claim-checked when large.

Image ids are derived from the instrument, the file name and the file's sha256 (plus the plane
index for stacks). Publishing the same file again — a retry after a crash, a watcher restart —
therefore repeats the same ids, which the idempotent sinks deduplicate; a different file with the
same name gets a different id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from producers.files import ImageFileError, Plane, acquired_at, file_sha256, read_planes
from producers.kafka import EventProducer
from schemas.blobstore import BlobStore
from schemas.claimcheck import DEFAULT_THRESHOLD_BYTES, image_event
from schemas.events import ImageEvent

__all__ = ["IMAGE_TOPIC", "FilePublisher", "PublishedFile", "image_events"]

IMAGE_TOPIC = "images.raw"
_MAX_STEM = 96


@dataclass(frozen=True)
class PublishedFile:
    """A file and the ids of the images queued from it."""

    path: Path
    sha256: str
    image_ids: list[str]
    claim_checked: int = 0


def _image_id(instrument_id: str, path: Path, digest: str, plane: Plane) -> str:
    stem = path.name[:_MAX_STEM]
    suffix = "" if plane.index is None else f"#p{plane.index}"
    return f"{instrument_id}/{stem}@{digest[:16]}{suffix}"


def image_events(
    path: Path,
    *,
    instrument_id: str,
    store: BlobStore | None,
    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES,
    experiment: str | None = None,
    plate: str | None = None,
    well: str | None = None,
    digest: str | None = None,
) -> list[ImageEvent]:
    """The ImageEvents for every image in ``path``; raises :class:`producers.files.ImageFileError`.

    An image the contract refuses (smaller than 16 px a side, too large) is refused here with the
    contract's reason, so a watcher records the file as refused instead of stopping.
    """
    digest = digest or file_sha256(path)
    when = acquired_at(path)
    events = []
    for plane in read_planes(path):
        try:
            event = image_event(
                plane.pixels,
                store=store,
                threshold_bytes=threshold_bytes,
                channels=plane.channels,
                image_id=_image_id(instrument_id, path, digest, plane),
                instrument_id=instrument_id,
                acquired_at=when,
                pixel_size_um=plane.pixel_size_um,
                experiment=experiment,
                plate=plate,
                well=well,
                source=str(path.resolve()),
            )  # fmt: skip
        except ValidationError as exc:
            reason = "; ".join(error["msg"] for error in exc.errors())
            where = "" if plane.index is None else f" plane {plane.index}"
            raise ImageFileError(f"{path}{where}: not a valid image: {reason}") from exc
        events.append(event)
    return events


@dataclass
class FilePublisher:
    """Queue the images of files on an :class:`EventProducer`; the caller flushes (and learns of losses).

    ``store`` receives images whose compressed pixels exceed ``threshold_bytes`` (claim check);
    without a store every image goes inline, which the topic's 8 MiB message limit bounds.
    """

    producer: EventProducer
    instrument_id: str
    store: BlobStore | None
    threshold_bytes: int = DEFAULT_THRESHOLD_BYTES
    topic: str = IMAGE_TOPIC
    experiment: str | None = None
    plate: str | None = None
    well: str | None = None

    def events_for(self, path: Path, *, digest: str | None = None) -> list[ImageEvent]:
        """The events for ``path`` without sending them (the watcher checks the file did not change)."""
        return image_events(
            path, instrument_id=self.instrument_id, store=self.store, threshold_bytes=self.threshold_bytes,
            experiment=self.experiment, plate=self.plate, well=self.well, digest=digest,
        )  # fmt: skip

    def send(self, path: Path, digest: str, events: list[ImageEvent]) -> PublishedFile:
        """Queue ``events`` (from :meth:`events_for`) on the producer."""
        for event in events:
            self.producer.send(self.topic, event, key_field="instrument_id")
        return PublishedFile(
            path, digest, [e.image_id for e in events], claim_checked=sum(e.blob is not None for e in events)
        )

    def publish(self, path: Path) -> PublishedFile:
        """Queue every image of ``path``; :class:`producers.files.ImageFileError` if it cannot be read."""
        digest = file_sha256(path)
        return self.send(path, digest, self.events_for(path, digest=digest))
