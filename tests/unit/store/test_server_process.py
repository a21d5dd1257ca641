"""The server launcher says what to do when there is no clickhouse-server to launch."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from consumers.store.server_process import ClickHouseServerMissing, ClickHouseServerProcess, free_port


def test_a_missing_binary_is_reported_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ClickHouseServerMissing, match="DRIFTSCOPE_TEST_CLICKHOUSE_URL"):
        ClickHouseServerProcess(tmp_path, binary=tmp_path / "no-such-clickhouse-server")


def test_a_free_port_can_be_bound_on_loopback() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert sock.getsockname() == ("127.0.0.1", port)
