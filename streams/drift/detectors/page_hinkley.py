"""One-sided Page-Hinkley test with explicit state (River's ``drift.PageHinkley``, upward side).

Page-Hinkley compares each value with the running mean of the stream itself rather than with a
known level, so it needs no reference, at the price of adapting to a slow drift while it happens.
River's fading factor is left out: with ``alpha`` < 1 the cumulative sum settles near
``-delta / (1 - alpha)`` with a spread that the threshold must then be scaled to, and a threshold that
is right for standardised inputs at ``alpha = 1`` fires on pure noise at ``alpha = 0.999``.

>>> detector = PageHinkley(delta=0.5, threshold=10.0, min_instances=5)
>>> any(detector.update(x) for x in [0.2, -0.4, 0.1, 0.3, -0.2, 0.0, 0.1, -0.1])
False
>>> next(i for i in range(50) if detector.update(3.0))
6
"""

from __future__ import annotations

from typing import ClassVar

from streams.drift.detectors.base import Detector

__all__ = ["PageHinkley"]


class PageHinkley(Detector):
    """``m = m + (x - mean - delta)``; alarm when ``m - min(m) > threshold``."""

    kind: ClassVar[str] = "page_hinkley"

    def __init__(self, delta: float = 0.5, threshold: float = 10.0, min_instances: int = 30) -> None:
        if delta < 0 or threshold <= 0 or min_instances < 1:
            raise ValueError(
                f"need delta >= 0, threshold > 0, min_instances >= 1; got {delta}, {threshold}, {min_instances}"
            )
        super().__init__(threshold)
        self.delta = float(delta)
        self.min_instances = int(min_instances)
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._cumulative = 0.0
        self._minimum = 0.0
        self._run = 0

    def _step(self, x: float) -> bool:
        self._n += 1
        self._mean += (x - self._mean) / self._n
        self._cumulative += x - self._mean - self.delta
        if self._cumulative <= self._minimum:
            self._minimum = self._cumulative
            self._run = 0
        else:
            self._run += 1
        return self._n >= self.min_instances and self.statistic > self._threshold

    @property
    def statistic(self) -> float:
        return self._cumulative - self._minimum

    @property
    def magnitude(self) -> float:
        """Mean deviation from the running mean over the excursion: ``delta + statistic / run``."""
        return self.delta + self.statistic / self._run if self._run else 0.0

    def params(self) -> dict[str, float]:
        return {
            "delta": self.delta,
            "threshold": self._threshold,
            "min_instances": self.min_instances,
        }

    def _dynamic_state(self) -> dict[str, float]:
        return {
            "n": self._n,
            "mean": self._mean,
            "cumulative": self._cumulative,
            "minimum": self._minimum,
            "run": self._run,
        }

    def _load_dynamic_state(self, state: dict[str, float]) -> None:
        self._n = int(state["n"])
        self._mean = float(state["mean"])
        self._cumulative = float(state["cumulative"])
        self._minimum = float(state["minimum"])
        self._run = int(state["run"])
