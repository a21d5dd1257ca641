"""Kafka TLS and SASL with clients built from the operator's settings (DRIFTSCOPE_KAFKA__*).

TLS: Tansu 0.6.0 cannot serve TLS itself (see :mod:`driftscope.tansu`), so it runs behind a TLS
terminator with a certificate from a CA made for this session (:mod:`tests.fixtures.tls`) and
advertises the terminator's address. Everything on the client side is real: librdkafka (producer,
consumer, admin, the ``publish`` command) and aiokafka (the Faust worker) do the handshake, check
the CA and the host name, or refuse.

SASL: Tansu with ``--authentication`` runs the SCRAM exchange, but 0.6.0 offers no way to add a
user while authentication is on, so the only outcome it can show is a refusal. These tests prove
that the settings reach the broker's SCRAM check and that a client without SASL is turned away;
a successful SCRAM login needs a real Kafka cluster (docs/operations.md).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from confluent_kafka import Consumer, Producer

from driftscope.commands.clients import Unavailable, kafka_config
from driftscope.kafka_admin import ensure_topics
from driftscope.settings import Settings, load_settings
from driftscope.supervisor import CommandProcess
from driftscope.tansu import TansuBroker, free_port, tansu_binary
from producers.kafka import EventProducer
from schemas.codec import decode
from schemas.events import FingerprintEvent, ImageEvent
from tests.e2e.harness import WorkerProcess, bootstrap_models, wait_for
from tests.fixtures.broker import consume, consumer_config, unique_topic
from tests.fixtures.tls import Pki, TlsTerminator

pytestmark = pytest.mark.broker

SASL_PASSWORD = "sasl-pw-3e9b71"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[tuple[str, str]]:
    """(TLS address clients use, the broker's own plaintext address); the registry's topics exist."""
    port = free_port()
    with TansuBroker(tmp_path_factory.mktemp("tansu-tls"), advertised=f"127.0.0.1:{port}") as broker:
        terminator = TlsTerminator(port, broker.bootstrap_servers, pki.server_cert, pki.server_key).start()
        try:
            ensure_topics({"bootstrap.servers": terminator.address, "security.protocol": "SSL",
                           "ssl.ca.location": str(pki.ca)})  # fmt: skip
            yield terminator.address, broker.bootstrap_servers
        finally:
            terminator.stop()


@pytest.fixture
def tls_bootstrap(tls_broker: tuple[str, str]) -> str:
    return tls_broker[0]


def _tls_env(bootstrap: str, ca: Path) -> dict[str, str]:
    return {
        "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL": "SSL",
        "DRIFTSCOPE_KAFKA__SSL_CA_LOCATION": str(ca),
    }


def _settings(monkeypatch: pytest.MonkeyPatch, home: Path, env: dict[str, str]) -> Settings:
    """Settings exactly as an operator's environment gives them."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(home=home)


def _first_error(conf: dict[str, Any], timeout: float = 15.0) -> str:
    """The first error librdkafka reports for ``conf`` (a handshake or login refusal), or ''."""
    errors: list[str] = []
    producer = Producer({**conf, "log_level": 0, "error_cb": lambda error: errors.append(error.str())})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    return errors[0] if errors else ""


def test_producer_and_consumer_from_settings_round_trip_over_tls(
    tls_bootstrap: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(monkeypatch, tmp_path, _tls_env(tls_bootstrap, pki.ca))
    topic = unique_topic("tls")
    ensure_topics(settings.kafka.librdkafka_config(), [topic])
    conf = kafka_config(settings, topics=(topic.name,))  # what every command uses; checks the broker
    assert conf["ssl.endpoint.identification.algorithm"] == "https"  # host names are checked by default

    with EventProducer(conf) as producer:
        producer.send_raw(topic.name, b"over tls", key=b"scope-tls")
    consumer = Consumer({**consumer_config(tls_bootstrap), **conf})
    consumer.subscribe([topic.name])
    try:
        [record] = consume(consumer, 1)
    finally:
        consumer.close()
    assert (record.key(), record.value()) == (b"scope-tls", b"over tls")


@pytest.mark.parametrize("trust", ["stranger-ca", "system-store"])
def test_a_client_that_does_not_trust_the_ca_is_refused(
    tls_bootstrap: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trust: str
) -> None:
    env = _tls_env(tls_bootstrap, pki.stranger_ca)
    if trust == "system-store":
        del env["DRIFTSCOPE_KAFKA__SSL_CA_LOCATION"]  # only the system's CAs, which never signed ours
    settings = _settings(monkeypatch, tmp_path, env)
    with pytest.raises(Unavailable, match="does not answer"):
        kafka_config(settings)
    assert "certificate verify failed" in _first_error(settings.kafka.librdkafka_config())


def test_a_plaintext_client_gets_nothing_from_the_tls_port(tls_bootstrap: str) -> None:
    assert "brokers are down" in _first_error({"bootstrap.servers": tls_bootstrap})


def test_a_certificate_for_another_host_is_refused(tls_broker: tuple[str, str], pki: Pki) -> None:
    """Right CA, wrong name: refused because of the host-name check, which the settings keep on."""
    impostor = TlsTerminator(free_port(), tls_broker[1], pki.wrong_host_cert, pki.wrong_host_key).start()
    try:
        conf = {"bootstrap.servers": impostor.address, "security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
        assert "certificate verify failed" in _first_error({**conf, "ssl.endpoint.identification.algorithm": "https"})
        # Only the name was wrong: with the host-name check off, the same certificate is accepted.
        assert _first_error({**conf, "ssl.endpoint.identification.algorithm": "none"}, timeout=5) == ""
    finally:
        impostor.stop()


def _image(folder: Path) -> Path:
    path = folder / "tls.tif"
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.random.default_rng(7).integers(0, 4000, (64, 64), dtype=np.uint16))
    return path


def test_publish_command_over_tls(tls_bootstrap: str, pki: Pki, tmp_path: Path) -> None:
    instrument = f"scope-tls-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DRIFTSCOPE_HOME": str(tmp_path / "home"), **_tls_env(tls_bootstrap, pki.ca)}
    published = subprocess.run(
        [sys.executable, "-m", "driftscope", "publish", str(_image(tmp_path)), "-i", instrument, "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["images"] == 1

    conf = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
    consumer = Consumer(consumer_config(tls_bootstrap, **conf))
    consumer.subscribe(["images.raw"])
    try:
        deadline, found = time.monotonic() + 60, []
        while not found and time.monotonic() < deadline:
            events = [decode(m.value() or b"") for m in consume(consumer, 1, timeout=2)]
            found = [e for e in events if isinstance(e, ImageEvent) and e.instrument_id == instrument]
    finally:
        consumer.close()
    assert found, "the published image did not arrive over TLS"


@pytest.mark.slow
def test_worker_consumes_and_produces_over_tls(
    tls_bootstrap: str, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Faust worker (aiokafka, not librdkafka) over TLS: an image in, its fingerprint out."""
    blobs = str(tmp_path / "blobs")
    bootstrap_models(blobs)
    for name, value in _tls_env(tls_bootstrap, pki.ca).items():
        monkeypatch.setenv(name, value)  # WorkerProcess passes the environment on
    worker = WorkerProcess(tmp_path / "home", bootstrap_servers=tls_bootstrap, blob_url=blobs,
                           store_url=f"chdb://{tmp_path / 'chdb'}", name="tls-worker",
                           args=["--agents", "fingerprint"], web=False)  # fmt: skip
    instrument = f"scope-tls-{uuid.uuid4().hex[:6]}"
    worker.start(timeout=180)
    try:
        env = {**os.environ, "DRIFTSCOPE_HOME": str(tmp_path / "publisher"), "DRIFTSCOPE_BLOB_URL": blobs}
        published = subprocess.run(
            [sys.executable, "-m", "driftscope", "publish", str(_image(tmp_path)), "-i", instrument],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        consumer = Consumer(consumer_config(tls_bootstrap, **{"security.protocol": "SSL",
                                                              "ssl.ca.location": str(pki.ca)}))
        consumer.subscribe(["images.fingerprints"])
        fingerprints: list[FingerprintEvent] = []

        def arrived() -> bool:
            for msg in consume(consumer, 1, timeout=2):
                event = decode(msg.value() or b"")
                if isinstance(event, FingerprintEvent) and event.instrument_id == instrument:
                    fingerprints.append(event)
            return bool(fingerprints)

        try:
            if not wait_for(arrived, timeout=180, interval=0):
                pytest.fail(f"no fingerprint over TLS; worker log:\n{worker.log_text()[-3000:]}")
        finally:
            consumer.close()
        assert len(fingerprints[0].latent) > 0
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def authenticating_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tansu with ``--authentication``: every client must log in with SASL first."""
    home, port = tmp_path_factory.mktemp("tansu-sasl"), free_port()
    url = f"tcp://127.0.0.1:{port}"

    def listening() -> bool:  # a metadata probe cannot log in (there are no users), so: the port is open
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    argv = [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/", "--cluster-id", "driftscope-sasl", "--authentication"]
    env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")}
    process = CommandProcess("tansu-sasl", argv, home / "tansu.log", env=env, cwd=home, ready=listening)
    process.start(30)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.stop(10)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_scram_settings_reach_the_brokers_scram_check(
    authenticating_broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    settings = _settings(monkeypatch, tmp_path, {
        "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": authenticating_broker,
        "DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "DRIFTSCOPE_KAFKA__SASL_MECHANISM": mechanism,
        "DRIFTSCOPE_KAFKA__SASL_USERNAME": "scope",
        "DRIFTSCOPE_KAFKA__SASL_PASSWORD": SASL_PASSWORD,
    })  # fmt: skip
    with pytest.raises(Unavailable) as refused:
        kafka_config(settings)
    error = _first_error(settings.kafka.librdkafka_config())
    # The broker ran the SCRAM exchange and looked the user up: the login itself was judged.
    assert "SASL SCRAM authentication failed" in error and "unknown-user" in error
    assert SASL_PASSWORD not in error and SASL_PASSWORD not in str(refused.value)


def test_clients_without_scram_are_disconnected(authenticating_broker: str) -> None:
    """No SASL at all, or PLAIN (which Tansu does not offer): the broker hangs up before any request."""
    plain = {"bootstrap.servers": authenticating_broker, "security.protocol": "SASL_PLAINTEXT",
             "sasl.mechanism": "PLAIN", "sasl.username": "scope", "sasl.password": SASL_PASSWORD}
    for conf in ({"bootstrap.servers": authenticating_broker}, plain):
        assert "brokers are down" in _first_error(conf)
    # ...while the broker is up and answering whoever speaks SCRAM.
    scram = {**plain, "sasl.mechanism": "SCRAM-SHA-512"}
    assert "unknown-user" in _first_error(scram)


def test_worker_refused_a_login_says_so_and_prints_no_password(authenticating_broker: str, tmp_path: Path) -> None:
    env = {**os.environ, "DRIFTSCOPE_HOME": str(tmp_path / "home"), "DRIFTSCOPE_BLOB_URL": str(tmp_path / "blobs"),
           "DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS": authenticating_broker,
           "DRIFTSCOPE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DRIFTSCOPE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
           "DRIFTSCOPE_KAFKA__SASL_USERNAME": "scope", "DRIFTSCOPE_KAFKA__SASL_PASSWORD": SASL_PASSWORD}  # fmt: skip
    worker = subprocess.run([sys.executable, "-m", "driftscope", "worker", "--agents", "fingerprint"],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    output = worker.stdout + worker.stderr
    assert worker.returncode == 3, output
    assert "DRIFTSCOPE_KAFKA__" in worker.stderr and "Traceback" not in output
    assert SASL_PASSWORD not in output
