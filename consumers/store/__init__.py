"""The ClickHouse store: data database D and model database M, on a server or embedded (chDB).

>>> from consumers.store import open_store
>>> store = open_store("chdb:///var/lib/driftscope/chdb")    # doctest: +SKIP
>>> store.migrate()                                          # doctest: +SKIP
[1, 2]
"""

from consumers.store.base import Row, Store
from consumers.store.connect import open_store
from consumers.store.embedded import ChdbStore
from consumers.store.errors import (
    StoreAuthenticationError,
    StoreError,
    StoreQueryError,
    StoreReadOnly,
    StoreUnavailable,
    StoreUrlError,
)
from consumers.store.migrations import MIGRATIONS, TABLES
from consumers.store.server import ServerStore

__all__ = [
    "MIGRATIONS",
    "TABLES",
    "ChdbStore",
    "Row",
    "ServerStore",
    "Store",
    "StoreAuthenticationError",
    "StoreError",
    "StoreQueryError",
    "StoreReadOnly",
    "StoreUnavailable",
    "StoreUrlError",
    "open_store",
]
