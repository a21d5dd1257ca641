"""The topic registry: every topic driftscope reads or writes, with its key and config.

Topics are part of the contract, so they live here beside the event models. Every image topic is
keyed by ``instrument_id`` so that per-instrument order (and therefore per-instrument drift state)
holds across partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.events import (
    DeadLetter,
    DriftEvent,
    Event,
    FingerprintEvent,
    ImageEvent,
    LabelEvent,
    ModelPublished,
    PredictionEvent,
    RetrainRequest,
    TrainingRunEvent,
)

__all__ = ["DLQ_SUFFIX", "TOPICS", "Topic", "dlq_name", "event_type", "topic"]

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class Topic:
    """A Kafka topic as driftscope creates it."""

    name: str
    partitions: int
    key: str
    description: str
    config: dict[str, str] = field(default_factory=dict)
    #: The one event type the topic carries; consumers decode with it as ``expected``.
    event: type[Event] | None = None

    @property
    def dlq(self) -> str:
        return dlq_name(self.name)


def dlq_name(name: str) -> str:
    """The dead-letter topic for ``name`` (``images.raw`` → ``images.raw.dlq``)."""
    return name + DLQ_SUFFIX


_WEEK_MS = str(7 * 24 * 3600 * 1000)

TOPICS: dict[str, Topic] = {
    t.name: t
    for t in (
        Topic("images.raw", 6, "instrument_id", "ImageEvent: pixels inline or a claim-check reference",
              {"retention.ms": _WEEK_MS, "max.message.bytes": str(8 * 1024 * 1024)}, ImageEvent),
        Topic("labels", 3, "instrument_id", "LabelEvent: an annotator's mask for an image",
              {"max.message.bytes": str(8 * 1024 * 1024)}, LabelEvent),
        Topic("images.fingerprints", 6, "instrument_id", "FingerprintEvent: encoder latent and image statistics",
              event=FingerprintEvent),
        Topic("predictions", 6, "instrument_id", "PredictionEvent: mask reference, objects, confidence",
              {"retention.ms": str(2 * 24 * 3600 * 1000)}, PredictionEvent),
        Topic("drift.events", 3, "instrument_id", "DriftEvent: a detector fired on a signal", event=DriftEvent),
        Topic("retrain.requests", 1, "idempotency_key", "RetrainRequest: what to train on and why",
              event=RetrainRequest),
        Topic("training.runs", 1, "run_id", "TrainingRunEvent: every run of the trainer, failed ones too",
              event=TrainingRunEvent),
        Topic("models.published", 1, "kind", "ModelPublished: a candidate, promoted or rejected",
              {"cleanup.policy": "compact"}, ModelPublished),
    )
}
TOPICS.update({
    dlq_name(t.name): Topic(dlq_name(t.name), 1, "source key", f"dead letters of {t.name}",
                             event=DeadLetter)
    for t in list(TOPICS.values())
})


def topic(name: str) -> Topic:
    """Look a topic up by name, with an error that lists the known ones."""
    try:
        return TOPICS[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(TOPICS))}") from None


def event_type(name: str) -> type[Event] | None:
    """The event a registry topic carries (None for a topic outside the registry).

    A consumer decodes with it as ``expected``: a well-formed event of another type on the topic is
    a malformed message there, dead-lettered rather than stored where it does not belong.

    >>> event_type("labels").__name__, event_type("labels.dlq").__name__, event_type("elsewhere")
    ('LabelEvent', 'DeadLetter', None)
    """
    registered = TOPICS.get(name)
    return registered.event if registered is not None else None
