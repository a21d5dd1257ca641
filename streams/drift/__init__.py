"""Drift detection for driftscope: pure logic the drift agent wraps (no Faust, no Kafka here).

Signals per instrument (image statistics, fingerprint distance, reconstruction error, prediction
statistics, label scores), each standardised against a reference window and watched by its own
sequential detector with explicit, JSON-serialisable state. See ``docs/drift.md``.
"""

from streams.drift.config import DriftConfig, SignalConfig, default_signals
from streams.drift.detectors import CUSUM, Detector, PageHinkley, detector_from_state
from streams.drift.errors import DriftError, DriftInputError, DriftStateError
from streams.drift.instrument import STATE_FORMAT, UNKNOWN_MODEL_VERSION, InstrumentDriftState
from streams.drift.monitor import DriftMonitor
from streams.drift.reference import RobustReference
from streams.drift.track import Alarm, SignalTrack

__all__ = [
    "CUSUM",
    "STATE_FORMAT",
    "UNKNOWN_MODEL_VERSION",
    "Alarm",
    "Detector",
    "DriftConfig",
    "DriftError",
    "DriftInputError",
    "DriftMonitor",
    "DriftStateError",
    "InstrumentDriftState",
    "PageHinkley",
    "RobustReference",
    "SignalConfig",
    "SignalTrack",
    "default_signals",
    "detector_from_state",
]
