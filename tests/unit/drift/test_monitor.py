"""InstrumentDriftState and DriftMonitor: routing, versions, events, checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from schemas.codec import decode, encode
from schemas.events import DriftEvent
from streams.drift import (
    UNKNOWN_MODEL_VERSION,
    DriftConfig,
    DriftInputError,
    DriftMonitor,
    DriftStateError,
    InstrumentDriftState,
    SignalConfig,
)
from tests.unit.drift.factories import at, fingerprint, prediction

REFERENCE = 30


def small_config(**changes: object) -> DriftConfig:
    return DriftConfig(reference_size=REFERENCE, label_reference_size=5, **changes)  # type: ignore[arg-type]


def run(
    monitor: DriftMonitor,
    rng: np.random.Generator,
    start: int,
    count: int,
    *,
    p50_shift: float = 0.0,
    latent_shift: float = 0.0,
    area_shift: float = 0.0,
) -> list[tuple[int, DriftEvent]]:
    """Feed ``count`` images (fingerprint then prediction) and collect (index, event)."""
    found = []
    for i in range(start, start + count):
        image = fingerprint(i, rng, p50_shift=p50_shift, latent_shift=latent_shift)
        found += [(i, event) for event in monitor.observe_fingerprint(image)]
        found += [(i, event) for event in monitor.observe_prediction(prediction(i, rng, area_shift=area_shift))]
    return found


def test_no_events_in_distribution_and_an_event_per_shifted_signal() -> None:
    monitor = DriftMonitor(small_config())
    rng = np.random.default_rng(0)
    assert run(monitor, rng, 0, 400) == []
    found = run(monitor, rng, 400, 10, p50_shift=8.0)
    assert [event.signal for _, event in found] == ["image.p50"]
    index, event = found[0]
    assert index < 403
    assert event.instrument_id == "scope-1"
    assert event.model_version == "seg-1"
    assert event.detector == "cusum.up"
    assert event.severity == "high"
    assert event.statistic > event.threshold
    assert event.first_seen_at == at(400)
    assert event.window == index - 400 + 1
    assert event.evidence == [f"scope-1-{i}" for i in range(400, index + 1)]
    decoded = decode(encode(event))  # the event is a valid contract message
    assert decoded == event


def test_latent_and_object_shifts_reach_their_signals() -> None:
    monitor = DriftMonitor(small_config())
    rng = np.random.default_rng(1)
    run(monitor, rng, 0, 100)
    latent = run(monitor, rng, 100, 20, latent_shift=3.0)
    assert "fingerprint.distance" in {event.signal for _, event in latent}
    area = run(monitor, rng, 120, 20, area_shift=-3.0)
    assert "prediction.object_area" in {event.signal for _, event in area}
    assert next(e for _, e in area if e.signal == "prediction.object_area").detector == "cusum.down"


def test_new_segmenter_version_starts_new_references() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(2)
    for i in range(50):
        state.observe_fingerprint(fingerprint(i, rng))
        state.observe_prediction(prediction(i, rng))
    assert state.tracks["image.p50"].reference is not None
    assert state.observe_prediction(prediction(50, rng, model_version="seg-2")) == []
    assert state.model_version == "seg-2"
    assert state.counters["reference_resets"] == 1
    assert "image.p50" not in state.tracks
    assert state.latent_reference is None
    # the shifted level is the new normal: no event while the new reference fills and after
    events = []
    for i in range(51, 51 + REFERENCE + 60):
        events += state.observe_fingerprint(fingerprint(i, rng, p50_shift=8.0))
        events += state.observe_prediction(prediction(i, rng, model_version="seg-2"))
    assert events == []


def test_new_encoder_version_resets_only_fingerprint_signals() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(3)
    for i in range(40):
        state.observe_fingerprint(fingerprint(i, rng))
    p50_reference = state.tracks["image.p50"].reference
    state.observe_fingerprint(fingerprint(40, rng, encoder_version="enc-2", latent_dim=12))
    assert state.tracks["image.p50"].reference == p50_reference
    assert "fingerprint.distance" not in state.tracks
    assert state.tracks["fingerprint.reconstruction_error"].reference is None
    assert state.encoder_version == "enc-2"


def test_label_scores_detect_a_drop_and_ignore_other_versions() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(4)
    state.observe_prediction(prediction(0, rng))
    for i in range(5):
        assert state.observe_label_score(f"l{i}", 0.85 + 0.01 * (i % 3), 0.74, "seg-1") == []
    assert state.observe_label_score("old", 0.1, 0.05, "seg-0") == []
    assert state.counters["ignored_label_scores"] == 1
    events: list[DriftEvent] = []
    for i in range(5, 10):
        events += state.observe_label_score(f"l{i}", 0.55, 0.38, "seg-1", observed_at=at(i))
        if events:
            break
    assert {e.signal for e in events} >= {"label.dice"}
    dice = next(e for e in events if e.signal == "label.dice")
    assert dice.detector == "cusum.down" and dice.first_seen_at == at(5)
    assert dice.evidence[-1] == f"l{i}"


def test_label_scores_before_any_prediction_adopt_the_version() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    state.observe_label_score("l0", 0.9, 0.8, "seg-7")
    assert state.model_version == "seg-7"


def test_events_before_any_prediction_carry_unknown_version() -> None:
    monitor = DriftMonitor(small_config())
    rng = np.random.default_rng(5)
    events = []
    for i in range(REFERENCE + 10):
        events += monitor.observe_fingerprint(fingerprint(i, rng, p50_shift=0.0 if i < REFERENCE else 9.0))
    assert events and {e.model_version for e in events} == {UNKNOWN_MODEL_VERSION}


def test_instruments_are_independent() -> None:
    monitor = DriftMonitor(small_config())
    rng = np.random.default_rng(6)
    events = []
    for i in range(REFERENCE + 20):
        shifted = 9.0 if i >= REFERENCE else 0.0
        events += monitor.observe_fingerprint(fingerprint(i, rng, instrument_id="a", p50_shift=shifted))
        events += monitor.observe_fingerprint(fingerprint(i, rng, instrument_id="b"))
    assert events and {e.instrument_id for e in events} == {"a"}
    assert set(monitor.instruments) == {"a", "b"}


def test_checkpoint_mid_stream_resumes_identically() -> None:
    monitor = DriftMonitor(small_config())
    rng = np.random.default_rng(7)
    run(monitor, rng, 0, 45)  # references fitted, detectors warm
    monitor.observe_label_score("l0", "scope-1", 0.9, 0.8, "seg-1")
    checkpoint = json.loads(json.dumps(monitor.state_dict()))
    restored = DriftMonitor.from_state(checkpoint)
    assert json.loads(json.dumps(restored.state_dict())) == checkpoint
    future_rng_a, future_rng_b = np.random.default_rng(8), np.random.default_rng(8)
    original = run(monitor, future_rng_a, 45, 30, p50_shift=2.5, area_shift=-2.0)
    resumed = run(restored, future_rng_b, 45, 30, p50_shift=2.5, area_shift=-2.0)

    def strip(event: DriftEvent) -> dict[str, object]:
        return event.model_dump(exclude={"event_id", "detected_at"})

    assert [(i, strip(e)) for i, e in resumed] == [(i, strip(e)) for i, e in original]
    assert original


def test_checkpoint_during_the_reference_window_resumes_it() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(9)
    for i in range(10):
        state.observe_fingerprint(fingerprint(i, rng))
    restored = InstrumentDriftState.from_state(json.loads(json.dumps(state.state_dict())))
    for i in range(10, REFERENCE):
        restored.observe_fingerprint(fingerprint(i, rng))
    assert restored.latent_reference is not None
    reference = restored.tracks["fingerprint.distance"].reference
    assert reference is not None and reference.size == REFERENCE


def test_restore_with_a_new_config_drops_disabled_signals() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(10)
    for i in range(40):
        state.observe_fingerprint(fingerprint(i, rng))
    signals = dict(small_config().signals, **{"image.focus": SignalConfig(enabled=False)})
    restored = InstrumentDriftState.from_state(state.state_dict(), small_config(signals=signals))
    assert "image.focus" not in restored.tracks and "image.p50" in restored.tracks


def test_disabled_and_unlisted_signals_are_not_watched() -> None:
    signals = {"image.p50": SignalConfig()}
    state = InstrumentDriftState("scope-1", small_config(signals=signals))
    rng = np.random.default_rng(11)
    for i in range(40):
        state.observe_fingerprint(fingerprint(i, rng))
        state.observe_prediction(prediction(i, rng))
    assert set(state.tracks) == {"image.p50"}
    assert state.latent_reference is None


def test_bad_input_is_refused() -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(12)
    with pytest.raises(DriftInputError, match="route events"):
        state.observe_fingerprint(fingerprint(0, rng, instrument_id="other"))
    state.observe_fingerprint(fingerprint(0, rng))
    with pytest.raises(DriftInputError, match="dimensions"):
        state.observe_fingerprint(fingerprint(1, rng, latent_dim=9))
    with pytest.raises(DriftInputError):
        state.observe_label_score("l0", 1.5, 0.5, "seg-1")


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.update(format=99),
        lambda s: s.pop("tracks"),
        lambda s: s["tracks"]["image.p50"].pop("reference"),
        lambda s: s["tracks"]["image.p50"]["detectors"]["up"]["state"].pop("sum"),
        lambda s: s.update(config={"reference_size": 1}),
        lambda s: s.update(latent_reference={"center": [0.0]}),
    ],
)
def test_corrupt_checkpoints_raise_state_error(corrupt: Callable[[dict[str, object]], object]) -> None:
    state = InstrumentDriftState("scope-1", small_config())
    rng = np.random.default_rng(13)
    for i in range(REFERENCE + 2):
        state.observe_fingerprint(fingerprint(i, rng))
    checkpoint = json.loads(json.dumps(state.state_dict()))
    corrupt(checkpoint)
    with pytest.raises(DriftStateError):
        InstrumentDriftState.from_state(checkpoint)


def test_monitor_checkpoint_format_is_checked() -> None:
    with pytest.raises(DriftStateError):
        DriftMonitor.from_state({"format": 0})
    with pytest.raises(DriftStateError):
        DriftMonitor.from_state({"format": 1, "config": {}, "instruments": {"a": {"format": 1}}})


def test_redelivered_events_are_ignored_and_events_keep_their_id() -> None:
    """At-least-once: a replay neither double-counts nor yields a second event id for one alarm."""
    rng = np.random.default_rng(14)
    state = InstrumentDriftState("scope-1", small_config())
    images = [fingerprint(i, rng, p50_shift=0.0 if i < 40 else 9.0) for i in range(45)]
    predictions = [prediction(i, rng) for i in range(45)]
    first = []
    for image, pred in zip(images, predictions, strict=True):
        first += state.observe_fingerprint(image) + state.observe_prediction(pred)
    assert first
    checkpoint_before_alarm = None
    replica = InstrumentDriftState("scope-1", small_config())
    for i, (image, pred) in enumerate(zip(images, predictions, strict=True)):
        if i == 38:
            checkpoint_before_alarm = json.loads(json.dumps(replica.state_dict()))
        replica.observe_fingerprint(image)
        replica.observe_prediction(pred)
    counted = state.counters["fingerprints"]
    # the broker redelivers the last 10 images: nothing is counted twice, no event is raised again
    for image, pred in zip(images[-10:], predictions[-10:], strict=True):
        assert state.observe_fingerprint(image) == [] and state.observe_prediction(pred) == []
    assert state.counters["fingerprints"] == counted and state.counters["duplicates"] == 20
    # a worker that crashed before checkpointing the alarm raises it again with the same id
    assert checkpoint_before_alarm is not None
    restarted = InstrumentDriftState.from_state(checkpoint_before_alarm)
    again = []
    for image, pred in zip(images[38:], predictions[38:], strict=True):
        again += restarted.observe_fingerprint(image) + restarted.observe_prediction(pred)
    assert [e.event_id for e in again] == [e.event_id for e in first]


def test_an_old_version_redelivered_does_not_reset_the_references() -> None:
    rng = np.random.default_rng(15)
    state = InstrumentDriftState("scope-1", small_config())
    old = [prediction(i, rng, model_version="seg-1") for i in range(5)]
    for event in old:
        state.observe_prediction(event)
    state.observe_prediction(prediction(5, rng, model_version="seg-2"))
    resets = state.counters["reference_resets"]
    for event in old:
        assert state.observe_prediction(event) == []
    assert state.model_version == "seg-2" and state.counters["reference_resets"] == resets
