"""Watch an instrument's output folder and publish each new image file once, also across restarts.

Polling, not inotify: instrument PCs write to SMB/NFS shares where change notifications are not
delivered, and a scan of a few thousand names per second costs nothing.

- **Partially written files are not read.** A file is ready when its size and mtime have stayed
  the same for ``settle_s`` seconds of observation; it is stat'ed again after reading, and a file
  that changed while it was read is left for the next scan.
- **Once, across restarts.** A ledger (append-only JSON lines, fsync'ed, next to the watcher's
  state) records every file handled — published or refused — with its size, mtime and sha256.
  A file is recorded only after the broker acknowledged all of its images, so a crash in between
  publishes it again on restart with the *same* image ids (see :mod:`producers.publish`), which the
  idempotent sinks deduplicate. A file whose mtime changes but whose bytes do not (``touch``, a
  copy that preserved nothing) is not published again; a file rewritten with new bytes is.
- **One watcher per ledger.** The ledger is locked (``flock``) while a watcher runs.
- **Bad files do not stop the watcher.** A stable file that cannot be read is recorded as refused
  with the reason and retried only if it changes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

from producers.files import ImageFileError, file_sha256, is_image_file
from producers.kafka import PublishError
from producers.publish import FilePublisher, PublishedFile

__all__ = ["FolderWatcher", "LedgerBusy", "LedgerEntry", "ScanResult", "WatchLedger"]

log = logging.getLogger(__name__)


class LedgerBusy(RuntimeError):
    """Another watcher holds the ledger (two watchers on one folder would publish files twice)."""


@dataclass(frozen=True)
class LedgerEntry:
    """One handled file, by its path relative to the watched folder."""

    path: str
    size: int
    mtime_ns: int
    sha256: str
    status: Literal["published", "refused"]
    image_ids: list[str] = field(default_factory=list)
    error: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class WatchLedger:
    """The append-only record of handled files; the last line for a path wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise LedgerBusy(f"another watcher is using {path}; stop it first") from None
        self._entries: dict[str, LedgerEntry] = {}
        self._file.seek(0)
        for number, line in enumerate(self._file, 1):
            try:
                entry = LedgerEntry(**json.loads(line))
            except (ValueError, TypeError) as exc:
                # A torn last line from a crash mid-write: that file will simply be handled again.
                log.warning("%s line %d unreadable (%s); ignoring it", path, number, exc)
                continue
            self._entries[entry.path] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, relative: str) -> LedgerEntry | None:
        return self._entries.get(relative)

    def record(self, entry: LedgerEntry) -> None:
        """Append ``entry`` durably (flushed and fsync'ed before returning)."""
        self._file.write(json.dumps(asdict(entry), separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._entries[entry.path] = entry

    def close(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


@dataclass
class ScanResult:
    """What one scan did."""

    published: list[PublishedFile] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)
    waiting: int = 0


@dataclass
class _Observed:
    size: int
    mtime_ns: int
    stable_since: float


class FolderWatcher:
    """Publishes the ready, not yet handled image files under ``directory`` through ``publisher``."""

    def __init__(
        self,
        directory: Path,
        publisher: FilePublisher,
        ledger: WatchLedger,
        *,
        settle_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a folder")
        self.directory = directory
        self.publisher = publisher
        self.ledger = ledger
        self.settle_s = settle_s
        self._clock = clock
        self._observed: dict[str, _Observed] = {}

    def scan(self) -> ScanResult:
        """Publish every file that became ready since the last scan; raises PublishError on lost messages."""
        result = ScanResult()
        ready = self._ready_files(result)
        pending: list[tuple[str, os.stat_result, PublishedFile]] = []
        for relative, path, before in ready:
            try:
                handled = self._publish_one(relative, path, before, result)
            except FileNotFoundError:
                self._observed.pop(relative, None)  # moved away while we looked at it
                continue
            if handled is not None:
                pending.append((relative, before, handled))
        if pending:
            self.publisher.producer.flush()  # PublishError: nothing is recorded, all retried next scan
        for relative, stat, published in pending:
            self.ledger.record(LedgerEntry(
                relative, stat.st_size, stat.st_mtime_ns, published.sha256, "published", published.image_ids,
            ))  # fmt: skip
            self._observed.pop(relative, None)
            result.published.append(published)
        return result

    def _ready_files(self, result: ScanResult) -> list[tuple[str, Path, os.stat_result]]:
        now = self._clock()
        ready = []
        seen = set()
        for path in sorted(self.directory.rglob("*")):
            if not is_image_file(path):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file():
                continue
            relative = path.relative_to(self.directory).as_posix()
            seen.add(relative)
            done = self.ledger.get(relative)
            if done is not None and (done.size, done.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
                continue
            observed = self._observed.get(relative)
            if observed is None or (observed.size, observed.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                self._observed[relative] = _Observed(stat.st_size, stat.st_mtime_ns, now)
                result.waiting += 1
            elif now - observed.stable_since >= self.settle_s:
                ready.append((relative, path, stat))
            else:
                result.waiting += 1
        for gone in set(self._observed) - seen:
            del self._observed[gone]
        return ready

    def _publish_one(
        self, relative: str, path: Path, before: os.stat_result, result: ScanResult
    ) -> PublishedFile | None:
        digest = file_sha256(path)
        done = self.ledger.get(relative)
        if done is not None and done.sha256 == digest:
            # Same bytes, new mtime: remember the new stat so the file is not hashed on every scan.
            self.ledger.record(LedgerEntry(relative, before.st_size, before.st_mtime_ns, digest, done.status,
                                           done.image_ids, done.error))
            return None
        try:
            events = self.publisher.events_for(path, digest=digest)
        except ImageFileError as exc:
            if self._changed(path, before):
                return None
            log.warning("refusing %s: %s", path, exc)
            self.ledger.record(LedgerEntry(relative, before.st_size, before.st_mtime_ns, digest, "refused",
                                           error=str(exc)))
            result.refused.append((path, str(exc)))
            return None
        if self._changed(path, before):
            return None
        return self.publisher.send(path, digest, events)

    def _changed(self, path: Path, before: os.stat_result) -> bool:
        after = path.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            log.info("%s changed while being read; waiting for it to settle", path)
            self._observed.pop(path.relative_to(self.directory).as_posix(), None)
            return True
        return False

    def run(
        self,
        stop: threading.Event,
        *,
        poll_s: float = 1.0,
        on_scan: Callable[[ScanResult], None] = lambda result: None,
        retry_s: float = 10.0,
    ) -> None:
        """Scan every ``poll_s`` seconds until ``stop`` is set; a failed publish is retried after ``retry_s``."""
        while not stop.is_set():
            try:
                on_scan(self.scan())
            except PublishError as exc:
                log.error("publishing failed, retrying in %.0f s: %s", retry_s, exc)
                stop.wait(retry_s)
                continue
            stop.wait(poll_s)
