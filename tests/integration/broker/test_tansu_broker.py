"""The Tansu broker process itself: start, stop, ports, environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from driftscope.supervisor import pid_alive
from driftscope.tansu import TansuBroker, TansuError, broker_answers
from tests.fixtures.broker import producer_config

pytestmark = pytest.mark.broker


def test_broker_answers_then_exits_cleanly_on_stop_with_a_client_connected(tmp_path: Path) -> None:
    with TansuBroker(tmp_path) as broker:
        pid = broker.pid
        assert pid is not None and pid_alive(pid)
        assert broker_answers(broker.bootstrap_servers, broker.cluster_id)
        assert broker.bootstrap_servers.startswith("127.0.0.1:")
        producer = Producer(producer_config(broker.bootstrap_servers, log_level=0))
        producer.produce("connected", value=b"x")
        assert producer.flush(10) == 0
        # On SIGTERM Tansu would wait ~5 s for the connected client and be killed here; the
        # stop signal it gets (SIGINT) makes it exit on its own, with code 0.
        broker.stop(timeout=3)
    assert not pid_alive(pid)
    assert broker.poll() == 0, "the broker was killed instead of exiting on its stop signal"
    assert "listening on: tcp://" + broker.bootstrap_servers in broker.log_path.read_text()


def test_a_taken_fixed_port_is_an_error_not_a_stranger(tmp_path: Path) -> None:
    with TansuBroker(tmp_path / "first") as first:
        second = TansuBroker(tmp_path / "second", first.port)
        # Tansu exits 0 after a panic on AddrInUse; the other broker on that port must not
        # be mistaken for ours (different cluster id).
        with pytest.raises(TansuError, match="did not start"):
            second.start(timeout=10)
        assert broker_answers(first.bootstrap_servers, first.cluster_id)


def test_restart_comes_back_on_the_same_port(tmp_path: Path) -> None:
    with TansuBroker(tmp_path) as broker:
        address = broker.bootstrap_servers
        broker.stop()
        broker.start()
        assert broker.bootstrap_servers == address
        assert broker_answers(address, broker.cluster_id)


def test_tansu_environment_variables_do_not_leak_into_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tansu reads SCHEMA_REGISTRY as the default of --schema-registry; this one would make it exit 1.
    monkeypatch.setenv("SCHEMA_REGISTRY", f"file://{tmp_path}/missing")
    with TansuBroker(tmp_path) as broker:
        assert broker_answers(broker.bootstrap_servers, broker.cluster_id)
