"""The server launcher says what to do when there is no clickhouse-server to launch."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumers.store.server_process import ClickHouseServerMissing, ClickHouseServerProcess, free_port


def test_a_missing_binary_is_reported_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ClickHouseServerMissing, match="DRIFTSCOPE_TEST_CLICKHOUSE_URL"):
        ClickHouseServerProcess(tmp_path, binary=tmp_path / "no-such-clickhouse-server")


def test_free_ports_are_loopback_ports_nobody_holds() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
