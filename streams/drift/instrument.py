"""The drift state of one instrument: every signal's track, the latent reference, the versions.

The drift agent keeps one :class:`InstrumentDriftState` per instrument (topics are keyed by
``instrument_id``, so one worker sees all of an instrument's events in order) and checkpoints
:meth:`InstrumentDriftState.state_dict` — plain JSON — in a table, so a restart resumes.

References follow the served model: when predictions start to carry a new segmenter version, every
signal starts a new reference window (the new model was trained for the data now arriving); when
fingerprints carry a new encoder version, the two fingerprint signals do (the latent space changed).
Label scores of another segmenter version than the current one are ignored: they judge a model that
no longer serves.

Delivery is at-least-once, so the same event may come twice after a crash or a rebalance. An
image id seen among the last ``dedupe_window`` of its source is ignored (the detectors must not
count it twice), and a drift event's id is derived from what raised it (instrument, signal,
detector, model version, image), so a replay that raises it again yields the same ``event_id`` and
the idempotent sinks keep one.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from schemas.events import DriftEvent, FingerprintEvent, PredictionEvent
from streams.drift.config import DriftConfig
from streams.drift.errors import DriftInputError, DriftStateError
from streams.drift.signals import (
    LatentReference,
    image_stat_values,
    label_values,
    prediction_values,
    reconstruction_value,
)
from streams.drift.track import Alarm, SignalTrack

__all__ = ["STATE_FORMAT", "UNKNOWN_MODEL_VERSION", "InstrumentDriftState"]

#: Version of the checkpoint layout; :meth:`InstrumentDriftState.from_state` refuses other versions.
STATE_FORMAT = 1
#: ``DriftEvent.model_version`` before any prediction has told which segmenter serves.
UNKNOWN_MODEL_VERSION = "unknown"

Source = Literal["fingerprint", "prediction", "label"]
_SOURCES: tuple[Source, ...] = ("fingerprint", "prediction", "label")
_DISTANCE = "fingerprint.distance"
_ENCODER_SIGNALS = (_DISTANCE, "fingerprint.reconstruction_error")
#: Namespace of the name-based (uuid5) ids of drift events.
_EVENT_NAMESPACE = uuid.UUID("5d1c7a52-8f0e-4a55-9a43-3b1f0c0de7a1")


class InstrumentDriftState:
    """All drift signals of one instrument and the reference they are measured against."""

    def __init__(self, instrument_id: str, config: DriftConfig | None = None) -> None:
        self.instrument_id = instrument_id
        self.config = config or DriftConfig()
        #: the segmenter version the predictions carry, once one has been seen
        self.model_version: str | None = None
        self.encoder_version: str | None = None
        self.tracks: dict[str, SignalTrack] = {}
        self.latent_reference: LatentReference | None = None
        self._pending_latents: list[list[float]] = []
        window = max(self.config.dedupe_window, self.config.evidence_size)
        self._recent: dict[Source, deque[str]] = {s: deque(maxlen=window) for s in _SOURCES}
        self.counters: dict[str, int] = {
            "fingerprints": 0,
            "predictions": 0,
            "label_scores": 0,
            "ignored_label_scores": 0,
            "reference_resets": 0,
            "duplicates": 0,
            "drift_events": 0,
        }

    # -- observations ------------------------------------------------------------------------

    def observe_fingerprint(self, event: FingerprintEvent) -> list[DriftEvent]:
        """Image-statistics, latent-distance and reconstruction-error signals of one image."""
        self._check_instrument(event.instrument_id)
        if self._is_duplicate("fingerprint", event.image_id):
            return []
        if event.encoder_version != self.encoder_version:
            if self.encoder_version is not None:
                self._reset(_ENCODER_SIGNALS)
            self.encoder_version = event.encoder_version
        self.counters["fingerprints"] += 1
        values = image_stat_values(event.stats) | reconstruction_value(event)
        distance = self._latent_distance(event.latent)
        if distance is not None:
            values[_DISTANCE] = distance
        return self._observe("fingerprint", values, event.image_id, event.acquired_at)

    def observe_prediction(self, event: PredictionEvent) -> list[DriftEvent]:
        """Prediction signals of one image; a new segmenter version starts new references."""
        self._check_instrument(event.instrument_id)
        if self._is_duplicate("prediction", event.image_id):
            return []
        if event.model_version != self.model_version:
            if self.model_version is not None:
                self._reset(None)
            self.model_version = event.model_version
        self.counters["predictions"] += 1
        return self._observe("prediction", prediction_values(event), event.image_id, event.acquired_at)

    def observe_label_score(
        self, image_id: str, dice: float, iou: float, model_version: str, observed_at: datetime | None = None
    ) -> list[DriftEvent]:
        """Dice and IoU of the served model on a labelled image (scores of other versions are ignored)."""
        values = label_values(dice, iou)
        if self._is_duplicate("label", image_id):
            return []
        if self.model_version is None:
            self.model_version = model_version
        elif model_version != self.model_version:
            self.counters["ignored_label_scores"] += 1
            return []
        self.counters["label_scores"] += 1
        return self._observe("label", values, image_id, observed_at or datetime.now(UTC))

    # -- internals ---------------------------------------------------------------------------

    def _check_instrument(self, instrument_id: str) -> None:
        if instrument_id != self.instrument_id:
            raise DriftInputError(
                f"event of instrument {instrument_id!r} sent to the state of {self.instrument_id!r}; "
                "route events by instrument_id"
            )

    def _latent_distance(self, latent: list[float]) -> float | None:
        """The latent's distance to the reference; collects the reference latents first."""
        if not self.config.signal(_DISTANCE).enabled:
            return None
        if self.latent_reference is not None:
            return self.latent_reference.distance(latent)
        if self._pending_latents and len(latent) != len(self._pending_latents[0]):
            raise DriftInputError(
                f"latent has {len(latent)} dimensions, earlier ones had {len(self._pending_latents[0])}; "
                "an encoder with another latent width must carry another encoder_version"
            )
        self._pending_latents.append(list(latent))
        if len(self._pending_latents) >= self.config.reference_size:
            self.latent_reference = LatentReference.fit(self._pending_latents)
            # The reference images' own distances form the reference of the distance signal, so it
            # is ready as soon as the latent reference is (instead of another reference window later).
            track = self._track(_DISTANCE)
            if track is not None:
                track.extend_reference(self.latent_reference.distance(v) for v in self._pending_latents[:-1])
            self._pending_latents = []
            return self.latent_reference.distance(latent)
        return None

    def _track(self, name: str) -> SignalTrack | None:
        track = self.tracks.get(name)
        if track is None:
            config = self.config.signal(name)
            if not config.enabled:
                return None
            size = self.config.label_reference_size if name.startswith("label.") else self.config.reference_size
            track = self.tracks[name] = SignalTrack(name, config, size, self.config.cooldown)
        return track

    def _is_duplicate(self, source: Source, image_id: str) -> bool:
        """Whether ``image_id`` was among the last observations of ``source`` (a redelivery)."""
        if image_id in self._recent[source]:
            self.counters["duplicates"] += 1
            return True
        return False

    def _observe(self, source: Source, values: Mapping[str, float], image_id: str, at: datetime) -> list[DriftEvent]:
        self._recent[source].append(image_id)
        events = []
        for name, value in values.items():
            track = self._track(name)
            if track is None:
                continue
            alarm = track.observe(value, image_id, at)
            if alarm is not None:
                events.append(self._event(alarm, source, image_id))
        self.counters["drift_events"] += len(events)
        return events

    def _event(self, alarm: Alarm, source: Source, image_id: str) -> DriftEvent:
        recent = list(self._recent[source])
        evidence = recent[-min(max(alarm.window, 1), self.config.evidence_size, len(recent)) :]
        severity: Literal["low", "medium", "high"]
        if alarm.magnitude >= self.config.severity_high:
            severity = "high"
        elif alarm.magnitude >= self.config.severity_medium:
            severity = "medium"
        else:
            severity = "low"
        model_version = self.model_version or UNKNOWN_MODEL_VERSION
        name = "|".join((self.instrument_id, alarm.signal, alarm.detector, model_version, image_id))
        return DriftEvent(
            event_id=uuid.uuid5(_EVENT_NAMESPACE, name),
            detector=alarm.detector,
            signal=alarm.signal,
            instrument_id=self.instrument_id,
            model_version=model_version,
            statistic=alarm.statistic,
            threshold=alarm.threshold,
            window=alarm.window,
            first_seen_at=alarm.first_seen_at,
            evidence=evidence,
            severity=severity,
        )

    def _reset(self, names: tuple[str, ...] | None) -> None:
        """Start new reference windows for ``names`` (every signal when None)."""
        self.counters["reference_resets"] += 1
        if names is None:
            self.tracks.clear()
        else:
            for name in names:
                self.tracks.pop(name, None)
        if names is None or _DISTANCE in names:
            self.latent_reference = None
            self._pending_latents = []

    # -- checkpoint --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable checkpoint of everything: config, versions, references, detectors."""
        return {
            "format": STATE_FORMAT,
            "instrument_id": self.instrument_id,
            "config": self.config.model_dump(mode="json"),
            "model_version": self.model_version,
            "encoder_version": self.encoder_version,
            "tracks": {name: track.state_dict() for name, track in self.tracks.items()},
            "latent_reference": None if self.latent_reference is None else self.latent_reference.state_dict(),
            "pending_latents": [list(v) for v in self._pending_latents],
            "recent": {source: list(ids) for source, ids in self._recent.items()},
            "counters": dict(self.counters),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], config: DriftConfig | None = None) -> InstrumentDriftState:
        """Resume from :meth:`state_dict`; ``config``, when given, replaces the saved configuration."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise DriftStateError(f"drift checkpoint format {found!r} is not {STATE_FORMAT}")
        try:
            config = config or DriftConfig.model_validate(state["config"])
            restored = cls(str(state["instrument_id"]), config)
            restored.model_version = state["model_version"]
            restored.encoder_version = state["encoder_version"]
            for name, track_state in state["tracks"].items():
                signal = config.signal(name)
                if not signal.enabled:
                    continue
                size = config.label_reference_size if name.startswith("label.") else config.reference_size
                restored.tracks[name] = SignalTrack.from_state(name, signal, size, config.cooldown, track_state)
            latent = state["latent_reference"]
            restored.latent_reference = None if latent is None else LatentReference.from_state(latent)
            restored._pending_latents = [[float(x) for x in v] for v in state["pending_latents"]]
            for source in _SOURCES:
                restored._recent[source].extend(str(i) for i in state["recent"].get(source, []))
            restored.counters.update({k: int(v) for k, v in state["counters"].items()})
        except DriftStateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DriftStateError(f"drift checkpoint is incomplete or malformed: {exc!r}") from exc
        return restored
