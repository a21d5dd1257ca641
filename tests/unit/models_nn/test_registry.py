"""The registry on a real local blob store: lineage, serving pointer, promote/rollback, verified loads."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from models.registry import INDEX_KEY, Registry, RegistryError
from schemas.blobstore import BlobStore
from schemas.errors import BlobIntegrityError
from schemas.events import DataSelection


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(BlobStore(tmp_path / "blobs"))


def test_register_records_lineage_and_is_idempotent(registry: Registry) -> None:
    base = registry.register("segmenter", b"onnx-a", weights=b"pt-a", metrics={"dice": 0.8})
    selection = DataSelection(instrument_id="scope-1", labelled_image_ids=["img-1"])
    child = registry.register(
        "segmenter", b"onnx-b", parent=base.version, run_id="run-7", metrics={"dice": 0.9}, selection=selection
    )
    again = registry.register("segmenter", b"onnx-b", parent=base.version, run_id="run-8")

    assert again == child
    assert child.parent == base.version and child.run_id == "run-7" and child.selection == selection
    assert child.version.startswith("segmenter-") and child.version != base.version
    assert [v.version for v in registry.versions("segmenter")] == [base.version, child.version]
    assert registry.load_weights(base.version) == b"pt-a"
    with pytest.raises(RegistryError, match="without torch weights"):
        registry.load_weights(child.version)


def test_unknown_parent_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="parent"):
        registry.register("encoder", b"x", parent="encoder-000000000000")


def test_promote_and_rollback_move_the_serving_pointer_per_kind(registry: Registry) -> None:
    a = registry.register("segmenter", b"a")
    b = registry.register("segmenter", b"b", parent=a.version)
    e = registry.register("encoder", b"e")
    with pytest.raises(RegistryError, match="no segmenter is serving"):
        registry.serving("segmenter")

    registry.promote("segmenter", a.version)
    registry.promote("segmenter", b.version)
    registry.promote("encoder", e.version)
    assert registry.serving("segmenter") == b
    assert registry.load_verified("segmenter") == b"b"
    assert registry.serving_versions() == {"segmenter": b.version, "encoder": e.version}

    assert registry.rollback("segmenter") == a
    assert registry.serving("segmenter") == a
    assert registry.serving("encoder") == e
    with pytest.raises(RegistryError, match="roll back"):
        registry.rollback("segmenter")


def test_promote_refuses_a_version_of_another_kind(registry: Registry) -> None:
    e = registry.register("encoder", b"e")
    with pytest.raises(RegistryError, match="not a registered segmenter"):
        registry.promote("segmenter", e.version)


def test_loading_a_tampered_artifact_fails_and_promotion_refuses_it(registry: Registry, tmp_path: Path) -> None:
    a = registry.register("segmenter", b"good bytes")
    key = BlobStore.key_of(a.artifact.uri)
    (tmp_path / "blobs" / key).write_bytes(b"evil bytes")
    with pytest.raises(BlobIntegrityError):
        registry.load_verified("segmenter", a.version)
    with pytest.raises(BlobIntegrityError):
        registry.promote("segmenter", a.version)


def test_state_is_shared_through_the_store(registry: Registry, tmp_path: Path) -> None:
    a = registry.register("encoder", b"e")
    registry.promote("encoder", a.version)
    other = Registry(BlobStore(tmp_path / "blobs"))
    assert other.serving("encoder") == a
    index = json.loads((tmp_path / "blobs" / INDEX_KEY).read_text())
    assert index["serving"] == {"encoder": [a.version]}


def _register_many(url: str, start: int) -> None:
    registry = Registry(BlobStore(url))
    for i in range(start, start + 10):
        registry.register("segmenter", f"model-{i}".encode())


def test_concurrent_writers_from_processes_lose_no_version(tmp_path: Path) -> None:
    url = str(tmp_path / "blobs")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_register_many, args=(url, start)) for start in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(Registry(BlobStore(url)).versions("segmenter")) == 20


def test_bootstrap_from_a_baseline_dir_serves_it_once(registry: Registry, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    manifest = {}
    for kind in ("segmenter", "encoder"):
        (artifacts / f"{kind}.onnx").write_bytes(f"{kind}-onnx".encode())
        (artifacts / f"{kind}.pt").write_bytes(f"{kind}-pt".encode())
        manifest[kind] = {"onnx": f"{kind}.onnx", "weights": f"{kind}.pt", "metrics": {"dice": 0.9}, "config": {}}
    (artifacts / "manifest.json").write_text(json.dumps(manifest))

    first = registry.bootstrap_from_baseline(artifacts)
    newer = registry.register("segmenter", b"newer", parent=first["segmenter"].version)
    registry.promote("segmenter", newer.version)
    second = registry.bootstrap_from_baseline(artifacts)

    assert first == second
    assert registry.serving("segmenter") == newer
    assert registry.serving("encoder") == first["encoder"]
    assert first["encoder"].run_id == "baseline" and first["encoder"].metrics == {"dice": 0.9}


def test_published_event_carries_the_lineage(registry: Registry) -> None:
    a = registry.register("segmenter", b"a")
    b = registry.register("segmenter", b"b", parent=a.version, run_id="r1", metrics={"dice": 0.91})
    event = b.published(promoted=True)
    assert (event.version, event.parent_version, event.run_id, event.promoted) == (b.version, a.version, "r1", True)
    assert event.artifact == b.artifact and event.holdout_metrics == {"dice": 0.91}
