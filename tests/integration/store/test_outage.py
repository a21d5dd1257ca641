"""Backpressure: a down or frozen ClickHouse server surfaces as StoreUnavailable, and the same
store works again once the server is back, with the rows written before the outage intact."""

from __future__ import annotations

import pytest

from consumers.store import StoreUnavailable, open_store
from consumers.store.queries import count_rows
from consumers.store.rows import rows_by_table
from consumers.store.server_process import ClickHouseServerProcess
from schemas.events import Event

pytestmark = pytest.mark.clickhouse_server


def test_down_server_raises_store_unavailable_until_it_is_back(
    clickhouse_server_process: ClickHouseServerProcess, sample_events: list[Event]
) -> None:
    server = clickhouse_server_process
    images = rows_by_table(sample_events)["images"]
    with open_store(server.url) as store:
        store.migrate()
        store.insert("images", images)
        server.kill()
        with pytest.raises(StoreUnavailable) as down:
            store.query("SELECT 1")
        assert down.value.retry_after > 0
        with pytest.raises(StoreUnavailable):
            store.insert("images", images)
        server.start()
        assert count_rows(store, "images") == len(images)
        assert store.insert("images", images) == len(images)
        assert count_rows(store, "images") == len(images)


def test_frozen_server_times_out_as_store_unavailable(clickhouse_server_process: ClickHouseServerProcess) -> None:
    server = clickhouse_server_process
    with open_store(server.url + "?send_receive_timeout=1&sync_request_timeout=1") as store:
        store.migrate()
        server.pause()
        try:
            with pytest.raises(StoreUnavailable) as slow:
                store.query("SELECT count() AS n FROM images")
            assert slow.value.code is None or slow.value.code == 209
        finally:
            server.resume()
        assert store.query("SELECT count() AS n FROM images") == [{"n": 0}]
