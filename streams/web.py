"""The worker's loopback web pages: counters, and read-only queries of an embedded store.

In embedded mode only the worker's sink may open the chDB directory, so ``driftscope status``,
the tests and the benchmark read the store through ``GET /driftscope/query?sql=SELECT ...``.
The web server binds 127.0.0.1 only (see :class:`streams.app.StreamsApp`), and the endpoint runs
nothing but a single ``SELECT``/``WITH`` statement.

>>> check_read_only("SELECT count() FROM predictions FINAL")
'SELECT count() FROM predictions FINAL'
>>> check_read_only("DROP TABLE predictions")
Traceback (most recent call last):
...
ValueError: only a single SELECT (or WITH ... SELECT) statement is allowed
"""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import Executor
from typing import Any

import faust
from faust.web import Request, Response, View

from consumers.store import Store, StoreError, StoreUnavailable
from streams.counters import CounterBoard

__all__ = ["COUNTERS_PATH", "QUERY_PATH", "check_read_only", "register_pages"]

COUNTERS_PATH = "/driftscope/counters/"
QUERY_PATH = "/driftscope/query/"
_READ_ONLY = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_FORBIDDEN = re.compile(r"\b(INSERT|ALTER|DROP|CREATE|TRUNCATE|RENAME|OPTIMIZE|SYSTEM|KILL|ATTACH|DETACH|GRANT|SET)\b",
                        re.IGNORECASE)


def check_read_only(sql: str) -> str:
    """``sql`` if it is one read-only statement, else :class:`ValueError`."""
    statement = sql.strip().rstrip(";")
    if not _READ_ONLY.match(statement) or ";" in statement or _FORBIDDEN.search(statement):
        raise ValueError("only a single SELECT (or WITH ... SELECT) statement is allowed")
    return statement


def register_pages(app: faust.App, counters: CounterBoard, store: Store | None, executor: Executor | None) -> None:
    """Add the counters page and, when this worker holds the store, the query page."""

    @app.page(COUNTERS_PATH)
    async def counters_page(self: View, request: Request) -> Response:
        return self.json(counters.snapshot())

    if store is None or executor is None:
        return

    @app.page(QUERY_PATH)
    async def query_page(self: View, request: Request) -> Response:
        try:
            sql = check_read_only(request.query.get("sql", ""))
        except ValueError as exc:
            return self.json({"error": str(exc)}, status=400)
        try:
            rows = await asyncio.get_running_loop().run_in_executor(executor, store.query, sql)
        except StoreError as exc:
            return self.json({"error": str(exc)}, status=503 if isinstance(exc, StoreUnavailable) else 400)
        return self.bytes(json.dumps({"rows": rows}, default=_jsonable).encode(), content_type="application/json")


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
