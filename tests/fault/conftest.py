"""Fault tests reuse the streaming fixtures (a blob store serving the baseline models)."""

from tests.integration.streams.conftest import served_blob_url

__all__ = ["served_blob_url"]
