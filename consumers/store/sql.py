r"""Bind query parameters into SQL the same way for both backends.

Both backends run the *same* SQL text, so parameters are rendered here rather than by each client:
clickhouse-driver would render datetimes in the server's time zone (wrong for our ``DateTime('UTC')``
columns when the server runs elsewhere), and the 18.16 server has no server-side parameters at all.
Placeholders are pyformat, ``%(name)s``, as in clickhouse-driver and DB-API; with parameters, a
literal ``%`` is written ``%%``.

>>> print(render("SELECT %(n)s, %(s)s, %(xs)s", {"n": 3, "s": "it's", "xs": ["a", "b"]}))
SELECT 3, 'it\'s', ['a', 'b']
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from consumers.store.errors import StoreQueryError

__all__ = ["identifier", "literal", "render"]

_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    "\b": "\\b",
    "\f": "\\f",
    "\r": "\\r",
    "\n": "\\n",
    "\t": "\\t",
    "\0": "\\0",
    "\a": "\\a",
    "\v": "\\v",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def identifier(name: str) -> str:
    """A table or column name, checked: names come from code, but never let one carry SQL."""
    if not _IDENTIFIER.match(name):
        raise StoreQueryError(f"invalid identifier {name!r}: use letters, digits and underscores")
    return name


def _quote(text: str) -> str:
    return "'" + "".join(_ESCAPES.get(c, c) for c in text) + "'"


def literal(value: Any) -> str:
    """One Python value as a ClickHouse literal both 18.16 and 26.x parse to the same value."""
    if value is None:
        return "NULL"
    if isinstance(value, enum.Enum):
        return literal(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return f"toDateTime({_quote(utc.strftime('%Y-%m-%d %H:%M:%S'))}, 'UTC')"
    if isinstance(value, date):
        return f"toDate({_quote(value.isoformat())})"
    if isinstance(value, uuid.UUID):
        return f"toUUID({_quote(str(value))})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        if not value:
            raise StoreQueryError("an empty tuple has no ClickHouse literal; skip the IN clause instead")
        return "(" + ", ".join(literal(v) for v in value) + ")"
    raise StoreQueryError(f"cannot bind a {type(value).__name__} as a query parameter")


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    """``sql`` with every ``%(name)s`` replaced by the literal of ``params[name]``."""
    if params is None:
        return sql
    try:
        return sql % {name: literal(value) for name, value in params.items()}
    except KeyError as exc:
        raise StoreQueryError(f"query parameter {exc.args[0]!r} is used but not given") from None
    except (TypeError, ValueError) as exc:
        raise StoreQueryError(f"cannot bind parameters into the query: {exc}") from None
