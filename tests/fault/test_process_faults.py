"""Real processes, real faults: a worker SIGKILLed mid-stream, the broker frozen for 30 s.

Each test publishes N images, injects the fault while they stream, and counts what reached
ClickHouse (a real server): every image exactly once after deduplication, nothing lost.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from driftscope.tansu import TansuBroker
from tests.e2e.harness import (
    StoreReader,
    WorkerProcess,
    bootstrap_models,
    image_events,
    image_records,
    publish,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.clickhouse_server]

N = 30


def _worker(home: Path, broker: str, blob_url: str, store_url: str, name: str) -> WorkerProcess:
    return WorkerProcess(home, bootstrap_servers=broker, blob_url=blob_url, store_url=store_url, name=name,
                         web=False, args=["--agents", "fingerprint,segment,sink"])


def _all_stored(reader: StoreReader) -> bool:
    return reader.count("predictions")[1] >= N and reader.count("fingerprints")[1] >= N


def test_a_worker_killed_mid_stream_and_restarted_loses_nothing(
    tansu: TansuBroker, served_blob_url: str, server_url: str, tmp_path: Path
) -> None:
    broker = tansu.bootstrap_servers
    reader = StoreReader(server_url)
    events = image_events(N, size=64, seed=21, prefix="kill")
    first = _worker(tmp_path, broker, served_blob_url, server_url, "victim").start()
    try:
        publish(broker, image_records(events))
        assert wait_for(lambda: reader.count("predictions")[1] >= 3, 240, interval=0.5)
        pid = first.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # mid-stream: some images processed, some not, offsets partly committed
        first.process.poll()
    finally:
        first.stop()
    second = _worker(tmp_path, broker, served_blob_url, server_url, "successor").start()
    try:
        assert wait_for(lambda: _all_stored(reader), 300, interval=1.0)
        assert reader.count("predictions") == (N, N)
        assert reader.count("fingerprints") == (N, N)
        assert reader.count("images") == (N, N)
    finally:
        second.stop()


def test_the_broker_frozen_for_30_s_then_resumed_loses_nothing(
    tansu: TansuBroker, served_blob_url: str, server_url: str, tmp_path: Path
) -> None:
    broker = tansu.bootstrap_servers
    reader = StoreReader(server_url)
    events = image_events(N, size=64, seed=22, prefix="freeze")
    worker = _worker(tmp_path, broker, served_blob_url, server_url, "patient").start()
    try:
        publish(broker, image_records(events))
        assert wait_for(lambda: reader.count("predictions")[1] >= 3, 240, interval=0.5)
        assert tansu.pid is not None
        os.kill(tansu.pid, signal.SIGSTOP)
        try:
            time.sleep(30)
            assert worker.process.running, "the worker died while the broker was frozen"
        finally:
            os.kill(tansu.pid, signal.SIGCONT)
        assert wait_for(lambda: _all_stored(reader), 300, interval=1.0)
        assert reader.count("predictions") == (N, N)
        assert reader.count("fingerprints") == (N, N)
        assert worker.process.running
    finally:
        worker.stop()


def test_an_unwritable_blob_store_pauses_the_worker_and_loses_nothing(
    tansu: TansuBroker, server_url: str, tmp_path: Path
) -> None:
    blob_root = tmp_path / "blobs"
    bootstrap_models(str(blob_root))
    # Root ignores permission bits, so block the prefixes the worker writes (archived images, masks)
    # with plain files where directories must go: every write fails with an OSError.
    blockers = [blob_root / "images", blob_root / "masks"]
    for blocker in blockers:
        blocker.write_text("not a directory")
    broker = tansu.bootstrap_servers
    reader = StoreReader(server_url)
    worker = _worker(tmp_path, broker, str(blob_root), server_url, "blocked").start()
    try:
        publish(broker, image_records(image_events(N, size=64, seed=23, prefix="blob")))
        assert wait_for(lambda: "blob_store_unwritable" in worker.log_text(), 240, interval=0.5)
        time.sleep(5)
        assert worker.process.running
        assert reader.count("predictions") == (0, 0)  # nothing half-stored while blobs cannot be written
        for blocker in blockers:
            blocker.unlink()
        assert wait_for(lambda: _all_stored(reader), 300, interval=1.0)
        assert reader.count("predictions") == (N, N)
        assert reader.count("fingerprints") == (N, N)
        assert reader.query("SELECT count() AS n FROM dlq FINAL")[0]["n"] == 0
    finally:
        worker.stop()
