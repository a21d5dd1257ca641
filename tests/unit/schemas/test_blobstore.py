"""The claim-check store: content addressing, integrity, and references confined to the store."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import zstandard

from schemas.blobstore import BlobStore
from schemas.claimcheck import array_from_blob, array_to_blob
from schemas.errors import BlobIntegrityError, BlobNotFoundError, BlobUriError, SchemaError
from schemas.events import BlobRef


def test_same_bytes_same_reference_and_verified_reads(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = store.put_bytes(b"nuclei", prefix="images")
    assert store.put_bytes(b"nuclei", prefix="images") == ref
    assert store.get_bytes(ref) == b"nuclei"
    (tmp_path / BlobStore.key_of(ref.uri)).write_bytes(b"nucleJ")  # same size, other bytes
    with pytest.raises(BlobIntegrityError, match="sha256"):
        store.get_bytes(ref)


@pytest.mark.parametrize("uri", [
    "ds-blob://../outside", "ds-blob:///etc/passwd", "ds-blob://a/../../b", "file:///etc/passwd",
    "s3://other-bucket/key", "http://127.0.0.1/x", "ds-blob://images/.hidden", "ds-blob://",
])
def test_references_outside_the_store_are_refused(tmp_path: Path, uri: str) -> None:
    store = BlobStore(tmp_path / "store")
    (tmp_path / "outside").write_bytes(b"secret")
    with pytest.raises(BlobUriError):
        store.get_bytes(BlobRef(uri=uri, sha256="0" * 64, size=6))


def test_a_missing_blob_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(BlobNotFoundError):
        BlobStore(tmp_path).get_bytes(BlobRef(uri="ds-blob://images/ab/cd", sha256="0" * 64, size=1))


def test_blob_arrays_never_unpickle(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    ref = array_to_blob(np.arange(6, dtype=np.uint16).reshape(2, 3), store, prefix="images")
    assert array_from_blob(ref, store).tolist() == [[0, 1, 2], [3, 4, 5]]
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    hostile = store.put_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()), prefix="images")
    with pytest.raises(SchemaError, match="not an array"):
        array_from_blob(hostile, store)
