"""ClickHouse in-process through chDB (``chdb-core``, ClickHouse 26.x): the embedded default.

chDB runs one embedded server per process, bound to the first data directory it opens until that
session closes, and a data directory belongs to one process at a time. So exactly one
:class:`ChdbStore` may be open per process; share it (the worker's metrics sink owns it), and let
other processes reach the data through that one or use a ClickHouse server instead.

Rows go in through chDB's streaming inserter as ``JSONCompactEachRow`` written by :mod:`json`:
the data never becomes SQL text, so no value needs SQL escaping. Results come out as
``JSONCompact`` and are decoded by their column types (:mod:`consumers.store.decode`).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chdb import session as chdb_session

from consumers.store.base import Row, Store, parse_version
from consumers.store.decode import decoder_for
from consumers.store.errors import StoreError, StoreQueryError, StoreUrlError, error_from_server

__all__ = ["ChdbStore"]

# chDB's embedded server is process-global; this records which store holds it.
_OPEN_LOCK = threading.Lock()
_open_path: Path | None = None

# Session start-up settings. Denormals are quoted so NaN/Inf come back as "nan"/"inf" instead of
# null (which would be indistinguishable from SQL NULL). They are start-up arguments rather than a
# SET because a readonly=1 session refuses SET.
_SESSION_SETTINGS = "output_format_json_quote_denormals=1"


def _json_default(value: Any) -> Any:
    """JSON for the Python values rows carry: DateTime as epoch seconds, UUID as text."""
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return int(aware.timestamp())
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    raise TypeError(f"cannot store a {type(value).__name__} in a ClickHouse column")


_ENCODE = json.JSONEncoder(default=_json_default).encode


def _encode_rows(columns: list[str], rows: Sequence[Mapping[str, Any]]) -> bytes:
    """``JSONCompactEachRow`` lines for ``rows``.

    Datetime and UUID columns are converted column by column up front, so the C encoder rarely
    calls back into Python: about twice as fast as one ``json.dumps(default=...)`` per row dict.
    """
    values: list[list[Any]] = []
    for name in columns:
        column = [row[name] for row in rows]
        sample = next((v for v in column if v is not None), None)
        if isinstance(sample, datetime | uuid.UUID):
            column = [None if v is None else _json_default(v) for v in column]
        values.append(column)
    return "\n".join(map(_ENCODE, map(list, zip(*values, strict=True)))).encode()


def _holder_hint(path: Path) -> str:
    """Name the process that holds ``path``, from the ``status`` file ClickHouse writes there.

    chDB's own error for a directory held by another process is a bare "Error initializing
    EmbeddedServer", which sends operators hunting.
    """
    status = path / "status"
    try:
        first = status.read_text(errors="replace").splitlines()[0]
        pid = int(first.removeprefix("PID:").strip())
        os.kill(pid, 0)
    except (OSError, IndexError, ValueError):
        return ""
    if pid == os.getpid():
        return ""
    return f" (the data directory is held by process {pid}; one process per data directory)"


class ChdbStore(Store):
    """``chdb:///absolute/path/to/data``: ClickHouse inside this process, data on local disk."""

    def __init__(self, url: str, *, readonly: bool = False, retry_after: float = 1.0) -> None:
        super().__init__(readonly=readonly)
        parts = urlsplit(url)
        if parts.scheme != "chdb" or parts.netloc or not parts.path.startswith("/"):
            raise StoreUrlError(f"not an embedded store URL: {url!r}; use chdb:///absolute/path")
        self.path = Path(parts.path)
        self.retry_after = retry_after
        if readonly and not self.path.is_dir():
            raise StoreError(f"no chDB store at {self.path}; run `migrate` with a writable store first")
        self.path.mkdir(parents=True, exist_ok=True)
        self._claim()
        options = _SESSION_SETTINGS + ("&readonly=1" if readonly else "")
        try:
            self._session: chdb_session.Session | None = chdb_session.Session(f"{self.path}?{options}")
        except RuntimeError as exc:
            self._release()
            raise StoreError(f"cannot open chDB at {self.path}: {exc}{_holder_hint(self.path)}") from exc
        self._version: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return f"ChdbStore({str(self.path)!r}, readonly={self.readonly})"

    def _claim(self) -> None:
        global _open_path
        with _OPEN_LOCK:
            if _open_path is not None:
                raise StoreError(
                    f"chDB is already open at {_open_path} in this process and allows one open data "
                    f"directory per process: share that store, or close it before opening {self.path}"
                )
            _open_path = self.path

    def _release(self) -> None:
        global _open_path
        with _OPEN_LOCK:
            _open_path = None

    def _active(self) -> chdb_session.Session:
        if self._session is None:
            raise StoreError(f"the chDB store at {self.path} is closed")
        return self._session

    def _fail(self, exc: Exception) -> StoreError:
        return error_from_server(str(exc), code=None, retry_after=self.retry_after)

    def _run(self, sql: str) -> list[Row]:
        try:
            raw = self._active().query(sql, "JSONCompact").bytes()
        except RuntimeError as exc:  # chdb.ChdbError and connection errors
            raise self._fail(exc) from exc
        if not raw:
            return []
        result = json.loads(raw)
        meta = result["meta"]
        names = [column["name"] for column in meta]
        readers = [decoder_for(column["type"]) for column in meta]
        return [
            {name: read(value) for name, read, value in zip(names, readers, values, strict=True)}
            for values in result["data"]
        ]

    def _insert_columns(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            payload = _encode_rows(columns, rows)
        except (TypeError, ValueError) as exc:
            raise StoreQueryError(f"values do not fit the columns of {table}: {exc}") from exc
        statement = f"INSERT INTO {table} ({', '.join(columns)})"
        try:
            with self._active().send_insert(statement, "JSONCompactEachRow") as inserter:
                inserter.append(payload)
                inserter.finish()
        except RuntimeError as exc:
            raise self._fail(exc) from exc

    @property
    def server_version(self) -> tuple[int, ...]:
        if self._version is None:
            self._version = parse_version(str(self._run("SELECT version() AS v")[0]["v"]))
        return self._version

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
            self._release()
