"""One-sided CUSUM (Page, 1954) against a known in-control level.

The drift monitor standardises every signal against its reference window, so the in-control mean
is known (0) and the tabular CUSUM is the natural test: it accumulates ``x - allowance`` and
forgets everything below zero. With ``allowance`` k and ``threshold`` h it is optimal for a shift
of 2k, and its in-control average run length grows like ``exp(2k(h + 1.166)) / (2k^2)``
(Siegmund's approximation), which is how the defaults in ``docs/drift.md`` were chosen.

>>> detector = CUSUM(allowance=1.0, threshold=8.0)
>>> [detector.update(x) for x in [0.3, -1.2, 0.8, -0.1]]
[False, False, False, False]
>>> [detector.update(5.0) for _ in range(3)]
[False, False, True]
>>> detector.run_length, round(detector.magnitude, 2)
(3, 5.0)
"""

from __future__ import annotations

from typing import ClassVar

from streams.drift.detectors.base import Detector

__all__ = ["CUSUM"]


class CUSUM(Detector):
    """Tabular one-sided CUSUM: ``s = max(0, s + x - allowance)``, alarm when ``s > threshold``."""

    kind: ClassVar[str] = "cusum"

    def __init__(self, allowance: float = 1.0, threshold: float = 9.0) -> None:
        if allowance < 0 or threshold <= 0:
            raise ValueError(f"allowance must be >= 0 and threshold > 0, got {allowance}, {threshold}")
        super().__init__(threshold)
        self.allowance = float(allowance)
        self._reset()

    def _reset(self) -> None:
        self._sum = 0.0
        self._run = 0

    def _step(self, x: float) -> bool:
        self._sum = max(0.0, self._sum + x - self.allowance)
        self._run = self._run + 1 if self._sum > 0.0 else 0
        return self._sum > self._threshold

    @property
    def statistic(self) -> float:
        return self._sum

    @property
    def magnitude(self) -> float:
        """The mean input over the excursion: the classic CUSUM estimate ``k + s / run``."""
        return self.allowance + self._sum / self._run if self._run else 0.0

    def params(self) -> dict[str, float]:
        return {"allowance": self.allowance, "threshold": self._threshold}

    def _dynamic_state(self) -> dict[str, float]:
        return {"sum": self._sum, "run": self._run}

    def _load_dynamic_state(self, state: dict[str, float]) -> None:
        self._sum = float(state["sum"])
        self._run = int(state["run"])
