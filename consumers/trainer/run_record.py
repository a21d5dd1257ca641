"""Durable outcomes of training runs, keyed by the request's idempotency key.

The trainer has no store connection (in embedded mode chDB belongs to the worker), so it keeps its
own record on the blob store: written after the outcome is published and before the request's
offset is committed. A request delivered again finds the record and republishes the same events
(same event ids, so the sink keeps one row) instead of training twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from schemas.blobstore import BlobStore
from schemas.errors import BlobNotFoundError
from schemas.events import ModelPublished, TrainingRunEvent

__all__ = ["RunOutcome", "RunRecords", "run_id_for"]


def run_id_for(idempotency_key: str) -> str:
    """One run id per request, whoever runs it and however often it is delivered."""
    return "run-" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunOutcome:
    """What a run produced: its record for the model database M and any published model."""

    run: TrainingRunEvent
    published: tuple[ModelPublished, ...] = ()

    def to_json(self) -> bytes:
        return json.dumps(
            {"run": self.run.model_dump(mode="json"), "published": [p.model_dump(mode="json") for p in self.published]}
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RunOutcome:
        data = json.loads(raw)
        return cls(
            run=TrainingRunEvent.model_validate(data["run"]),
            published=tuple(ModelPublished.model_validate(p) for p in data["published"]),
        )


class RunRecords:
    """Run outcomes on the blob store under ``runs/``."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store

    def get(self, idempotency_key: str) -> RunOutcome | None:
        try:
            return RunOutcome.from_json(self._store.read(self._key(idempotency_key)))
        except BlobNotFoundError:
            return None

    def put(self, idempotency_key: str, outcome: RunOutcome) -> None:
        self._store.write(self._key(idempotency_key), outcome.to_json())

    @staticmethod
    def _key(idempotency_key: str) -> str:
        return f"runs/{run_id_for(idempotency_key)}.json"
