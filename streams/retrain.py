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

The trainer has no store connection, so the selection also carries the blob references of every
selected image and mask (:class:`~schemas.events.TrainingItem`): the images labelled since the
drift was first seen are the drifted domain; the nearest labelled neighbours only add training data.
Labels arrive late, so an instrument waiting for them is re-checked by :meth:`RetrainTrigger.poll`
on a timer, not only when the next drift event happens to arrive.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from consumers.store import Store
from consumers.store.queries import nearest_images
from schemas.codec import decode
from schemas.errors import SchemaError
from schemas.events import BlobRef, DataSelection, DriftEvent, RetrainRequest, TrainingItem, utcnow
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

    def poll(self) -> Outcome:
        """Re-check every instrument with unanswered drift evidence (labels may have arrived since)."""
        outcome = Outcome()
        for instrument_id, pending in list(self._pending.items()):
            if not pending.event_ids:
                continue
            request = self._maybe_request(instrument_id, pending)
            if request is not None:
                outcome.outputs.append(output_for(RETRAIN_TOPIC, request.idempotency_key, request))
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
        drifted = self._items(instrument_id=instrument_id, since=pending.first_seen_at, role="drifted")
        if len(drifted) < policy.min_labelled_images:
            log_event(log, "retrain_waiting_for_labels", instrument_id=instrument_id, labelled=len(drifted),
                      needed=policy.min_labelled_images, drift_events=len(pending.event_ids))
            return None
        labelled = [item.image_id for item in drifted]
        neighbour_ids = self._neighbours(sorted(pending.evidence), exclude=set(labelled))
        neighbours = self._items(image_ids=neighbour_ids, role="neighbour") if neighbour_ids else []
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
                neighbour_image_ids=[item.image_id for item in neighbours],
                items=[*drifted, *neighbours],
            ),
            hyperparameters=dict(policy.hyperparameters),
        )
        log_event(log, "retrain_requested", instrument_id=instrument_id, key=request.idempotency_key,
                  drift_events=len(pending.event_ids), labelled=len(labelled),
                  neighbours=len(request.selection.neighbour_image_ids))
        self._pending[instrument_id] = _Pending(last_request_at=now)
        return request

    def _items(
        self,
        *,
        role: Literal["drifted", "neighbour"],
        instrument_id: str | None = None,
        since: datetime | None = None,
        image_ids: list[str] | None = None,
    ) -> list[TrainingItem]:
        """Labelled images whose pixels and mask are both in the blob store, oldest first.

        Two plain queries joined here rather than a SQL JOIN: the old ClickHouse servers we support
        need explicit join strictness, chDB does not, and this keeps the SQL identical on both.
        """
        conditions: list[str] = ["mask_uri IS NOT NULL"]
        params: dict[str, object] = {}
        if instrument_id is not None:
            conditions.append("instrument_id = %(i)s")
            params["i"] = instrument_id
        if image_ids is not None:
            conditions.append("image_id IN %(ids)s")
            params["ids"] = tuple(image_ids)
        masks = {
            row["image_id"]: BlobRef(uri=row["mask_uri"], sha256=row["mask_sha256"], size=row["mask_size"])
            for row in self.store.query(
                "SELECT image_id, mask_uri, mask_sha256, mask_size FROM labels FINAL "
                f"WHERE {' AND '.join(conditions)} ORDER BY created_at", params)
        }
        if not masks:
            return []
        image_conditions = ["image_uri IS NOT NULL", "image_id IN %(ids)s"]
        image_params: dict[str, object] = {"ids": tuple(masks)}
        if since is not None:
            image_conditions.append("acquired_at >= %(since)s")
            image_params["since"] = since
        rows = self.store.query(
            "SELECT image_id, image_uri, image_sha256, image_size FROM fingerprints FINAL "
            f"WHERE {' AND '.join(image_conditions)} ORDER BY acquired_at, image_id",
            image_params,
        )
        items: dict[str, TrainingItem] = {}
        for row in rows:  # one row per encoder version: keep the first
            if row["image_id"] not in items:
                image = BlobRef(uri=row["image_uri"], sha256=row["image_sha256"], size=row["image_size"])
                items[row["image_id"]] = TrainingItem(image_id=row["image_id"], image=image,
                                                      mask=masks[row["image_id"]], role=role)
        if image_ids is not None:  # keep the caller's order (nearest neighbour first)
            return [items[i] for i in image_ids if i in items]
        return list(items.values())

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
