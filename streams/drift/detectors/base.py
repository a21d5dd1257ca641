"""What every drift detector does, in the shape of River's ``river/base/drift_detector.py``.

A detector here is one-sided: it watches a standardised stream (robust z-scores, in-control mean 0
and spread 1) for a rise of its level. A two-sided watch is two detectors, one on ``z`` and one on
``-z``; that keeps each detector's excursion (when it started, how long it lasted) unambiguous,
which the drift event reports as ``first_seen_at`` and ``window``.

Unlike River's detectors, the state is explicit and JSON-serialisable (:meth:`Detector.state_dict`,
:func:`detector_from_state`): checkpoints live in Kafka-backed tables, and we never unpickle what
a topic hands us.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from streams.drift.errors import DriftStateError

__all__ = ["DETECTOR_KINDS", "Detector", "detector_from_state"]

#: Every detector class by its ``kind``, filled by :meth:`Detector.__init_subclass__`.
DETECTOR_KINDS: dict[str, type[Detector]] = {}


class Detector(abc.ABC):
    """A one-sided sequential change detector with explicit, serialisable state.

    Like River, after an alarm the next :meth:`update` starts from a reset state, so feeding a
    detector past an alarm never reports the same change twice.
    """

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not getattr(cls, "__abstractmethods__", None):
            DETECTOR_KINDS[cls.kind] = cls

    def __init__(self, threshold: float) -> None:
        self._drift_detected = False
        self._threshold = float(threshold)
        #: Updates since the statistic last left its resting value; subclasses advance it in ``_step``.
        self._run = 0

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` raised an alarm."""
        return self._drift_detected

    def update(self, x: float) -> bool:
        """Feed one standardised value; return whether it raised an alarm."""
        if self._drift_detected:
            self.reset()
        self._drift_detected = self._step(float(x))
        return self._drift_detected

    def reset(self) -> None:
        """Forget the stream so far (parameters stay)."""
        self._drift_detected = False
        self._reset()

    @property
    @abc.abstractmethod
    def statistic(self) -> float:
        """The current test statistic; an alarm is ``statistic > threshold``."""

    @property
    def threshold(self) -> float:
        """The alarm threshold on :attr:`statistic`."""
        return self._threshold

    @property
    def run_length(self) -> int:
        """Updates since the current excursion began (0 when the statistic is at rest)."""
        return self._run

    @property
    @abc.abstractmethod
    def magnitude(self) -> float:
        """The estimated size of the shift over the current excursion, in input units."""

    @abc.abstractmethod
    def _step(self, x: float) -> bool:
        """Advance the state by one value; return whether the statistic crossed the threshold."""

    @abc.abstractmethod
    def _reset(self) -> None:
        """Set the dynamic state back to its start."""

    @abc.abstractmethod
    def params(self) -> dict[str, float]:
        """The constructor arguments that recreate this detector."""

    @abc.abstractmethod
    def _dynamic_state(self) -> dict[str, float]:
        """Everything that changes with updates, as JSON numbers."""

    @abc.abstractmethod
    def _load_dynamic_state(self, state: dict[str, float]) -> None:
        """Restore what :meth:`_dynamic_state` returned."""

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable checkpoint: kind, parameters and dynamic state."""
        return {
            "kind": self.kind,
            "params": self.params(),
            "state": {**self._dynamic_state(), "drift_detected": self._drift_detected},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the dynamic part of a :meth:`state_dict` (``state_dict()["state"]``)."""
        try:
            self._load_dynamic_state(state)
            self._drift_detected = bool(state["drift_detected"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftStateError(f"{self.kind} detector state {state!r} is incomplete: {exc}") from exc


def detector_from_state(state: dict[str, Any]) -> Detector:
    """Recreate a detector exactly from :meth:`Detector.state_dict`."""
    try:
        cls = DETECTOR_KINDS[state["kind"]]
        detector = cls(**state["params"])
    except KeyError as exc:
        raise DriftStateError(
            f"unknown detector checkpoint {state!r}: known kinds are {sorted(DETECTOR_KINDS)}"
        ) from exc
    except TypeError as exc:
        raise DriftStateError(f"detector parameters {state.get('params')!r} do not fit {state['kind']}: {exc}") from exc
    dynamic = state.get("state")
    if not isinstance(dynamic, dict):
        raise DriftStateError(f"detector checkpoint {state!r} has no 'state' mapping")
    detector.load_state(dynamic)
    return detector
