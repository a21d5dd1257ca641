"""The claim-check blob store: large images, masks and model artifacts, addressed by sha256.

Kafka carries a :class:`~schemas.events.BlobRef` (URI + sha256 + size) instead of the bytes. The
store is a local directory by default or any fsspec URL (``s3://bucket/prefix``) when configured.

References use the store-relative scheme ``ds-blob://<key>``: an event can only ever point inside
the configured store, never at another host or at ``../../etc/passwd`` — keys are checked before
any file is touched. Reads verify size and sha256, so a corrupted or swapped blob is refused.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import uuid
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from schemas.errors import BlobError, BlobIntegrityError, BlobNotFoundError, BlobUriError, BlobWriteError
from schemas.events import BlobRef

__all__ = ["SCHEME", "BlobStore", "sha256_hex"]

SCHEME = "ds-blob://"
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """Content-addressed bytes under one root (a path or an fsspec URL)."""

    def __init__(self, url: str | Path, **storage_options: object) -> None:
        self.url = str(url)
        self._fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self._root = root.rstrip("/")
        if isinstance(self._fs, LocalFileSystem):
            Path(self._root).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"BlobStore({self.url!r})"

    # -- content-addressed ---------------------------------------------------------------------
    def put_bytes(self, data: bytes, *, prefix: str) -> BlobRef:
        """Store ``data`` under ``prefix`` by its sha256 (idempotent: same bytes, same reference)."""
        digest = sha256_hex(data)
        key = f"{prefix.strip('/')}/{digest[:2]}/{digest}"
        if not self.exists(key):
            self.write(key, data)
        return BlobRef(uri=SCHEME + key, sha256=digest, size=len(data))

    def get_bytes(self, ref: BlobRef) -> bytes:
        """The bytes behind ``ref``, verified against its size and sha256."""
        data = self.read(self.key_of(ref.uri))
        if len(data) != ref.size:
            raise BlobIntegrityError(f"{ref.uri}: size {len(data)} != expected {ref.size}")
        digest = sha256_hex(data)
        if digest != ref.sha256:
            raise BlobIntegrityError(f"{ref.uri}: sha256 {digest} != expected {ref.sha256}")
        return data

    # -- named keys (indexes, pointers) --------------------------------------------------------
    def write(self, key: str, data: bytes) -> None:
        """Write ``key`` atomically: readers see the old bytes or the new, never a torn file."""
        path = self._path(key)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            self._fs.makedirs(posixpath.dirname(path), exist_ok=True)
            with self._fs.open(tmp, "wb") as fh:
                fh.write(data)
            self._fs.mv(tmp, path)
        except OSError as exc:
            raise BlobWriteError(f"cannot write {key} to {self.url}: {exc}") from exc

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            with self._fs.open(path, "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"{key} not found in {self.url}") from exc
        except OSError as exc:
            raise BlobError(f"cannot read {key} from {self.url}: {exc}") from exc
        return data

    def exists(self, key: str) -> bool:
        return bool(self._fs.exists(self._path(key)))

    @staticmethod
    def key_of(uri: str) -> str:
        """The store key of a ``ds-blob://`` URI; anything else is refused."""
        if not uri.startswith(SCHEME):
            raise BlobUriError(f"{uri!r} is not a {SCHEME} reference into the configured store")
        key = uri[len(SCHEME):]
        BlobStore._check_key(key)
        return key

    @staticmethod
    def _check_key(key: str) -> None:
        parts = key.split("/")
        if not key or len(key) > 1024 or not all(_KEY_PART.match(p) for p in parts):
            raise BlobUriError(f"blob key {key!r} is not a plain relative path inside the store")

    def _path(self, key: str) -> str:
        self._check_key(key)
        return f"{self._root}/{key}"
