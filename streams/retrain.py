"""The retrain trigger: ``drift.events`` → ``retrain.requests``, debounced and idempotent.

Per instrument, drift events accumulate until the policy is met (:class:`RetrainPolicy`):

- at least ``min_events`` drift events naming at least ``min_evidence_images`` distinct images;
- at least ``cooldown_s`` since the last request for the instrument (read back from the store on
  first sight, so a restart does not reset the cooldown);
- at least ``min_labelled_images`` labelled images of the instrument in the training window —
  until then the trigger waits (and says so in the log) rather than asking for a hopeless run.

The request names the data to train on (time window, instrument, its labelled images, and the
labelled images of any instrument nearest to the drifted images' mean fingerprint), the base model
version and an idempotency key derived from the drift events that caused it: a replay of the same
events yields the same key, which the trainer and the store use to do the work once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from consumers.store import Store
from consumers.store.queries import labelled_image_ids, nearest_images
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.events import DataSelection, DriftEvent, RetrainRequest, utcnow
from streams.config import RetrainPolicy
from streams.drift import UNKNOWN_MODEL_VERSION
from streams.logs import log_event
from streams.messages import Outcome, RawMessage, output_for

__all__ = ["RETRAIN_TOPIC", "RetrainTrigger"]

log = logging.getLogger(__name__)

RETRAIN_TOPIC = "retrain.requests"


@dataclass
class _Pending:
    """Drift evidence gathered for one instrument since its last request."""

    event_ids: list[str] = field(default_factory=list)
    evidence: set[str] = field(default_factory=set)
    first_seen_at: datetime | None = None
    model_version: str = UNKNOWN_MODEL_VERSION
    last_request_at: datetime | None = None

    def add(self, event: DriftEvent) -> None:
        if str(event.event_id) in self.event_ids:
            return
        self.event_ids.append(str(event.event_id))
        self.evidence.update(event.evidence)
        if self.first_seen_at is None or event.first_seen_at < self.first_seen_at:
            self.first_seen_at = event.first_seen_at
        if event.model_version != UNKNOWN_MODEL_VERSION:
            self.model_version = event.model_version


class RetrainTrigger:
    """Debounces drift events into retrain requests, querying the store for labels and neighbours."""

    def __init__(
        self,
        store: Store,
        policy: RetrainPolicy,
        *,
        serving_version: Callable[[], str],
        encoder_version: Callable[[], str | None],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.policy = policy
        self.serving_version = serving_version
        self.encoder_version = encoder_version
        self.clock = clock
        self._pending: dict[str, _Pending] = {}

    def process(self, messages: Sequence[RawMessage]) -> Outcome:
        outcome = Outcome()
        for message in messages:
            try:
                event = decode(message.value, expected=DriftEvent)
            except SchemaError as exc:
                outcome.dead(message, exc)
                continue
            assert isinstance(event, DriftEvent)
            pending = self._pending_for(event.instrument_id)
            pending.add(event)
            request = self._maybe_request(event.instrument_id, pending)
            if request is not None:
                outcome.outputs.append(output_for(RETRAIN_TOPIC, request.idempotency_key, request))
            outcome.processed += 1
        return outcome

    def _pending_for(self, instrument_id: str) -> _Pending:
        if instrument_id not in self._pending:
            rows = self.store.query(
                "SELECT max(created_at) AS last FROM retrain_requests FINAL WHERE instrument_id = %(i)s",
                {"i": instrument_id},
            )
            last = rows[0]["last"] if rows else None
            # ClickHouse returns the epoch for max() over no rows.
            self._pending[instrument_id] = _Pending(last_request_at=last if last and last.year > 1970 else None)
        return self._pending[instrument_id]

    def _maybe_request(self, instrument_id: str, pending: _Pending) -> RetrainRequest | None:
        policy, now = self.policy, self.clock()
        if len(pending.event_ids) < policy.min_events or len(pending.evidence) < policy.min_evidence_images:
            return None
        if pending.last_request_at is not None and now - pending.last_request_at < timedelta(seconds=policy.cooldown_s):
            return None
        assert pending.first_seen_at is not None  # set by the first event added
        since = pending.first_seen_at - timedelta(seconds=policy.lookback_s)
        labelled = labelled_image_ids(self.store, instrument_id=instrument_id, since=since)
        if len(labelled) < policy.min_labelled_images:
            log_event(log, "retrain_waiting_for_labels", instrument_id=instrument_id, labelled=len(labelled),
                      needed=policy.min_labelled_images, drift_events=len(pending.event_ids))
            return None
        base = pending.model_version if pending.model_version != UNKNOWN_MODEL_VERSION else self.serving_version()
        request = RetrainRequest(
            idempotency_key=_key(instrument_id, pending.event_ids),
            reason=list(pending.event_ids),
            instrument_id=instrument_id,
            base_model_version=base,
            selection=DataSelection(
                time_from=since,
                time_to=now,
                instrument_id=instrument_id,
                labelled_image_ids=labelled,
                neighbour_image_ids=self._neighbours(sorted(pending.evidence), exclude=set(labelled)),
            ),
            hyperparameters=dict(policy.hyperparameters),
        )
        log_event(log, "retrain_requested", instrument_id=instrument_id, key=request.idempotency_key,
                  drift_events=len(pending.event_ids), labelled=len(labelled),
                  neighbours=len(request.selection.neighbour_image_ids))
        self._pending[instrument_id] = _Pending(last_request_at=now)
        return request

    def _neighbours(self, evidence: list[str], *, exclude: set[str]) -> list[str]:
        encoder = self.encoder_version()
        if self.policy.neighbours == 0 or encoder is None or not evidence:
            return []
        rows = self.store.query(
            "SELECT latent FROM fingerprints FINAL WHERE encoder_version = %(v)s AND image_id IN %(ids)s",
            {"v": encoder, "ids": tuple(evidence)},
        )
        latents = [row["latent"] for row in rows if row["latent"]]
        if not latents or len({len(latent) for latent in latents}) != 1:
            return []
        centre = np.asarray(latents, dtype=np.float64).mean(axis=0).tolist()
        nearest = nearest_images(
            self.store, centre, k=self.policy.neighbours + len(exclude), encoder_version=encoder, labelled_only=True
        )
        return [row["image_id"] for row in nearest if row["image_id"] not in exclude][: self.policy.neighbours]


def _key(instrument_id: str, event_ids: list[str]) -> str:
    digest = hashlib.sha256("\n".join([instrument_id, *sorted(event_ids)]).encode()).hexdigest()
    return f"retrain-{digest[:32]}"
