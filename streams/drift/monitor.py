"""The drift monitor the Faust drift agent runs: one :class:`InstrumentDriftState` per instrument.

Pure logic, no I/O: the agent decodes events, calls the ``observe_*`` method that fits, produces the
returned :class:`~schemas.events.DriftEvent` objects to ``drift.events`` and checkpoints
:meth:`DriftMonitor.state_dict` (or one instrument's ``state_dict`` per table key).

>>> monitor = DriftMonitor()
>>> monitor.instruments
{}
>>> restored = DriftMonitor.from_state(monitor.state_dict())
>>> restored.config == monitor.config
True
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.events import DriftEvent, FingerprintEvent, PredictionEvent
from streams.drift.config import DriftConfig
from streams.drift.errors import DriftStateError
from streams.drift.instrument import STATE_FORMAT, InstrumentDriftState

__all__ = ["DriftMonitor"]


class DriftMonitor:
    """Routes observations to the state of their instrument, creating it on first sight."""

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config or DriftConfig()
        self.instruments: dict[str, InstrumentDriftState] = {}

    def instrument(self, instrument_id: str) -> InstrumentDriftState:
        """The state of ``instrument_id`` (a fresh one the first time)."""
        state = self.instruments.get(instrument_id)
        if state is None:
            state = self.instruments[instrument_id] = InstrumentDriftState(instrument_id, self.config)
        return state

    def observe_fingerprint(self, event: FingerprintEvent) -> list[DriftEvent]:
        return self.instrument(event.instrument_id).observe_fingerprint(event)

    def observe_prediction(self, event: PredictionEvent) -> list[DriftEvent]:
        return self.instrument(event.instrument_id).observe_prediction(event)

    def observe_label_score(
        self,
        image_id: str,
        instrument_id: str,
        dice: float,
        iou: float,
        model_version: str,
        observed_at: datetime | None = None,
    ) -> list[DriftEvent]:
        return self.instrument(instrument_id).observe_label_score(image_id, dice, iou, model_version, observed_at)

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable checkpoint of every instrument."""
        return {
            "format": STATE_FORMAT,
            "config": self.config.model_dump(mode="json"),
            "instruments": {name: state.state_dict() for name, state in self.instruments.items()},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: DriftConfig | None = None) -> DriftMonitor:
        """Resume from :meth:`state_dict`; ``config``, when given, replaces the saved configuration."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            raise DriftStateError(f"drift monitor checkpoint format is not {STATE_FORMAT}")
        try:
            monitor = cls(config or DriftConfig.model_validate(state["config"]))
            for name, instrument_state in state["instruments"].items():
                monitor.instruments[name] = InstrumentDriftState.from_state(instrument_state, monitor.config)
        except DriftStateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DriftStateError(f"drift monitor checkpoint is incomplete or malformed: {exc!r}") from exc
        return monitor
