"""The one error family of the contract layer.

A consumer that cannot decode a message sends it to the dead-letter queue with the reason; so every
decoding failure is a :class:`SchemaError` that names the field (or framing part) and what is wrong.
"""

from __future__ import annotations

__all__ = [
    "BlobError",
    "BlobIntegrityError",
    "BlobNotFoundError",
    "BlobUriError",
    "BlobWriteError",
    "SchemaError",
]


class SchemaError(ValueError):
    """A message does not satisfy the contract. ``field`` names where, ``reason`` says what."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BlobError(Exception):
    """A claim-check blob cannot be stored or read."""


class BlobIntegrityError(BlobError):
    """The bytes read back do not match the reference's sha256 or size."""


class BlobNotFoundError(BlobError):
    """The reference points at nothing."""


class BlobWriteError(BlobError):
    """The store cannot take bytes right now (full, read-only, unreachable): a reason to wait, not to drop."""


class BlobUriError(BlobError):
    """The URI points outside the configured store (path traversal, another host or scheme)."""
