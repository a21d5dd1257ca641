"""The contract every configured signal passes, and the track's alarm handling."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from streams.drift.config import DriftConfig, SignalConfig, default_signals
from streams.drift.track import SignalTrack

DEFAULTS = default_signals()
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def make_track(name: str, config: SignalConfig | None = None, cooldown: int = 500) -> SignalTrack:
    settings = DriftConfig()
    size = settings.label_reference_size if name.startswith("label.") else settings.reference_size
    return SignalTrack(name, config or DEFAULTS[name], size, cooldown)


def values(name: str, rng: np.random.Generator, count: int, shift: float = 0.0) -> Iterator[float]:
    """Plausible raw values of ``name``, shifted by ``shift`` of their standard deviation."""
    config = DEFAULTS[name]
    for e in rng.standard_normal(count) + shift:
        if name.startswith("label."):
            yield float(np.clip(0.85 + 0.03 * e, 0.0, 1.0))
        elif config.transform == "log":
            yield 40.0 * math.exp(0.1 * e)
        else:
            yield 0.5 + 0.05 * e


def feed(track: SignalTrack, stream: Iterator[float], start: int = 0) -> list[int]:
    alarms = []
    for i, value in enumerate(stream, start=start):
        if track.observe(value, f"img{i}", EPOCH + timedelta(seconds=i)) is not None:
            alarms.append(i)
    return alarms


def sides(name: str) -> list[float]:
    direction = DEFAULTS[name].direction
    return {"both": [6.0, -6.0], "up": [6.0], "down": [-6.0]}[direction]


@pytest.fixture(params=sorted(DEFAULTS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_no_alarm_on_in_distribution_values(name: str) -> None:
    rng = np.random.default_rng(10)
    count = 400 if name.startswith("label.") else 3_000
    assert feed(make_track(name), values(name, rng, count)) == []


def test_alarm_within_a_few_values_of_a_clear_shift(name: str) -> None:
    for shift in sides(name):
        track = make_track(name)
        rng = np.random.default_rng(11)
        feed(track, values(name, rng, 150))
        alarms = feed(track, values(name, rng, 20, shift=shift), start=150)
        assert alarms and alarms[0] - 150 < 4, f"{name}: shift {shift} sd gave alarms {alarms}"


def test_state_round_trip_gives_identical_future(name: str) -> None:
    rng = np.random.default_rng(12)
    track = make_track(name)
    feed(track, values(name, rng, 120))
    restored = SignalTrack.from_state(
        name, DEFAULTS[name], track.reference_size, track.cooldown, json.loads(json.dumps(track.state_dict()))
    )
    future = list(values(name, rng, 30, shift=sides(name)[0] / 3)) + list(values(name, rng, 30))
    original = [track.observe(v, f"f{i}", EPOCH) for i, v in enumerate(future)]
    resumed = [restored.observe(v, f"f{i}", EPOCH) for i, v in enumerate(future)]
    assert resumed == original
    assert any(alarm is not None for alarm in original)


def test_a_lasting_shift_alarms_once_per_cooldown() -> None:
    track = make_track("image.p50", cooldown=100)
    rng = np.random.default_rng(13)
    feed(track, values("image.p50", rng, 100))
    alarms = feed(track, values("image.p50", rng, 250, shift=5.0), start=100)
    assert len(alarms) == 3
    assert alarms[1] - alarms[0] > 100 and alarms[2] - alarms[1] > 100


def test_alarm_reports_where_the_excursion_began() -> None:
    track = make_track("image.p50")
    rng = np.random.default_rng(14)
    feed(track, values("image.p50", rng, 130))
    alarm = None
    for i in range(130, 160):
        alarm = track.observe(0.5 + 0.05 * 3.0, f"img{i}", EPOCH + timedelta(seconds=i))
        if alarm is not None:
            break
    assert alarm is not None and alarm.direction == "up" and alarm.detector == "cusum.up"
    assert alarm.statistic > alarm.threshold == DEFAULTS["image.p50"].threshold
    assert alarm.first_seen_image == f"img{i - alarm.window + 1}"
    assert alarm.first_seen_at == EPOCH + timedelta(seconds=i - alarm.window + 1)
    assert alarm.magnitude > 1.5 and alarm.magnitude < 3.5


def test_abs_z_input_watches_the_spread() -> None:
    spread = SignalConfig(direction="up", input="abs_z")
    level = DEFAULTS["image.p50"]
    rng = np.random.default_rng(15)
    reference = list(values("image.p50", rng, 100))
    wider = [0.5 + 0.05 * 3.0 * e for e in rng.standard_normal(60)]  # same level, three times the spread
    found = {}
    for label, config in (("spread", spread), ("level", level)):
        track = make_track("image.p50", config)
        feed(track, iter(reference))
        found[label] = feed(track, iter(wider), start=100)
    assert found["spread"] and found["spread"][0] - 100 < 20
    assert len(found["spread"]) >= len(found["level"])


def test_restore_applies_a_changed_threshold_and_keeps_the_reference() -> None:
    rng = np.random.default_rng(16)
    track = make_track("image.p50")
    feed(track, values("image.p50", rng, 100))
    strict = DEFAULTS["image.p50"].model_copy(update={"threshold": 50.0})
    restored = SignalTrack.from_state("image.p50", strict, 100, 500, track.state_dict())
    assert restored.reference == track.reference
    assert feed(restored, values("image.p50", rng, 5, shift=6.0)) == []
    assert feed(track, values("image.p50", rng, 5, shift=6.0)) != []


def test_page_hinkley_signal_detects_too() -> None:
    config = SignalConfig(detector="page_hinkley", allowance=0.5, threshold=15.0)
    track = make_track("image.p50", config)
    rng = np.random.default_rng(17)
    assert feed(track, values("image.p50", rng, 1_000)) == []
    alarms = feed(track, values("image.p50", rng, 30, shift=-4.0), start=1_000)
    assert alarms and alarms[0] - 1_000 < 10
