"""Every registry topic names the event it carries, so consumers can refuse events of another type."""

from __future__ import annotations

from schemas.events import EVENT_TYPES, DeadLetter
from schemas.topics import DLQ_SUFFIX, TOPICS, event_type


def test_every_topic_carries_one_event_type_and_dead_letter_queues_carry_dead_letters() -> None:
    for name in TOPICS:
        carried = event_type(name)
        assert carried is not None, name
        assert carried.__name__ in EVENT_TYPES
        assert (carried is DeadLetter) == name.endswith(DLQ_SUFFIX), name
    assert event_type("not.a.registry.topic") is None
