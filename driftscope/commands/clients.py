"""How the operator commands reach Kafka and the store, and what their exit codes mean.

Every command resolves its connections the same way: settings (file, environment, ``--home``),
with blanks filled from the embedded stack running in that home. The store is read through one of:

- a ClickHouse server (``clickhouse://``): connected directly with the server's ``readonly=1``
  setting, so the server — not a parser — refuses anything but reads;
- an embedded chDB store held by a running worker: chDB admits one process per data directory, so
  reads go through that worker's loopback query page (``driftscope worker --web``);
- an embedded chDB store nobody holds (nothing running): opened here, read-only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from driftscope.settings import Settings, load_settings
from driftscope.stack import apply_running_stack, find_running_stack
from driftscope.supervisor import pid_alive

if TYPE_CHECKING:
    from consumers.store import Row

__all__ = [
    "ExitCode",
    "StoreReader",
    "Unavailable",
    "kafka_config",
    "open_reader",
    "resolve_settings",
    "running_workers",
]

#: Where the worker's loopback query page lives (see ``streams/web.py``).
QUERY_PATH = "/driftscope/query/"


class ExitCode(IntEnum):
    """Exit codes shared by the operator commands; scripts may rely on them."""

    OK = 0
    #: The work ran but part of it failed: unreadable files, undelivered messages, a rejected query.
    FAILED = 1
    #: Bad command line (Typer's own code for usage errors).
    USAGE = 2
    #: No broker or store to talk to: nothing configured, nothing running, or not reachable.
    UNAVAILABLE = 3


class Unavailable(RuntimeError):
    """The broker or store cannot be reached; the message says what to start or configure."""


def resolve_settings(home: Path | None) -> Settings:
    """Settings for ``--home``, with the broker, store and blobs of a running stack filled in."""
    return apply_running_stack(load_settings(home=home))


def kafka_config(
    settings: Settings, *, topics: tuple[str, ...] = (), check: bool = True, timeout: float = 5.0
) -> dict[str, Any]:
    """The librdkafka connection config; with ``check``, proves the broker answers and has ``topics``.

    A missing topic is reported here rather than as a delivery timeout later: a cluster that does
    not create topics on first use would otherwise keep the operator waiting for nothing.
    """
    conf = settings.kafka.librdkafka_config()
    if not conf.get("bootstrap.servers"):
        raise Unavailable(
            f"no Kafka broker configured and no stack running in {settings.home}: start one with "
            "`driftscope stack up --detach` or set DRIFTSCOPE_KAFKA__BOOTSTRAP_SERVERS"
        )
    if check:
        try:
            present = AdminClient({**conf, "log_level": 0}).list_topics(timeout=timeout).topics
        except KafkaException as exc:
            raise Unavailable(f"Kafka at {conf['bootstrap.servers']} does not answer: {exc.args[0].str()}") from exc
        missing = [name for name in topics if name not in present]
        if missing:
            raise Unavailable(
                f"topic {', '.join(missing)} does not exist on {conf['bootstrap.servers']}; "
                "`driftscope stack up` creates the registry's topics, or create it with your cluster's tools"
            )
    return conf


class StoreReader(Protocol):
    """What ``query`` and ``status`` need from the store: read rows, then let go."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def close(self) -> None: ...


class WorkerQueryReader:
    """Reads an embedded store through the worker that holds it (its loopback query page)."""

    def __init__(self, web_url: str, timeout: float = 60.0) -> None:
        self.web_url = web_url.rstrip("/")
        self.timeout = timeout

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        from consumers.store import StoreError
        from consumers.store.sql import render

        url = f"{self.web_url}{QUERY_PATH}?{urllib.parse.urlencode({'sql': render(sql, params)})}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = _error_text(exc)
            if exc.code == 400:
                raise StoreError(message) from exc
            if exc.code == 404:
                raise Unavailable(f"the worker at {self.web_url} does not hold the store (run one with the sink "
                                  "agent and --web)") from exc
            raise Unavailable(f"the worker at {self.web_url} could not query the store: {message}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise Unavailable(f"the worker at {self.web_url} does not answer: {exc}") from exc
        rows: list[Row] = body["rows"]
        return rows

    def close(self) -> None:
        """Nothing to release: every query is its own HTTP request."""


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def running_workers(home: Path) -> list[dict[str, Any]]:
    """The status files of workers that are alive (``<home>/workers/*.json``), newest first."""
    found = []
    for path in sorted((home / "workers").glob("*.json")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(status, dict) and isinstance(status.get("pid"), int) and pid_alive(status["pid"]):
            status["status_file"] = str(path)
            status["updated_at"] = path.stat().st_mtime
            found.append(status)
    return sorted(found, key=lambda s: s["updated_at"], reverse=True)


def open_reader(settings: Settings) -> StoreReader:
    """A read-only view of the store, by the rules in this module's docstring."""
    url = settings.resolved_clickhouse_url
    if not url.startswith("chdb:"):
        return _open_direct(url)
    # Only the worker that holds the store serves the query page; any other answers 404 below.
    served = [w for w in running_workers(settings.home) if w.get("web")]
    if served:
        return WorkerQueryReader(served[0]["web"])
    if find_running_stack(settings.home) is None:
        return _open_direct(url)
    raise Unavailable(
        "the embedded store belongs to the stack's worker, and no worker serves queries: "
        f"start one with `driftscope worker --web --home {settings.home}` (or use a ClickHouse server)"
    )


def _open_direct(url: str) -> StoreReader:
    # Imported on use: chDB and clickhouse-driver take seconds to import, --help should not wait.
    from consumers.store import StoreError, open_store

    try:
        return open_store(url, readonly=True)
    except StoreError as exc:
        raise Unavailable(f"cannot open the store read-only: {exc}") from exc
