"""The URL decides the backend; a bad URL says which forms are accepted. No connection is made."""

from __future__ import annotations

import pytest

from consumers.store import ServerStore, StoreUrlError, open_store


@pytest.mark.parametrize("url", ["postgres://h/db", "/just/a/path", "http://h:8123"])
def test_unknown_schemes_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(StoreUrlError, match=r"clickhouse://.*chdb:///"):
        open_store(url)


def test_server_url_is_parsed_without_connecting() -> None:
    store = open_store("clickhouses://user:secret@db.example:9440/driftscope?verify=0", readonly=True)
    try:
        assert isinstance(store, ServerStore)
        assert store.database == "driftscope"
        assert store.readonly
        assert "secret" not in repr(store)
    finally:
        store.close()


def test_server_url_needs_a_host() -> None:
    with pytest.raises(StoreUrlError, match="no host"):
        ServerStore("clickhouse:///db")
