"""The store interface both backends implement: same SQL, same Python values back.

A backend supplies four primitives (run a statement and return rows, insert columns, report the
server version, close); everything else (parameter binding, row validation, migrations) lives
here once, so the embedded chDB and a ClickHouse server cannot drift apart.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

from consumers.store.errors import StoreError, StoreQueryError
from consumers.store.migrations import apply_migrations
from consumers.store.sql import identifier, render

__all__ = ["Row", "Store"]

Row = dict[str, Any]

# INSERT with inline data (VALUES or FORMAT): an 18.16 server waits for data blocks that
# clickhouse-driver never sends, and both sides hang until the socket times out.
_INLINE_INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+[\w.`\"]+\s*(\([^)]*\))?\s*(VALUES|FORMAT)\b", re.IGNORECASE
)


class Store(abc.ABC):
    """A ClickHouse database: migrations, batched inserts and parameterised queries.

    Values come back as clickhouse-driver returns them: ``DateTime('UTC')`` as aware UTC
    ``datetime``, ``UUID`` as :class:`uuid.UUID`, ``Enum8`` as ``str``, ``Array`` as ``list``,
    ``Nullable`` NULL as ``None``.
    """

    def __init__(self, *, readonly: bool) -> None:
        self.readonly = readonly

    # -- what a backend provides ---------------------------------------------------------------
    @abc.abstractmethod
    def _run(self, sql: str) -> list[Row]:
        """Execute one finished SQL statement; rows of a SELECT, ``[]`` otherwise."""

    @abc.abstractmethod
    def _insert_columns(self, table: str, columns: list[str], rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` (each with exactly ``columns``) as one batch, never as SQL text."""

    @property
    @abc.abstractmethod
    def server_version(self) -> tuple[int, ...]:
        """The ClickHouse version, e.g. ``(18, 16, 1)`` or ``(26, 9, 2, 1)``."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection (a server store reconnects if used again; chDB's cannot)."""

    # -- the public API ------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Create or upgrade the schema; the migration versions applied by this call."""
        return apply_migrations(self)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ``INSERT ... SELECT``, ``OPTIMIZE``)."""
        self.query(sql, params)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Rows of a SELECT as dicts; ``%(name)s`` placeholders are bound from ``params``.

        ``INSERT`` with inline data (``VALUES``/``FORMAT``) is refused on every backend so that
        SQL which works here also works against an 18.16 server, where it would hang: use
        :meth:`insert`.
        """
        if _INLINE_INSERT.match(sql):
            raise StoreQueryError(
                "INSERT with inline data is not portable (it hangs ClickHouse 18.16); use Store.insert(rows)"
            )
        return self._run(render(sql, params))

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert ``rows`` into ``table`` as one columnar batch; the number of rows inserted.

        Every row must carry the same keys; table columns that no row names take their DEFAULT.
        A read-only store lets the server refuse the batch (:class:`StoreReadOnly`).
        """
        if not rows:
            return 0
        columns = [identifier(name) for name in rows[0]]
        expected = set(columns)
        for index, row in enumerate(rows):
            if set(row) != expected:
                raise StoreQueryError(
                    f"row {index} for {table} has columns {sorted(row)}, expected {sorted(expected)}"
                )
        self._insert_columns(identifier(table), columns, rows)
        return len(rows)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def parse_version(text: str) -> tuple[int, ...]:
    """``'18.16.1'`` -> ``(18, 16, 1)``; raises :class:`StoreError` on anything else."""
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        raise StoreError(f"unexpected ClickHouse version string {text!r}") from None
