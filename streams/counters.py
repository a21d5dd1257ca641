"""Per-agent counters: processed, failed, dead-lettered, batch sizes, latency.

Kept in memory, bounded (latency percentiles come from a fixed-size window of recent values), and
exported as a JSON-ready snapshot that the worker serves on its loopback web page and writes to
its status file, where ``driftscope status`` reads it.

>>> board = CounterBoard()
>>> c = board.agent("segment")
>>> c.record_batch(size=4, processed=3, dead_lettered=1, latencies_ms=[10.0, 20.0, 30.0])
>>> snap = board.snapshot()["agents"]["segment"]
>>> snap["processed"], snap["dead_lettered"], snap["batches"], snap["batch_size_max"], snap["latency_ms_p50"]
(3, 1, 1, 4, 20.0)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AgentCounters", "CounterBoard"]

_WINDOW = 2048


@dataclass
class AgentCounters:
    """The counters of one agent."""

    name: str
    processed: int = 0
    failed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    batch_size_sum: int = 0
    batch_size_max: int = 0
    retries: int = 0
    last_error: str | None = None
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))

    def record_batch(
        self, *, size: int, processed: int, dead_lettered: int = 0, latencies_ms: Iterable[float] = ()
    ) -> None:
        self.batches += 1
        self.batch_size_sum += size
        self.batch_size_max = max(self.batch_size_max, size)
        self.processed += processed
        self.dead_lettered += dead_lettered
        self._latencies.extend(latencies_ms)

    def record_failure(self, error: BaseException, *, count: int = 1) -> None:
        """An unexpected failure (not a bad input): counted and remembered for status."""
        self.failed += count
        self.last_error = f"{type(error).__name__}: {error}"

    def snapshot(self) -> dict[str, Any]:
        latencies = np.fromiter(self._latencies, dtype=np.float64)
        p50, p99 = (np.percentile(latencies, [50, 99]).tolist() if latencies.size else (None, None))
        return {
            "processed": self.processed,
            "failed": self.failed,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "batch_size_mean": self.batch_size_sum / self.batches if self.batches else None,
            "batch_size_max": self.batch_size_max,
            "retries": self.retries,
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "last_error": self.last_error,
        }


class CounterBoard:
    """The counters of every agent in one worker."""

    def __init__(self) -> None:
        self.started_at = time.time()
        self._agents: dict[str, AgentCounters] = {}

    def agent(self, name: str) -> AgentCounters:
        if name not in self._agents:
            self._agents[name] = AgentCounters(name)
        return self._agents[name]

    def snapshot(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "updated_at": time.time(),
            "agents": {name: counters.snapshot() for name, counters in sorted(self._agents.items())},
        }
