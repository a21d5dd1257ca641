"""Per-agent counters: processed, failed, dead-lettered, batch sizes, latency; CPU time per thread group.

Kept in memory, bounded (latency percentiles come from a fixed-size window of recent values), and
exported as a JSON-ready snapshot that the worker serves on its loopback web page and writes to
its status file, where ``driftscope status`` reads it.

The snapshot also holds the CPU seconds spent so far by each group of the worker's threads (the
``ds-<name>_<i>`` executor threads of each agent or resource, the event loop, the rest of the
process): two snapshots an interval apart tell where a worker's cores go, without a profiler.

>>> board = CounterBoard()
>>> c = board.agent("segment")
>>> c.record_batch(size=4, processed=3, dead_lettered=1, latencies_ms=[10.0, 20.0, 30.0])
>>> snap = board.snapshot()["agents"]["segment"]
>>> snap["processed"], snap["dead_lettered"], snap["batches"], snap["batch_size_max"], snap["latency_ms_p50"]
(3, 1, 1, 4, 20.0)
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AgentCounters", "CounterBoard", "thread_cpu_seconds"]

_WINDOW = 2048
#: Executor threads are named ``ds-<name>_<i>`` (``streams.app``); their group is ``<name>``.
_EXECUTOR_THREAD = re.compile(r"^ds-(?P<group>.+)_\d+$")


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
            "cpu_s": thread_cpu_seconds(),
        }


def thread_cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of each thread group, and of the whole ``process``.

    Groups: each executor's name, ``event_loop`` (the main thread, where Faust runs), and
    ``other_threads`` (Python threads of libraries). ``process`` also counts native threads
    (chDB's pools, onnxruntime's if it has any), so it is at least the sum of the groups.
    """
    groups: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, AttributeError):  # the thread has just ended, or the platform has no such clock
            continue
        match = _EXECUTOR_THREAD.match(thread.name)
        if match:
            group = match["group"]
        elif thread is threading.main_thread():
            group = "event_loop"
        else:
            group = "other_threads"
        groups[group] = groups.get(group, 0.0) + seconds
    groups["process"] = time.process_time()
    return groups
