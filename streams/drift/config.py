"""Drift-monitor configuration: one frozen pydantic model, validated once, passed down explicitly.

Every signal has its own :class:`SignalConfig`, so an operator can tighten one signal (say
``image.focus`` on a scope with a drifting stage) without touching the others. The defaults come
from the measurements in ``docs/drift.md`` (``bench/drift.py``): at most about one false alarm per
10,000 in-distribution images per instrument over all signals, and detection of a clear shift in
two to three images.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DriftConfig", "SignalConfig", "default_signals"]

DetectorKind = Literal["cusum", "page_hinkley"]
Direction = Literal["both", "up", "down"]


class SignalConfig(BaseModel):
    """How one signal is standardised and watched.

    The raw value is transformed (``log`` for multiplicative quantities: focus, noise, areas),
    turned into a robust z-score against the reference window (median and MAD, the MAD floored at
    ``min_scale`` so a constant reference cannot divide by zero), clipped to ``±clip`` so a single
    wild image cannot raise an alarm on its own, and fed to the detector. ``input="abs_z"`` feeds
    the standardised ``|z|`` instead, which watches the spread rather than the level.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    detector: DetectorKind = "cusum"
    direction: Direction = "both"
    transform: Literal["identity", "log"] = "identity"
    input: Literal["z", "abs_z"] = "z"
    #: CUSUM allowance k / Page-Hinkley delta, in robust standard deviations.
    allowance: float = Field(default=1.0, ge=0)
    #: CUSUM h / Page-Hinkley lambda.
    threshold: float = Field(default=9.0, gt=0)
    clip: float = Field(default=6.0, gt=0)
    #: Floor of the robust scale, in the units of the transformed value.
    min_scale: float = Field(default=1e-6, gt=0)


def default_signals() -> dict[str, SignalConfig]:
    """The signals the monitor watches unless configured otherwise, with their measured defaults."""
    level = SignalConfig()
    multiplicative = SignalConfig(transform="log")
    rising = SignalConfig(direction="up", transform="log")
    # Means over a few objects per image are noisy and shape changes are modest: a smaller allowance
    # (optimal for a 1-sd shift) with a higher threshold keeps the false-alarm rate (docs/drift.md).
    shape = SignalConfig(allowance=0.5, threshold=14.0)
    # Simulated (docs/drift.md): Dice ~ N(0.85, 0.03), reference of 20 scores: 1 false alarm per
    # ~20,000 label scores, a drop of 0.1 found in a median of 4 scores.
    label = SignalConfig(direction="down", allowance=1.0, threshold=6.0, clip=4.0, min_scale=0.02)
    return {
        "image.p01": level,
        "image.p50": level,
        "image.p99": level,
        "image.std": multiplicative,
        "image.focus": multiplicative,
        "image.noise": multiplicative,
        # Mostly exactly 0 in focus and exposure: a rise of 0.1 % saturated pixels is one unit.
        "image.saturation_fraction": SignalConfig(min_scale=1e-3),
        "fingerprint.distance": rising,
        "fingerprint.reconstruction_error": rising,
        "prediction.foreground_fraction": level,
        "prediction.object_count": level,
        "prediction.mean_confidence": level,
        "prediction.entropy": level,
        "prediction.object_area": shape.model_copy(update={"transform": "log"}),
        # The served U-Net's per-image mean eccentricity has heavier tails than area: h = 14 gave 2 false
        # alarms in 10,000 in-distribution images, h = 16 none (docs/drift.md).
        "prediction.object_eccentricity": shape.model_copy(update={"threshold": 16.0}),
        "label.dice": label,
        "label.iou": label,
    }


class DriftConfig(BaseModel):
    """Reference windows, alarm handling and the per-signal settings of a :class:`DriftMonitor`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Images of a model version that form the reference of every image and prediction signal.
    reference_size: int = Field(default=100, ge=10)
    #: Label scores that form the reference of the label signals (labels arrive rarely).
    label_reference_size: int = Field(default=20, ge=3)
    #: Observations a signal stays silent after an alarm, before it is re-armed with a fresh detector.
    cooldown: int = Field(default=500, ge=0)
    #: Most recent image ids a drift event carries as evidence.
    evidence_size: int = Field(default=16, ge=1, le=1000)
    #: Most recent image ids per source remembered to ignore redelivered events (at-least-once replays).
    dedupe_window: int = Field(default=64, ge=1, le=10_000)
    #: Estimated shift (robust standard deviations) from which an event is "medium", then "high".
    severity_medium: float = Field(default=2.0, gt=0)
    severity_high: float = Field(default=4.0, gt=0)
    signals: dict[str, SignalConfig] = Field(default_factory=default_signals)

    @model_validator(mode="after")
    def _ordered_severity(self) -> DriftConfig:
        if self.severity_high < self.severity_medium:
            raise ValueError(f"severity_high {self.severity_high} is below severity_medium {self.severity_medium}")
        return self

    def signal(self, name: str) -> SignalConfig:
        """The settings of ``name``; a signal missing from :attr:`signals` is disabled."""
        return self.signals.get(name, _DISABLED)


_DISABLED = SignalConfig(enabled=False)
