"""Models come only from the registry's own store, verified by sha256; anything else keeps the old model.

The worker polls the registry (never the ``models.published`` events, which only become rows), so
the one way to point it at other bytes is the registry index itself. An index rewritten to name an
artifact outside the store — a path that climbs out, a local file, a URL — is refused even when
the sha256 matches the bytes there, and the serving model stays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import INDEX_KEY, Registry
from schemas.blobstore import sha256_hex
from schemas.errors import BlobUriError
from streams.app import Steps, refresh_models
from streams.config import StreamsConfig
from tests.integration.streams.test_hot_swap import setup  # noqa: F401  (registry + serving segment step)


@pytest.mark.parametrize("uri", [
    "ds-blob://../outside/evil.onnx", "file://{path}", "{path}", "s3://attacker-bucket/evil.onnx",
    "https://127.0.0.1:1/evil.onnx",
])  # fmt: skip
def test_an_index_pointing_outside_the_store_is_refused_and_the_old_model_keeps_serving(
    setup: tuple[Registry, Steps, StreamsConfig, bytes],  # noqa: F811
    tmp_path: Path,
    uri: str,
) -> None:
    registry, steps, config, candidate = setup
    assert steps.segment is not None
    old = steps.segment.slot.version
    planted = tmp_path / "outside" / "evil.onnx"
    planted.parent.mkdir()
    planted.write_bytes(candidate)  # a perfectly loadable model, just not one from the registry

    new = registry.register("segmenter", candidate, parent=old).version
    registry.promote("segmenter", new)
    index = json.loads(registry.store.read(INDEX_KEY))
    index["versions"][new]["artifact"]["uri"] = uri.format(path=planted)
    assert index["versions"][new]["artifact"]["sha256"] == sha256_hex(planted.read_bytes())
    registry.store.write(INDEX_KEY, json.dumps(index).encode())

    with pytest.raises(BlobUriError):
        refresh_models(registry, steps, config)
    assert steps.segment.slot.version == old
