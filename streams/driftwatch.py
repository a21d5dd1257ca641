"""The drift step: fingerprints, predictions and labels → ``drift.events``, state checkpointed.

Wraps :class:`streams.drift.InstrumentDriftState` (the pure detectors, one state per instrument)
with what a long-running consumer needs:

- **checkpoints**: after every batch, the state of each instrument the batch touched is written to
  the blob store (``drift/<app>/<sha256(instrument)>.json``, atomically), together with the last
  offset applied per topic-partition. The write happens before the batch is acknowledged, so a
  restarted or rebalanced worker resumes from exactly what was committed; records replayed after a
  crash (at-least-once) whose offsets the checkpoint already covers are skipped, so no observation
  counts twice.
- **label scores**: a label is scored (Dice, IoU of the served mask against the annotator's) when
  the prediction for its image was seen by this worker; the last ``max_pending_predictions``
  prediction masks are remembered by reference. Labels for unknown images are counted and skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from models.metrics import dice, iou
from schemas.blobstore import BlobStore
from schemas.claimcheck import array_from_blob, label_mask
from schemas.codec import decode
from schemas.errors import BlobError, BlobNotFoundError, SchemaError
from schemas.events import BlobRef, DriftEvent, Event, FingerprintEvent, LabelEvent, PredictionEvent
from schemas.topics import event_type
from streams.drift import DriftConfig, DriftError, InstrumentDriftState
from streams.logs import log_event
from streams.messages import Outcome, RawMessage, output_for

__all__ = ["DRIFT_TOPIC", "DriftWatch"]

log = logging.getLogger(__name__)

DRIFT_TOPIC = "drift.events"
_INPUTS = (FingerprintEvent, PredictionEvent, LabelEvent)
_CHECKPOINT_FORMAT = "driftscope.drift-checkpoint/1"


class DriftWatch:
    """Per-instrument drift state, fed by decoded events, checkpointed to the blob store."""

    def __init__(
        self,
        blobs: BlobStore,
        *,
        namespace: str,
        config: DriftConfig | None = None,
        max_pending_predictions: int = 10_000,
    ) -> None:
        self.blobs = blobs
        self.namespace = namespace
        self.config = config or DriftConfig()
        self.max_pending_predictions = max_pending_predictions
        self._states: dict[str, InstrumentDriftState] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._predictions: OrderedDict[str, tuple[BlobRef, str]] = OrderedDict()
        self.skipped_replays = 0
        self.unmatched_labels = 0

    def checkpoint_key(self, instrument_id: str) -> str:
        digest = hashlib.sha256(instrument_id.encode()).hexdigest()[:40]
        return f"drift/{self.namespace}/{digest}.json"

    def process(self, messages: Sequence[RawMessage]) -> Outcome:
        outcome = Outcome()
        touched: set[str] = set()
        for message in messages:
            try:
                event = decode(message.value, expected=_expected_on(message.topic))
            except SchemaError as exc:
                outcome.dead(message, exc)
                continue
            assert isinstance(event, _INPUTS)
            instrument_id = event.instrument_id
            if self._already_applied(instrument_id, message):
                self.skipped_replays += 1
                continue
            try:
                alarms = self._observe(event)
            except (DriftError, BlobError, SchemaError, ValueError) as exc:
                outcome.dead(message, exc)
                continue
            self._positions[instrument_id][_tp(message)] = message.offset
            touched.add(instrument_id)
            outcome.processed += 1
            for alarm in alarms:
                outcome.outputs.append(output_for(DRIFT_TOPIC, alarm.instrument_id, alarm))
                log_event(log, "drift_detected", instrument_id=alarm.instrument_id, signal=alarm.signal,
                          detector=alarm.detector, statistic=alarm.statistic, severity=alarm.severity)
        for instrument_id in touched:
            self._checkpoint(instrument_id)
        return outcome

    # -- observation ---------------------------------------------------------------------------
    def _observe(self, event: Event) -> list[DriftEvent]:
        if isinstance(event, FingerprintEvent):
            return self.state(event.instrument_id).observe_fingerprint(event)
        if isinstance(event, PredictionEvent):
            self._remember_prediction(event)
            return self.state(event.instrument_id).observe_prediction(event)
        assert isinstance(event, LabelEvent)
        served = self._predictions.get(event.image_id)
        if served is None:
            self.unmatched_labels += 1
            log_event(log, "label_without_prediction", image_id=event.image_id, instrument_id=event.instrument_id)
            return []
        mask_ref, model_version = served
        predicted = array_from_blob(mask_ref, self.blobs)
        truth = label_mask(event, self.blobs)
        if predicted.shape != truth.shape:
            raise ValueError(f"label mask {truth.shape} does not match the predicted mask {predicted.shape}")
        return self.state(event.instrument_id).observe_label_score(
            event.image_id, dice(predicted, truth), iou(predicted, truth), model_version, event.created_at
        )

    def _remember_prediction(self, event: PredictionEvent) -> None:
        self._predictions[event.image_id] = (event.mask, event.model_version)
        self._predictions.move_to_end(event.image_id)
        while len(self._predictions) > self.max_pending_predictions:
            self._predictions.popitem(last=False)

    # -- state and checkpoints -----------------------------------------------------------------
    def state(self, instrument_id: str) -> InstrumentDriftState:
        """The drift state of ``instrument_id``: from memory, else its checkpoint, else fresh."""
        if instrument_id not in self._states:
            self._load(instrument_id)
        return self._states[instrument_id]

    def _already_applied(self, instrument_id: str, message: RawMessage) -> bool:
        if instrument_id not in self._states:
            self._load(instrument_id)
        last = self._positions[instrument_id].get(_tp(message))
        return last is not None and message.offset <= last

    def _load(self, instrument_id: str) -> None:
        state: InstrumentDriftState | None = None
        positions: dict[str, int] = {}
        try:
            saved: dict[str, Any] = json.loads(self.blobs.read(self.checkpoint_key(instrument_id)))
            if saved.get("format") != _CHECKPOINT_FORMAT:
                raise DriftError(f"unknown checkpoint format {saved.get('format')!r}")
            state = InstrumentDriftState.from_state(saved["state"], self.config)
            positions = {str(k): int(v) for k, v in saved["positions"].items()}
            log_event(log, "drift_state_restored", instrument_id=instrument_id, positions=positions)
        except BlobNotFoundError:
            pass
        except (DriftError, BlobError, KeyError, TypeError, ValueError) as exc:
            # A damaged checkpoint must not stop monitoring: start afresh and say so.
            log_event(log, "drift_state_unreadable", level=logging.ERROR, instrument_id=instrument_id, error=str(exc))
        self._states[instrument_id] = state or InstrumentDriftState(instrument_id, self.config)
        self._positions[instrument_id] = positions

    def _checkpoint(self, instrument_id: str) -> None:
        document = {
            "format": _CHECKPOINT_FORMAT,
            "instrument_id": instrument_id,
            "positions": self._positions[instrument_id],
            "state": self._states[instrument_id].state_dict(),
        }
        self.blobs.write(self.checkpoint_key(instrument_id), json.dumps(document, separators=(",", ":")).encode())

    def forget(self, instrument_ids: Sequence[str] | None = None) -> None:
        """Drop in-memory state (after a rebalance the next owner resumes from the checkpoint)."""
        for instrument_id in list(self._states if instrument_ids is None else instrument_ids):
            self._states.pop(instrument_id, None)
            self._positions.pop(instrument_id, None)


def _expected_on(topic: str) -> type[Event] | tuple[type[Event], ...]:
    """What the drift agent accepts on ``topic``: the event the topic carries, so a fingerprint
    sent to ``labels`` is dead-lettered rather than observed as if it came from where it belongs."""
    carried = event_type(topic)
    return carried if carried in _INPUTS else _INPUTS


def _tp(message: RawMessage) -> str:
    return f"{message.topic}/{message.partition}"
