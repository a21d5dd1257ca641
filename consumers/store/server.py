"""A ClickHouse server over the native protocol (clickhouse-driver), any version from 18.16 on.

Rows travel as columnar parameters of ``INSERT ... VALUES``, never inline in the SQL: with inline
data clickhouse-driver waits for a data packet that an 18.16 server never sends, and hangs.
Read-only mode is the server's own ``readonly=1`` setting sent with every query, so the server,
not a SQL parser of ours, refuses writes.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors
from clickhouse_driver.util.helpers import parse_url

from consumers.store.base import Row, Store, parse_version
from consumers.store.errors import StoreQueryError, StoreUnavailable, StoreUrlError, error_from_server
from consumers.store.sql import identifier

__all__ = ["ServerStore"]

DEFAULT_SEND_RECEIVE_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
UNKNOWN_DATABASE = 81
# Errors of the transport, not of the statement: the server is down, restarting or too slow.
_TRANSPORT_ERRORS = (driver_errors.NetworkError, driver_errors.SocketTimeoutError, EOFError, OSError)


class ServerStore(Store):
    """``clickhouse://user:pass@host:9000/db`` (``clickhouses://`` or ``?secure=1`` for TLS).

    Any connection option clickhouse-driver reads from a URL query string passes through
    (``verify``, ``ca_certs``, ``compression``, ``connect_timeout``, ...). The client reconnects by
    itself on the next call after an outage, so a sink keeps one store and retries.
    """

    def __init__(self, url: str, *, readonly: bool = False, retry_after: float = 5.0) -> None:
        super().__init__(readonly=readonly)
        scheme = urlsplit(url).scheme
        if scheme not in ("clickhouse", "clickhouses"):
            raise StoreUrlError(f"not a ClickHouse server URL: {scheme}://...; use clickhouse://host:9000/db")
        host, kwargs = parse_url(url)
        if not host:
            raise StoreUrlError("the ClickHouse URL names no host: clickhouse://user:pass@host:9000/db")
        kwargs.setdefault("send_receive_timeout", DEFAULT_SEND_RECEIVE_TIMEOUT_S)
        kwargs.setdefault("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)
        settings = dict(kwargs.pop("settings", {}))
        if readonly:
            settings["readonly"] = 1
        self.database: str = kwargs.pop("database", "default")
        self.retry_after = retry_after
        self._target = f"{host}:{kwargs.get('port', 9000)}/{self.database}"
        self._client_options: dict[str, Any] = {"host": host, "settings": settings, **kwargs}
        self._client = Client(database=self.database, **self._client_options)
        # One native connection serves one query at a time; a sink's flush thread and a reader
        # sharing this store take turns instead of corrupting the stream.
        self._lock = threading.Lock()
        self._version: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return f"ServerStore({self._target!r}, readonly={self.readonly})"

    def _call(self, client: Client, sql: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return client.execute(sql, *args, **kwargs)
        except driver_errors.ServerException as exc:
            raise error_from_server(exc.message, code=exc.code, retry_after=self.retry_after) from exc
        except _TRANSPORT_ERRORS as exc:
            client.disconnect()
            raise StoreUnavailable(
                f"ClickHouse at {self._target} is unreachable or too slow: {exc}", retry_after=self.retry_after
            ) from exc
        except driver_errors.Error as exc:
            raise error_from_server(str(exc), code=exc.code, retry_after=self.retry_after) from exc
        except (TypeError, ValueError, struct.error, OverflowError) as exc:
            # clickhouse-driver serialising a value that does not fit its column
            raise StoreQueryError(f"values do not fit the columns: {exc}") from exc

    def _run(self, sql: str) -> list[Row]:
        with self._lock:
            rows, columns = self._call(self._client, sql, with_column_types=True)
        names = [name for name, _type in columns]
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _insert_columns(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
        data = [[row[name] for row in rows] for name in columns]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        with self._lock:
            self._call(self._client, sql, data, columnar=True)

    def _on_default(self, sql: str) -> list[Any]:
        """Run ``sql`` through a short-lived connection to ``default``: our database may not exist yet."""
        admin = Client(database="default", **self._client_options)
        try:
            result: list[Any] = self._call(admin, sql)
            return result
        finally:
            admin.disconnect()

    def migrate(self) -> list[int]:
        """Create the database if needed, then apply the migrations."""
        if not self.readonly and self.database != "default":
            self._on_default(f"CREATE DATABASE IF NOT EXISTS {identifier(self.database)}")
        return super().migrate()

    @property
    def server_version(self) -> tuple[int, ...]:
        if self._version is None:
            try:
                text = str(self._run("SELECT version() AS v")[0]["v"])
            except StoreQueryError as exc:
                if exc.code != UNKNOWN_DATABASE:
                    raise
                text = str(self._on_default("SELECT version()")[0][0])
            self._version = parse_version(text)
        return self._version

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()

