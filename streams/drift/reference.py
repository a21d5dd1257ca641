"""Standardisation of a signal against its reference window: rank-based (normal-score) z-scores.

A median/MAD z-score assumes a symmetric, light-tailed signal. Measured on the synthetic instrument
(``bench/drift.py``), ``p99`` is not: whether a bright (mitotic) nucleus is in the field makes it
bimodal, and 10 % of in-distribution images had a median/MAD |z| above 4, enough false alarms to
mask a real defocus. So a value is scored by its rank among the reference values and mapped through
the inverse normal CDF (``z = Phi^-1((rank + 0.5) / (n + 1))``, ties at their mid-rank): whatever the
reference's shape, in-distribution scores are close to standard normal and the detector thresholds
mean the same on every signal. Beyond the reference range the score continues linearly, so a large
shift still reads as a large z (clipped by the caller). The slope there is the wider of the robust
scale (``1.4826 * MAD``) and the spread of that tail of the reference (outermost tenth of the values
against their normal scores): a heavy tail extrapolates gently, so its rare far values do not
read as shifts. When more than half of the reference values are equal (saturation fraction is
usually exactly 0) the MAD is 0; the mean absolute deviation then takes over, and ``min_scale`` is
the last floor.

>>> reference = RobustReference.fit([10.0, 11.0, 9.0, 10.5, 9.5], min_scale=1e-6)
>>> reference.median, round(reference.scale, 3), round(reference.upper_scale, 3)
(10.0, 0.741, 0.741)
>>> reference.z(10.0), round(reference.z(10.7), 3), round(reference.z(11.7), 3)
(0.0, 0.674, 2.327)
>>> reference.z(100.0, clip=6.0)
6.0
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from streams.drift.errors import DriftStateError

__all__ = ["ABS_Z_MEAN", "ABS_Z_STD", "RobustReference", "transform_value"]

_MAD_TO_SD = 1.4826
_MEAN_ABS_TO_SD = math.sqrt(math.pi / 2.0)
_NORMAL = NormalDist()
#: Share of the reference values at each end whose spread sets the slope beyond the range.
_TAIL_SHARE = 0.1
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
    """The sorted reference values of a signal, their median, robust scale and tail scales."""

    values: tuple[float, ...]
    median: float
    scale: float
    lower_scale: float
    upper_scale: float

    @classmethod
    def fit(cls, values: Sequence[float] | np.ndarray, min_scale: float) -> RobustReference:
        """Fit on the reference window (at least one finite value)."""
        data = np.sort(np.asarray(values, dtype=np.float64))
        if data.size == 0 or not np.isfinite(data).all():
            raise ValueError(f"a reference needs finite values, got {data.size} values")
        median = float(np.median(data))
        deviations = np.abs(data - median)
        scale = _MAD_TO_SD * float(np.median(deviations))
        if scale < min_scale:
            scale = _MEAN_ABS_TO_SD * float(deviations.mean())
        scale = max(scale, min_scale)
        n = int(data.size)
        inner = min(int(_TAIL_SHARE * n), n - 1)
        if inner > 0:
            # normal scores of the extreme value and of the value ``inner`` ranks inside it
            span = _NORMAL.inv_cdf((n - 0.5) / (n + 1)) - _NORMAL.inv_cdf((n - 0.5 - inner) / (n + 1))
            upper = float(data[-1] - data[-1 - inner]) / span
            lower = float(data[inner] - data[0]) / span
        else:
            upper = lower = scale
        return cls(
            values=tuple(data.tolist()),
            median=median,
            scale=scale,
            lower_scale=max(lower, scale),
            upper_scale=max(upper, scale),
        )

    @property
    def size(self) -> int:
        return len(self.values)

    def z(self, value: float, clip: float = math.inf) -> float:
        """The normal score of ``value`` against the reference, clipped to ``±clip``."""
        n = len(self.values)
        below = bisect_left(self.values, value)
        not_above = bisect_right(self.values, value)
        if not_above == 0:
            score = -self._edge(n) + (value - self.values[0]) / self.lower_scale
        elif below == n:
            score = self._edge(n) + (value - self.values[-1]) / self.upper_scale
        else:
            score = _NORMAL.inv_cdf((0.5 * (below + not_above) + 0.5) / (n + 1))
        return min(max(score, -clip), clip)

    @staticmethod
    def _edge(n: int) -> float:
        """The score just outside the reference range: that of a value ranked above all ``n``."""
        return _NORMAL.inv_cdf((n + 0.5) / (n + 1))

    def state_dict(self) -> dict[str, Any]:
        return {
            "values": list(self.values),
            "median": self.median,
            "scale": self.scale,
            "lower_scale": self.lower_scale,
            "upper_scale": self.upper_scale,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RobustReference:
        try:
            values = tuple(sorted(float(v) for v in state["values"]))
            reference = cls(
                values=values,
                median=float(state["median"]),
                scale=float(state["scale"]),
                lower_scale=float(state["lower_scale"]),
                upper_scale=float(state["upper_scale"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftStateError(f"reference checkpoint {state!r} is incomplete: {exc}") from exc
        if not values or min(reference.scale, reference.lower_scale, reference.upper_scale) <= 0:
            raise DriftStateError("reference checkpoint has no values or a non-positive scale")
        return reference
