"""The folder watcher on a real broker: files dropped (one written slowly) are each published once,
also after the watcher restarts. Checked with a plain confluent-kafka consumer."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from models.data.dataset import write_image
from producers.kafka import EventProducer
from producers.publish import FilePublisher
from producers.watcher import FolderWatcher, LedgerBusy, WatchLedger
from schemas.blobstore import BlobStore
from schemas.claimcheck import image_pixels
from schemas.codec import decode
from schemas.events import ImageEvent
from schemas.topics import Topic
from tests.fixtures.broker import create_topics
from tests.integration.producers.reading import read_topic

pytestmark = pytest.mark.broker


def _image(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, size=(size, size)).astype(np.uint16)


def _tiff_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    return buffer.getvalue()


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def topic_name(tansu_broker: str) -> str:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    create_topics(tansu_broker, [Topic(name, 3, "instrument_id", "watcher test")])
    return name


@pytest.fixture
def publisher(tansu_broker: str, topic_name: str, tmp_path: Path) -> Iterator[FilePublisher]:
    producer = EventProducer({"bootstrap.servers": tansu_broker})
    yield FilePublisher(producer, "scope-w", BlobStore(tmp_path / "blobs"), threshold_bytes=4096, topic=topic_name)
    producer.flush()


def _published(bootstrap: str, topic_name: str, expected: int, store: BlobStore) -> dict[str, np.ndarray]:
    """image source file name -> pixels, read by a plain consumer; duplicates fail the test."""
    messages = read_topic(bootstrap, topic_name, expected)  # a duplicate would show up as an extra message
    found: dict[str, np.ndarray] = {}
    for message in messages:
        assert message.key() == b"scope-w"
        event = decode(message.value(), expected=ImageEvent)
        assert isinstance(event, ImageEvent) and event.source is not None
        name = Path(event.source).name
        assert name not in found, f"{name} published twice"
        found[name] = image_pixels(event, store)
    return found


def test_slowly_written_file_is_read_only_when_complete(
    tansu_broker: str, topic_name: str, publisher: FilePublisher, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_image(inbox / "a.tif", _image(1))
    write_image(inbox / "b.png", _image(2).astype(np.uint8))
    slow = _tiff_bytes(_image(3, size=128))
    chunks = [slow[i : i + len(slow) // 4 + 1] for i in range(0, len(slow), len(slow) // 4 + 1)]
    clock = ManualClock()
    ledger = WatchLedger(tmp_path / "ledger.jsonl")
    watcher = FolderWatcher(inbox, publisher, ledger, settle_s=2.0, clock=clock)

    with (inbox / "c.tif").open("wb") as fh:
        fh.write(chunks[0])
        fh.flush()
        assert watcher.scan().published == []  # first sight: nothing has settled yet
        for chunk in chunks[1:]:
            clock.now += 3.0
            fh.write(chunk)
            fh.flush()
            result = watcher.scan()
            assert "c.tif" not in {p.path.name for p in result.published}
            assert result.refused == []
    clock.now += 3.0
    assert [p.path.name for p in watcher.scan().published] == ["c.tif"]  # unchanged for 3 s since the last write
    assert watcher.scan().published == []
    ledger.close()

    store = publisher.store
    assert store is not None
    found = _published(tansu_broker, topic_name, 3, store)
    assert sorted(found) == ["a.tif", "b.png", "c.tif"]
    np.testing.assert_array_equal(found["c.tif"], _image(3, size=128))


def _run_until(watcher: FolderWatcher, ledger: WatchLedger, count: int, timeout: float = 60.0) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), kwargs={"poll_s": 0.1})
    thread.start()
    deadline = time.monotonic() + timeout
    while len(ledger) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join()
    assert len(ledger) == count


def test_each_file_published_once_across_a_restart(
    tansu_broker: str, topic_name: str, publisher: FilePublisher, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    write_image(inbox / "1.tif", _image(11))
    write_image(inbox / "2.ome.tif", _image(12), pixel_size_um=0.2)
    slow = _tiff_bytes(_image(13, size=96))

    ledger = WatchLedger(tmp_path / "ledger.jsonl")
    with pytest.raises(LedgerBusy):
        WatchLedger(tmp_path / "ledger.jsonl")

    def write_slowly() -> None:
        with (inbox / "3.tif").open("wb") as fh:
            for i in range(0, len(slow), 2048):
                fh.write(slow[i : i + 2048])
                fh.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    _run_until(FolderWatcher(inbox, publisher, ledger, settle_s=1.0), ledger, 3)
    writer.join()
    ledger.close()

    # Restart: a new watcher, the same ledger; one new file, and an old file touched (same bytes).
    write_image(inbox / "4.png", _image(14).astype(np.uint8))
    (inbox / "1.tif").touch()
    ledger = WatchLedger(tmp_path / "ledger.jsonl")
    assert len(ledger) == 3
    _run_until(FolderWatcher(inbox, publisher, ledger, settle_s=1.0), ledger, 4)
    ledger.close()

    store = publisher.store
    assert store is not None
    found = _published(tansu_broker, topic_name, 4, store)
    assert sorted(found) == ["1.tif", "2.ome.tif", "3.tif", "4.png"]
    np.testing.assert_array_equal(found["3.tif"], _image(13, size=96))


def test_unreadable_file_is_refused_once_and_does_not_stop_the_watcher(
    publisher: FilePublisher, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "broken.tif").write_bytes(b"II*\0 not really a tiff")
    clock = ManualClock()
    ledger = WatchLedger(tmp_path / "ledger.jsonl")
    watcher = FolderWatcher(inbox, publisher, ledger, settle_s=1.0, clock=clock)
    watcher.scan()
    clock.now += 2.0
    result = watcher.scan()
    assert [p.name for p, _ in result.refused] == ["broken.tif"]
    clock.now += 2.0
    assert watcher.scan().refused == []
    entry = ledger.get("broken.tif")
    assert entry is not None and entry.status == "refused" and entry.error
    ledger.close()
