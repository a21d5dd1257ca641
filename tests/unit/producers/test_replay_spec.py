"""Replay specs that cannot mean anything are refused before touching the broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from producers.replay import ReplayError, ReplaySpec

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "spec",
    [
        ReplaySpec(topic="t", start=T0, end=T0),
        ReplaySpec(topic="t", start=T0, from_offset=3),
        ReplaySpec(topic="t", from_offset=5, to_offset=5),
        ReplaySpec(topic="t", rate=0),
        ReplaySpec(topic="retrain.requests", instrument_id="scope-a"),
    ],
)
def test_refuses_a_spec_that_cannot_mean_anything(spec: ReplaySpec) -> None:
    with pytest.raises(ReplayError):
        spec.validate()


def test_a_sensible_spec_passes_and_defaults_to_the_source_topic() -> None:
    spec = ReplaySpec(topic="images.raw", start=T0, instrument_id="scope-a", rate=50)
    spec.validate()
    assert spec.target_topic == "images.raw"
