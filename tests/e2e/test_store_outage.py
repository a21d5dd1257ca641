"""A ClickHouse outage pauses the worker's sink; when the server is back, every image is stored once."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.store.server_process import ClickHouseServerProcess
from tests.e2e.harness import StoreReader, WorkerProcess, image_events, image_records, publish, wait_for
from tests.fixtures.clickhouse import with_database

N = 24


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.clickhouse_server
def test_a_store_outage_pauses_the_sink_and_loses_nothing(
    broker: str, served_blob_url: str, clickhouse_server_process: ClickHouseServerProcess, tmp_path: Path
) -> None:
    store_url = with_database(clickhouse_server_process.url, "outage")
    worker = WorkerProcess(tmp_path, bootstrap_servers=broker, blob_url=served_blob_url, store_url=store_url,
                           name="e2e-outage", web=False, args=["--agents", "fingerprint,segment,sink"]).start()
    reader = StoreReader(store_url)
    events = image_events(N, size=64, seed=8, prefix="out")
    try:
        publish(broker, image_records(events[: N // 2]))
        assert wait_for(lambda: reader.count("predictions")[0] >= N // 2, 240, interval=1.0)

        clickhouse_server_process.stop()
        publish(broker, image_records(events[N // 2 :]))
        assert wait_for(lambda: "sink_store_unavailable" in worker.log_text(), 120, interval=1.0)
        assert worker.process.running, "the worker died with its store"
        # Restarted from the test's main thread: the server dies with the thread that spawned it.
        clickhouse_server_process.start()

        assert wait_for(lambda: reader.count("predictions")[0] >= N and reader.count("fingerprints")[0] >= N,
                        240, interval=1.0)
        assert reader.count("predictions") == (N, N)
        assert reader.count("fingerprints") == (N, N)
        assert reader.count("images") == (N, N)
        assert "sink_store_recovered" in worker.log_text()
    finally:
        worker.stop()
