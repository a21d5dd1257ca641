"""The store against a clickhouse-server run like a production one: a password and a TLS native port.

The server is the real Debian clickhouse-server with a users.xml password (stored hashed) and
``tcp_port_secure`` serving a certificate from a CA made for this test session. The client side is
exactly what an operator configures: the store URL (``clickhouses://user:pass@host:port/db`` with
``ca_certs=``), through the settings and the ``query`` command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from consumers.store import StoreAuthenticationError, StoreError, StoreUnavailable, open_store
from consumers.store.server_process import ClickHouseServerProcess
from driftscope.cli import app
from driftscope.settings import load_settings
from tests.fixtures.clickhouse import start_clickhouse_server, with_database
from tests.fixtures.tls import Pki
from tests.integration.producers.test_cli import _seed as seed

pytestmark = pytest.mark.clickhouse_server

# Characters that must survive URL quoting: '/', ':' and '@' all mean something in a URL.
PASSWORD = "ch-Pw/7:x@y-55e1"
WRONG_PASSWORD = "not-the-pw-0c4d"


@pytest.fixture(scope="module")
def secured_server(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ClickHouseServerProcess]:
    """A server whose ``default`` user needs PASSWORD, with a TLS port serving our CA's certificate."""
    server = start_clickhouse_server(
        tmp_path_factory.mktemp("clickhouse-tls"), password=PASSWORD,
        certificate=pki.server_cert, private_key=pki.server_key,
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def _tls_url(server: ClickHouseServerProcess, ca: Path, *, password: str | None = PASSWORD) -> str:
    user = "default" if password is None else f"default:{quote(password, safe='')}"
    port = server.tcp_port_secure
    return f"clickhouses://{user}@127.0.0.1:{port}/default?ca_certs={ca}"


def test_the_password_is_stored_hashed_not_in_clear(secured_server: ClickHouseServerProcess) -> None:
    users = (secured_server.root / "users.xml").read_text()
    assert PASSWORD not in users and "<password_sha256_hex>" in users


def test_store_writes_and_reads_over_tls_with_the_password(secured_server: ClickHouseServerProcess, pki: Pki) -> None:
    url = with_database(_tls_url(secured_server, pki.ca), "tls_roundtrip")
    seed(url)  # migrate + insert, all over TLS
    with open_store(url) as store:
        rows = store.query("SELECT instrument_id, evidence FROM drift_events")
    assert rows == [{"instrument_id": "scope-q", "evidence": ["a", "b"]}]
    # The port it used speaks only TLS: a plain native client there gets no answer it can read.
    plain = with_database(url.replace("clickhouses://", "clickhouse://", 1).split("?")[0], "tls_roundtrip")
    with open_store(plain) as store, pytest.raises(StoreUnavailable):
        store.query("SELECT 1 AS one")


def test_query_command_reads_over_tls_from_the_settings(
    secured_server: ClickHouseServerProcess, pki: Pki, tmp_path: Path
) -> None:
    url = _tls_url(secured_server, pki.ca)
    env = {"DRIFTSCOPE_HOME": str(tmp_path / "home"), "DRIFTSCOPE_CLICKHOUSE_URL": url}
    runner = CliRunner()
    result = runner.invoke(app, ["query", "--json", "SELECT 41 + 1 AS answer"], env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == '[{"answer": 42}]'
    # Read-only holds over TLS as well: the server's readonly=1 refuses DDL.
    result = runner.invoke(app, ["query", "CREATE DATABASE sneaky_tls"], env=env)
    assert result.exit_code == 1
    with open_store(url) as store:
        assert "sneaky_tls" not in {row["name"] for row in store.query("SELECT name FROM system.databases")}


@pytest.mark.parametrize("password", [WRONG_PASSWORD, None], ids=["wrong-password", "no-password"])
def test_refused_credentials_are_a_clear_error_that_names_no_password(
    secured_server: ClickHouseServerProcess, pki: Pki, password: str | None
) -> None:
    with open_store(_tls_url(secured_server, pki.ca, password=password)) as store, \
            pytest.raises(StoreAuthenticationError) as refused:
        store.query("SELECT 1 AS one")
    message = str(refused.value)
    assert "password" in message and "DRIFTSCOPE_CLICKHOUSE_URL" in message
    assert refused.value.code in (193, 194)
    assert WRONG_PASSWORD not in message and PASSWORD not in message
    # A sink pauses on it (StoreUnavailable) rather than dead-lettering records that did nothing wrong.
    assert isinstance(refused.value, StoreUnavailable)


def test_query_command_with_a_wrong_password_prints_no_password(
    secured_server: ClickHouseServerProcess, pki: Pki, tmp_path: Path
) -> None:
    env = {"DRIFTSCOPE_HOME": str(tmp_path / "home"),
           "DRIFTSCOPE_CLICKHOUSE_URL": _tls_url(secured_server, pki.ca, password=WRONG_PASSWORD)}
    result = CliRunner().invoke(app, ["query", "SELECT 1"], env=env)
    assert result.exit_code == 3
    assert "refused the credentials" in result.output
    assert WRONG_PASSWORD not in result.output and quote(WRONG_PASSWORD, safe="") not in result.output


@pytest.mark.parametrize("trust", ["stranger-ca", "system-store"])
def test_a_certificate_from_an_untrusted_ca_is_refused(
    secured_server: ClickHouseServerProcess, pki: Pki, trust: str
) -> None:
    url = _tls_url(secured_server, pki.stranger_ca)
    if trust == "system-store":
        url = url.split("?")[0]  # no ca_certs: only the system's CAs, which never signed ours
    with open_store(url) as store, pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED") as refused:
        store.query("SELECT 1 AS one")
    assert PASSWORD not in str(refused.value)


def test_a_certificate_for_another_host_is_refused(tmp_path: Path, pki: Pki) -> None:
    """Right CA, wrong identity: the client checks the host name, not only the signature."""
    server = start_clickhouse_server(tmp_path / "clickhouse", password=PASSWORD,
                                     certificate=pki.wrong_host_cert, private_key=pki.wrong_host_key)  # fmt: skip
    try:
        with open_store(_tls_url(server, pki.ca)) as store, \
                pytest.raises(StoreError, match=r"CERTIFICATE_VERIFY_FAILED.*IP address mismatch"):
            store.query("SELECT 1 AS one")
    finally:
        server.stop()


def test_settings_carry_the_tls_url_without_showing_the_password(pki: Pki, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"clickhouses://default:{quote(PASSWORD, safe='')}@127.0.0.1:9440/default?ca_certs={pki.ca}"
    monkeypatch.setenv("DRIFTSCOPE_CLICKHOUSE_URL", url)
    settings = load_settings(home=tmp_path)
    assert settings.resolved_clickhouse_url == url
    assert quote(PASSWORD, safe="") not in repr(settings)
