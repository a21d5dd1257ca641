"""The model registry: content-addressed artifacts, versions with lineage, a serving pointer per kind.

State lives on the blob store, not in a database, so the trainer, the segment/fingerprint workers
and the CLI share it from different processes (and hosts, with an fsspec store):

- ``models/<kind>/<xx>/<sha256>`` — the ONNX bytes; ``models/<kind>-weights/...`` — the torch
  state_dict the version was exported from (fine-tuning starts from the serving weights);
- ``registry/index.json`` — every version record plus, per kind, the history of serving versions
  (the last is serving; rollback pops it). It is rewritten atomically on every change.

A version id is derived from the artifact's sha256, so registering the same bytes twice (a
redelivered retrain request) yields the same version instead of a duplicate. Loading always goes
through :meth:`BlobStore.get_bytes`, which verifies size and sha256: a swapped or truncated
artifact is refused, and the caller keeps serving what it has.

Torch-free: workers import this.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.blobstore import BlobStore
from schemas.errors import BlobNotFoundError
from schemas.events import BlobRef, DataSelection, ModelPublished, utcnow

__all__ = [
    "ARTIFACTS_DIR",
    "INDEX_KEY",
    "ModelKind",
    "ModelVersion",
    "Registry",
    "RegistryError",
]

ModelKind = Literal["segmenter", "encoder"]
KINDS: tuple[ModelKind, ...] = ("segmenter", "encoder")
INDEX_KEY = "registry/index.json"
#: The shipped baseline: ONNX files, torch weights and ``manifest.json`` with their metrics.
ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class RegistryError(Exception):
    """A registry operation cannot be done: unknown version, nothing to roll back to, bad manifest."""


class ModelVersion(BaseModel):
    """One registered model: the artifact, where it came from, and how well it did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ModelKind
    version: str
    artifact: BlobRef
    weights: BlobRef | None = None
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    parent: str | None = None
    run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    selection: DataSelection | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    def published(self, *, promoted: bool) -> ModelPublished:
        """The ``models.published`` event announcing this version."""
        return ModelPublished(
            kind=self.kind,
            version=self.version,
            artifact=self.artifact,
            parent_version=self.parent,
            run_id=self.run_id,
            holdout_metrics=self.metrics,
            promoted=promoted,
        )


class _Index(BaseModel):
    model_config = ConfigDict(extra="forbid")

    versions: dict[str, ModelVersion] = Field(default_factory=dict)
    serving: dict[str, list[str]] = Field(default_factory=dict)


