"""One signal of one instrument: its reference window, its standardisation, its detectors.

A signal first collects ``reference_size`` values and fits a :class:`RobustReference` on them. From
then on each value becomes a clipped robust z-score fed to one detector per watched direction (a
rise on ``z``, a fall on ``-z``). When a detector fires, the track reports one :class:`Alarm`,
resets its detectors and stays silent for ``cooldown`` observations, so a lasting shift gives one
event per cooldown instead of a flood.

>>> from streams.drift.config import SignalConfig
>>> track = SignalTrack("image.p50", SignalConfig(), reference_size=20, cooldown=100)
>>> import datetime as dt
>>> at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
>>> [track.observe(v, f"ref{i}", at) for i, v in enumerate([10.0, 11.0, 9.0, 10.5, 9.5] * 4)] == [None] * 20
True
>>> alarms = [track.observe(30.0, f"img{i}", at) for i in range(3)]
>>> [alarm is not None for alarm in alarms]  # the third falls in the cooldown
[False, True, False]
>>> alarms[1].direction, alarms[1].window, alarms[1].first_seen_image
('up', 2, 'img0')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from streams.drift.config import SignalConfig
from streams.drift.detectors import CUSUM, Detector, PageHinkley
from streams.drift.errors import DriftStateError
from streams.drift.reference import ABS_Z_MEAN, ABS_Z_STD, RobustReference, transform_value

__all__ = ["Alarm", "SignalTrack", "make_detector"]

Side = Literal["up", "down"]


def make_detector(config: SignalConfig) -> Detector:
    """A fresh detector as ``config`` describes it."""
    if config.detector == "page_hinkley":
        return PageHinkley(delta=config.allowance, threshold=config.threshold)
    return CUSUM(allowance=config.allowance, threshold=config.threshold)


def _sides(config: SignalConfig) -> tuple[Side, ...]:
    return ("up", "down") if config.direction == "both" else (config.direction,)


@dataclass(frozen=True)
class Alarm:
    """A detector crossed its threshold: what the drift event will say."""

    signal: str
    detector: str
    direction: Side
    statistic: float
    threshold: float
    window: int
    magnitude: float
    first_seen_image: str
    first_seen_at: datetime


class SignalTrack:
    """Reference window, standardisation, detectors and cooldown of one signal of one instrument."""

    def __init__(self, name: str, config: SignalConfig, reference_size: int, cooldown: int) -> None:
        self.name = name
        self.config = config
        self.reference_size = reference_size
        self.cooldown = cooldown
        self.reference: RobustReference | None = None
        self._pending: list[float] = []
        self._detectors: dict[Side, Detector] = {side: make_detector(config) for side in _sides(config)}
        #: image id and time at which each side's current excursion began
        self._starts: dict[Side, tuple[str, datetime] | None] = dict.fromkeys(self._detectors)
        self._cooldown_left = 0

    @property
    def cooling_down(self) -> bool:
        return self._cooldown_left > 0

    def extend_reference(self, raw_values: Iterable[float]) -> None:
        """Add values to a reference still being collected (fits it once it is full)."""
        for value in raw_values:
            if self.reference is not None:
                return
            self._collect(transform_value(value, self.config.transform))

    def observe(self, raw_value: float, image_id: str, at: datetime) -> Alarm | None:
        """Take one value; return an alarm when a detector fires on it."""
        value = transform_value(raw_value, self.config.transform)
        if self.reference is None:
            self._collect(value)
            return None
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            return None
        z = self.reference.z(value, clip=self.config.clip)
        x = (abs(z) - ABS_Z_MEAN) / ABS_Z_STD if self.config.input == "abs_z" else z
        for side, detector in self._detectors.items():
            fired = detector.update(x if side == "up" else -x)
            if detector.run_length == 1:
                self._starts[side] = (image_id, at)
            elif detector.run_length == 0:
                self._starts[side] = None
            if fired:
                return self._alarm(side, detector, image_id, at)
        return None

    def _collect(self, value: float) -> None:
        self._pending.append(value)
        if len(self._pending) >= self.reference_size:
            self.reference = RobustReference.fit(self._pending, min_scale=self.config.min_scale)
            self._pending = []

    def _alarm(self, side: Side, detector: Detector, image_id: str, at: datetime) -> Alarm:
        start_image, start_at = self._starts[side] or (image_id, at)
        alarm = Alarm(
            signal=self.name,
            detector=f"{detector.kind}.{side}",
            direction=side,
            statistic=detector.statistic,
            threshold=detector.threshold,
            window=detector.run_length,
            magnitude=detector.magnitude,
            first_seen_image=start_image,
            first_seen_at=start_at,
        )
        for other in self._detectors.values():
            other.reset()
        self._starts = dict.fromkeys(self._detectors)
        self._cooldown_left = self.cooldown
        return alarm

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: reference (or the values collected so far), detectors, cooldown."""
        return {
            "reference": None if self.reference is None else self.reference.state_dict(),
            "pending": list(self._pending),
            "detectors": {side: det.state_dict() for side, det in self._detectors.items()},
            "starts": {
                side: None if start is None else [start[0], start[1].isoformat()]
                for side, start in self._starts.items()
            },
            "cooldown_left": self._cooldown_left,
        }

    @classmethod
    def from_state(
        cls, name: str, config: SignalConfig, reference_size: int, cooldown: int, state: dict[str, Any]
    ) -> SignalTrack:
        """Resume from :meth:`state_dict` under ``config``.

        Detector parameters always come from ``config``, so a changed threshold applies from the
        restart on; the dynamic state carries over where the detector kind is unchanged.
        """
        track = cls(name, config, reference_size, cooldown)
        try:
            reference = state["reference"]
            track.reference = None if reference is None else RobustReference.from_state(reference)
            track._pending = [float(v) for v in state["pending"]]
            track._cooldown_left = int(state["cooldown_left"])
            for side, detector in track._detectors.items():
                saved = state["detectors"].get(side)
                if saved is None or saved.get("kind") != detector.kind:
                    continue
                detector.load_state(saved["state"])
                start = state["starts"].get(side)
                track._starts[side] = None if start is None else (str(start[0]), datetime.fromisoformat(start[1]))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise DriftStateError(f"checkpoint of signal {name} is incomplete: {exc}") from exc
        return track
