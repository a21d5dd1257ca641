"""Robust standardisation of a signal against its reference window.

Median and MAD instead of mean and standard deviation, because a reference window of a hundred
images routinely holds a few odd ones (a bubble, a half-empty field) that would otherwise widen the
scale and blunt every detector. ``1.4826 * MAD`` estimates the standard deviation of normal data.
When more than half of the reference values are identical (saturation fraction is usually exactly
0) the MAD is 0; the mean absolute deviation then takes over, and ``min_scale`` is the last floor.

>>> reference = RobustReference.fit([10.0, 11.0, 9.0, 10.5, 9.5], min_scale=1e-6)
>>> reference.median, round(reference.scale, 3)
(10.0, 0.741)
>>> round(reference.z(11.0), 3), reference.z(100.0, clip=6.0)
(1.349, 6.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.drift.errors import DriftStateError

__all__ = ["ABS_Z_MEAN", "ABS_Z_STD", "RobustReference", "transform_value"]

_MAD_TO_SD = 1.4826
_MEAN_ABS_TO_SD = math.sqrt(math.pi / 2.0)
#: Mean and standard deviation of |z| for a standard normal z: they standardise the spread input.
ABS_Z_MEAN = math.sqrt(2.0 / math.pi)
ABS_Z_STD = math.sqrt(1.0 - 2.0 / math.pi)
#: log() of values at or below this is taken at this value: a zero focus or area is an anomaly, not -inf.
_LOG_FLOOR = 1e-12


def transform_value(value: float, transform: str) -> float:
    """Apply a signal's transform (``identity`` or ``log``) to a raw value."""
    if transform == "log":
        return math.log(max(value, _LOG_FLOOR))
    return value


@dataclass(frozen=True)
class RobustReference:
    """The centre and scale of a signal's reference window."""

    median: float
    scale: float
    size: int

    @classmethod
    def fit(cls, values: Sequence[float], min_scale: float) -> RobustReference:
        """Median and robust scale of ``values`` (at least one)."""
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0 or not np.isfinite(data).all():
            raise ValueError(f"a reference needs finite values, got {data.size} values")
        median = float(np.median(data))
        deviations = np.abs(data - median)
        scale = _MAD_TO_SD * float(np.median(deviations))
        if scale < min_scale:
            scale = _MEAN_ABS_TO_SD * float(deviations.mean())
        return cls(median=median, scale=max(scale, min_scale), size=int(data.size))

    def z(self, value: float, clip: float = math.inf) -> float:
        """The robust z-score of ``value``, clipped to ``±clip``."""
        score = (value - self.median) / self.scale
        return min(max(score, -clip), clip)

    def state_dict(self) -> dict[str, Any]:
        return {"median": self.median, "scale": self.scale, "size": self.size}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RobustReference:
        try:
            return cls(median=float(state["median"]), scale=float(state["scale"]), size=int(state["size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftStateError(f"reference checkpoint {state!r} is incomplete: {exc}") from exc