class Registry:
    """Versions and serving pointers of the segmenter and the encoder, on one blob store."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    # -- reading -------------------------------------------------------------------------------
    def versions(self, kind: ModelKind | None = None) -> list[ModelVersion]:
        """All versions (of ``kind``), oldest first."""
        found = self._read().versions.values()
        return sorted((v for v in found if kind is None or v.kind == kind), key=lambda v: v.created_at)

    def get(self, version: str) -> ModelVersion:
        index = self._read()
        if version not in index.versions:
            raise RegistryError(f"unknown model version {version!r}; `driftscope models list` shows them")
        return index.versions[version]

    def serving(self, kind: ModelKind) -> ModelVersion:
        """The version the workers should serve for ``kind``."""
        index = self._read()
        history = index.serving.get(kind) or []
        if not history:
            raise RegistryError(
                f"no {kind} is serving; run `Registry.bootstrap_from_baseline()` or promote a version"
            )
        return index.versions[history[-1]]

    def serving_versions(self) -> dict[str, str]:
        """Kind -> serving version id, for the kinds that have one."""
        return {kind: hist[-1] for kind, hist in self._read().serving.items() if hist}

    def load_verified(self, kind: ModelKind, version: str | None = None) -> bytes:
        """The ONNX bytes of ``version`` (default: serving), verified against the recorded sha256."""
        record = self.serving(kind) if version is None else self._of_kind(kind, version)
        return self.store.get_bytes(record.artifact)

    def load_weights(self, version: str) -> bytes:
        """The torch state_dict bytes ``version`` was exported from, verified like the artifact."""
        record = self.get(version)
        if record.weights is None:
            raise RegistryError(f"{version} was registered without torch weights; it cannot be fine-tuned")
        return self.store.get_bytes(record.weights)

    # -- writing -------------------------------------------------------------------------------
    def register(
        self,
        kind: ModelKind,
        onnx_bytes: bytes,
        *,
        weights: bytes | None = None,
        parent: str | None = None,
        run_id: str | None = None,
        metrics: dict[str, float] | None = None,
        selection: DataSelection | None = None,
        config: dict[str, Any] | None = None,
        precision: Literal["fp32", "fp16", "int8"] = "fp32",
    ) -> ModelVersion:
        """Store the artifact (and weights) by content and record the version; idempotent per artifact."""
        if kind not in KINDS:
            raise RegistryError(f"kind must be one of {KINDS}, got {kind!r}")
        artifact = self.store.put_bytes(onnx_bytes, prefix=f"models/{kind}")
        weights_ref = None if weights is None else self.store.put_bytes(weights, prefix=f"models/{kind}-weights")
        version = f"{kind}-{artifact.sha256[:12]}"
        with self._locked() as index:
            if version in index.versions:
                return index.versions[version]
            if parent is not None and parent not in index.versions:
                raise RegistryError(f"parent {parent!r} is not a registered version")
            record = ModelVersion(
                kind=kind,
                version=version,
                artifact=artifact,
                weights=weights_ref,
                precision=precision,
                parent=parent,
                run_id=run_id,
                metrics=dict(metrics or {}),
                selection=selection,
                config=dict(config or {}),
            )
            index.versions[version] = record
        return record

    def promote(self, kind: ModelKind, version: str) -> ModelVersion:
        """Make ``version`` the serving one for ``kind`` (the previous stays in the rollback history)."""
        with self._locked() as index:
            record = index.versions.get(version)
            if record is None or record.kind != kind:
                raise RegistryError(f"{version!r} is not a registered {kind}")
            self.store.get_bytes(record.artifact)  # refuse to point serving at a missing or corrupt artifact
            history = index.serving.setdefault(kind, [])
            if not history or history[-1] != version:
                history.append(version)
        return record

    def rollback(self, kind: ModelKind) -> ModelVersion:
        """Serve the previously serving version of ``kind`` again; returns it."""
        with self._locked() as index:
            history = index.serving.get(kind) or []
            if len(history) < 2:
                raise RegistryError(f"no earlier {kind} to roll back to (history: {history})")
            history.pop()
            return index.versions[history[-1]]

    def bootstrap_from_baseline(self, artifacts_dir: Path = ARTIFACTS_DIR) -> dict[str, ModelVersion]:
        """Register the shipped baseline models and serve them for every kind that serves nothing yet.

        Idempotent: a store that already has the baseline (or has moved on from it) is left as is.
        """
        manifest_path = artifacts_dir / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot read the baseline manifest {manifest_path}: {exc}") from exc
        serving = self.serving_versions()
        out: dict[str, ModelVersion] = {}
        for kind in KINDS:
            entry = manifest.get(kind)
            if entry is None:
                raise RegistryError(f"{manifest_path} has no {kind} entry")
            record = self.register(
                kind,
                (artifacts_dir / entry["onnx"]).read_bytes(),
                weights=(artifacts_dir / entry["weights"]).read_bytes(),
                run_id="baseline",
                metrics={k: float(v) for k, v in entry["metrics"].items()},
                config=entry["config"],
                precision=entry.get("precision", "fp32"),
            )
            if kind not in serving:
                self.promote(kind, record.version)
            out[kind] = record
        return out

    # -- internals -----------------------------------------------------------------------------
    def _of_kind(self, kind: ModelKind, version: str) -> ModelVersion:
        record = self.get(version)
        if record.kind != kind:
            raise RegistryError(f"{version} is a {record.kind}, not a {kind}")
        return record

    def _read(self) -> _Index:
        try:
            raw = self.store.read(INDEX_KEY)
        except BlobNotFoundError:
            return _Index()
        return _Index.model_validate_json(raw)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[_Index]:
        """Read-modify-write the index under an exclusive lock.

        On a local store the lock is an ``flock`` beside the index, which serialises the trainer,
        the CLI and tests across processes. Object stores have no such lock; there the trainer is
        the only writer by design (operators promote/rollback through it or when it is idle).
        """
        with self._lock_file():
            index = self._read()
            yield index
            self.store.write(INDEX_KEY, index.model_dump_json(indent=1).encode())

    @contextlib.contextmanager
    def _lock_file(self) -> Iterator[None]:
        url = self.store.url
        if "://" in url and not url.startswith("file://"):
            yield
            return
        root = Path(url.removeprefix("file://")) / "registry"
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
