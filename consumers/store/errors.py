"""The store's exception hierarchy: what went wrong, and whether waiting will help.

A sink only needs to tell two cases apart: :class:`StoreUnavailable` (the store is down, slow or
overloaded; pause, wait ``retry_after`` seconds, retry the same batch) and every other
:class:`StoreError` (the batch or the statement is wrong; retrying will not help, dead-letter it).

Refused credentials are a :class:`StoreUnavailable` too (:class:`StoreAuthenticationError`): the
batch is not at fault, so a sink whose password was rotated under it pauses and keeps its records
instead of dead-lettering every one; once the credentials are fixed (and the worker restarted, since
ClickHouse 18.16 was not seen to reread users.xml) it resumes. The message names the user, never
the password.
"""

from __future__ import annotations

import re

__all__ = [
    "AUTHENTICATION_CODES",
    "BACKPRESSURE_CODES",
    "StoreAuthenticationError",
    "StoreError",
    "StoreQueryError",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreUrlError",
    "error_from_server",
]

#: ClickHouse error codes that mean "not now" rather than "never": timeouts, overload, network.
BACKPRESSURE_CODES: frozenset[int] = frozenset({
    159,  # TIMEOUT_EXCEEDED
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY (replica lost its coordinator)
    252,  # TOO_MANY_PARTS (inserts outpace merges)
})
READONLY_CODE = 164
#: UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, IP_ADDRESS_NOT_ALLOWED, AUTHENTICATION_FAILED (21.x+).
AUTHENTICATION_CODES: frozenset[int] = frozenset({192, 193, 194, 195, 516})
_CODE = re.compile(r"Code:\s*(\d+)")


class StoreError(Exception):
    """Base of every store failure; ``code`` is the ClickHouse error code when there is one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class StoreUnavailable(StoreError):
    """The store cannot take the request now: pause consumption, retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, code: int | None = None) -> None:
        super().__init__(f"{message} (retry in {retry_after:g} s)", code=code)
        self.retry_after = retry_after


class StoreAuthenticationError(StoreUnavailable):
    """The server refused the user or password in the store URL; fix them (or the server's users)."""


class StoreReadOnly(StoreError):
    """A write reached a store opened read-only; open it with ``readonly=False`` to write."""


class StoreQueryError(StoreError):
    """The store rejected the statement or the rows (syntax, unknown table, wrong type)."""


class StoreUrlError(StoreError, ValueError):
    """The store URL cannot be used; the message names the accepted forms."""


def error_from_server(message: str, *, code: int | None, retry_after: float) -> StoreError:
    """Classify a ClickHouse error by its code (parsed from the message when not given).

    The server appends a C++ stack trace to its messages (18.16 does); only the text before it
    is kept, so logs and dead letters stay readable.
    """
    if code is None:
        match = _CODE.search(message)
        code = int(match.group(1)) if match else None
    text = message.split("Stack trace:", 1)[0].strip()
    if code is not None and not text.startswith("Code:"):
        text = f"Code: {code}. {text}"
    if code in BACKPRESSURE_CODES:
        return StoreUnavailable(text, retry_after=retry_after, code=code)
    if code in AUTHENTICATION_CODES:
        return StoreAuthenticationError(
            f"ClickHouse refused the credentials: {text}; check the user and password of the store URL "
            "(DRIFTSCOPE_CLICKHOUSE_URL)", retry_after=retry_after, code=code,
        )  # fmt: skip
    if code == READONLY_CODE:
        return StoreReadOnly(f"{text}; this store was opened read-only", code=code)
    return StoreQueryError(text, code=code)
