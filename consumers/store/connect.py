"""Open a store from its URL: the one place that knows which backend a URL means."""

from __future__ import annotations

from urllib.parse import urlsplit

from consumers.store.base import Store
from consumers.store.embedded import ChdbStore
from consumers.store.errors import StoreUrlError
from consumers.store.server import ServerStore

__all__ = ["open_store"]


def open_store(url: str, *, readonly: bool = False) -> Store:
    """``clickhouse://``/``clickhouses://`` -> :class:`ServerStore`; ``chdb:///path`` -> :class:`ChdbStore`.

    The store is not migrated: writers call :meth:`Store.migrate` once at start.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("clickhouse", "clickhouses"):
        return ServerStore(url, readonly=readonly)
    if scheme == "chdb":
        return ChdbStore(url, readonly=readonly)
    raise StoreUrlError(
        f"unknown store URL scheme {scheme!r}: use clickhouse://user:pass@host:9000/db, "
        "clickhouses://... (TLS) or chdb:///absolute/path"
    )
