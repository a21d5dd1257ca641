"""The served models: each agent holds its runner behind one :class:`ModelSlot`.

A batch reads the slot once (runner and version together), so a hot swap on ``models.published``
takes effect between batches and a batch never mixes two models. Loading goes through the
registry, which verifies the artifact's sha256; if anything is wrong the slot keeps the old model.

>>> slot = ModelSlot("runner-a", "v1")
>>> slot.swap("runner-b", "v2")
>>> slot.current
('runner-b', 'v2')
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar

from models.devices import Device
from models.registry import ModelKind, Registry
from models.runners import EncoderRunner, SegmenterRunner

__all__ = ["ModelSlot", "load_encoder", "load_segmenter"]

log = logging.getLogger(__name__)

R = TypeVar("R")


class ModelSlot(Generic[R]):
    """One replaceable reference to (runner, version)."""

    def __init__(self, runner: R, version: str) -> None:
        self._lock = threading.Lock()
        self._current = (runner, version)

    @property
    def current(self) -> tuple[R, str]:
        with self._lock:
            return self._current

    @property
    def version(self) -> str:
        return self.current[1]

    def swap(self, runner: R, version: str) -> None:
        with self._lock:
            self._current = (runner, version)


def _version(registry: Registry, kind: ModelKind, version: str | None) -> str:
    return registry.serving(kind).version if version is None else version


def load_segmenter(
    registry: Registry, version: str | None = None, *, intra_op_threads: int = 1, batch_size: int = 8,
    device: Device = "cpu",
) -> tuple[SegmenterRunner, str]:
    """The segmenter ``version`` (default: the serving one), verified, as an onnxruntime runner."""
    resolved = _version(registry, "segmenter", version)
    runner = SegmenterRunner(
        registry.load_verified("segmenter", resolved), intra_op_threads=intra_op_threads, batch_size=batch_size,
        device=device,
    )
    return runner, resolved


def load_encoder(
    registry: Registry, version: str | None = None, *, intra_op_threads: int = 1, batch_size: int = 8,
    device: Device = "cpu",
) -> tuple[EncoderRunner, str]:
    """The fingerprint encoder ``version`` (default: the serving one), verified, as a runner."""
    resolved = _version(registry, "encoder", version)
    runner = EncoderRunner(
        registry.load_verified("encoder", resolved), intra_op_threads=intra_op_threads, batch_size=batch_size,
        device=device,
    )
    return runner, resolved
