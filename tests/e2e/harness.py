"""A running pipeline for end-to-end tests: worker processes, a publisher, and a store reader.

Workers run as real ``driftscope worker`` processes (the command an operator runs), configured
through the environment like production. In embedded mode the worker's sink owns the chDB
directory, so the test reads the store through the worker's loopback query page; with a
ClickHouse server it connects directly.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from consumers.store import Row, open_store
from driftscope.supervisor import CommandProcess
from driftscope.tansu import free_port
from models.data.synthetic import SyntheticSpec, generate_batch
from models.registry import ARTIFACTS_DIR, Registry, RegistryError
from schemas.blobstore import BlobStore
from schemas.claimcheck import image_event
from schemas.codec import encode
from schemas.events import ImageEvent, utcnow

__all__ = [
    "ARTIFACTS_ENV",
    "StoreReader",
    "WorkerProcess",
    "artifacts_dir",
    "bootstrap_models",
    "image_events",
    "image_records",
    "malformed_frames",
    "publish",
    "wait_for",
]

#: Serve other model artifacts than the shipped baseline (a directory with a manifest.json).
ARTIFACTS_ENV = "DRIFTSCOPE_TEST_ARTIFACTS"


def artifacts_dir() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or ARTIFACTS_DIR)


def bootstrap_models(blob_url: str) -> Registry:
    """A registry on ``blob_url`` serving the baseline models (skips the test if none are shipped)."""
    import pytest

    registry = Registry(BlobStore(blob_url))
    try:
        registry.bootstrap_from_baseline(artifacts_dir())
    except RegistryError as exc:
        pytest.skip(f"no baseline models to serve: {exc}")
    return registry


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class WorkerProcess:
    """``driftscope worker`` in a child process, with its log and status file under ``home``."""

    def __init__(
        self,
        home: Path,
        *,
        bootstrap_servers: str,
        blob_url: str,
        store_url: str,
        name: str,
        args: Sequence[str] = (),
        web: bool = True,
    ) -> None:
        self.home = home
        self.name = name
        self.web_port = free_port() if web else None
        env = {
            **os.environ,
            "DRIFTSCOPE_HOME": str(home),
            "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
            "DRIFTSCOPE_BLOB_URL": blob_url,
            "DRIFTSCOPE_CLICKHOUSE_URL": store_url,
            "DRIFTSCOPE_LOG_LEVEL": "INFO",
        }
        argv = [str(Path(sys.executable).with_name("driftscope")), "worker", "--name", name, *args]
        if self.web_port is not None:
            argv += ["--web-port", str(self.web_port)]
        self.process = CommandProcess(name, argv, home / f"{name}.log", env=env, ready=self._ready)

    @property
    def status_path(self) -> Path:
        return self.home / "workers" / f"{self.name}.json"

    def _ready(self) -> bool:
        if self.web_port is None:
            return self.status_path.exists()
        try:
            with urllib.request.urlopen(f"{self.url}/driftscope/counters/", timeout=2):
                return True
        except (OSError, urllib.error.URLError):
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, timeout: float = 120.0) -> WorkerProcess:
        self.process.start(timeout)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.process.stop(timeout)

    def counters(self) -> dict[str, Any]:
        """The agents' counters, from the web page when there is one, else the status file."""
        if self.web_port is not None:
            with urllib.request.urlopen(f"{self.url}/driftscope/counters/", timeout=5) as response:
                return dict(json.loads(response.read())["agents"])
        return dict(json.loads(self.status_path.read_text())["agents"])

    def log_text(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def peak_rss(self) -> int:
        """The worker's peak resident memory so far, in bytes: the kernel's ``VmHWM`` catches every
        spike, however short, where sampling the current RSS would miss one between samples."""
        pid = self.process.pid
        assert pid is not None, "the worker was never started"
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmHWM in /proc/{pid}/status")


class StoreReader:
    """Read-only queries: through a worker's loopback page (embedded chDB) or straight to a server."""

    def __init__(self, store_url: str, worker: WorkerProcess | None = None) -> None:
        self.store_url = store_url
        self.worker = worker

    def query(self, sql: str) -> list[Row]:
        if self.store_url.startswith("chdb://"):
            assert self.worker is not None, "an embedded store is read through the worker that owns it"
            url = f"{self.worker.url}/driftscope/query/?" + urllib.parse.urlencode({"sql": sql})
            with urllib.request.urlopen(url, timeout=30) as response:
                return list(json.loads(response.read())["rows"])
        with open_store(self.store_url, readonly=True) as store:
            return store.query(sql)

    def count(self, table: str) -> tuple[int, int]:
        """(rows, distinct image ids) of ``table`` after deduplication."""
        row = self.query(f"SELECT count() AS n, uniqExact(image_id) AS u FROM {table} FINAL")[0]
        return int(row["n"]), int(row["u"])


def image_events(
    n: int, *, size: int = 64, seed: int = 0, instruments: int = 3, prefix: str = "img"
) -> list[ImageEvent]:
    """``n`` synthetic images spread over ``instruments`` instruments, inline in the events."""
    images, _ = generate_batch(SyntheticSpec(size=(size, size)), n, seed)
    return [
        image_event(pixels, store=None, image_id=f"{prefix}-{i:05d}", instrument_id=f"scope-{i % instruments}",
                    acquired_at=utcnow())
        for i, pixels in enumerate(images)
    ]


def publish(bootstrap_servers: str, records: Iterable[tuple[str, bytes | None, bytes]]) -> int:
    """Produce (topic, key, value) records and wait for every delivery."""
    producer = Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 5, "message.max.bytes": 16 << 20})
    count = 0
    for topic, key, value in records:
        producer.produce(topic, key=key, value=value)
        count += 1
        producer.poll(0)
    assert producer.flush(60) == 0, "some records were not delivered"
    return count


def image_records(events: Iterable[ImageEvent]) -> list[tuple[str, bytes | None, bytes]]:
    return [("images.raw", e.instrument_id.encode(), encode(e)) for e in events]


_PREFIX = struct.Struct(">4sI")


def malformed_frames(template: ImageEvent) -> dict[str, tuple[bytes, str]]:
    """Broken ``images.raw`` values, each with a word its dead-letter reason must contain.

    ``template`` must carry uint16 pixels inline.
    """
    assert template.pixels is not None and template.dtype == "uint16"
    frame = encode(template)
    _, length = _PREFIX.unpack_from(frame)
    meta = json.loads(frame[_PREFIX.size:_PREFIX.size + length])
    payload = frame[_PREFIX.size + length:]

    def reframe(changes: dict[str, Any], body: bytes = payload) -> bytes:
        header = json.dumps({**meta, **changes}).encode()
        return _PREFIX.pack(b"DSF1", len(header)) + header + body

    empty = {"pixels": {**meta["_binary"]["pixels"], "shape": [0, template.shape[1]], "length": 0}}
    return {
        "garbage": (b"\x89PNG\r\n\x1a\n this is not a driftscope frame", "not a driftscope frame"),
        "schema_version": (reframe({"schema_version": 99}), "schema version"),
        "truncated": (frame[: _PREFIX.size + length + len(payload) // 2], "truncated"),
        "wrong_dtype": (reframe({"dtype": "uint8"}), "dtype"),
        "empty_image": (reframe({"shape": [0, template.shape[1]], "_binary": empty}, b""), "shape"),
        "empty_message": (b"", "empty"),
    }

