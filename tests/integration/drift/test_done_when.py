"""The drift Done-when of the streams issue, on synthetic images through the real drift logic.

300 in-distribution images raise no drift event; then each of defocus, illumination, noise and
morphology raises one within 50 images of the shift. The images come from the synthetic
instrument (``models.data``), their statistics from the real ``models.imagestats`` and their
object measurements from ``models.measure``. The prediction events are a stand-in for the U-Net:
ground-truth masks split into connected components (see ``streams.drift.evaluation``), which is
what lets morphology (which image statistics hardly see) be caught by the object-shape signals.

Two image sizes: 256 x 256 is the generator's default (the DSB tile's scale) and runs every shift
at severity 0.5 (``slow``); 128 x 128 keeps the default run lean, and there defocus runs at
severity 1.0 and morphology at 0.75, because the focus measure bins 4 x 4 (a 32 x 32 image hides
+1.75 px of blur) and a 128-px field holds only ~7 nuclei to average shapes over. ``bench/drift.py``
measures delays over many trials, severities and all seven shift types, and the false-alarm rate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from models.data.drift import DriftSchedule, DriftSpec
from models.data.synthetic import SyntheticSpec
from streams.drift import DriftMonitor
from streams.drift.evaluation import Detection, StandInModels, replay, synthetic_stream

IN_DISTRIBUTION = 300
WITHIN = 50
#: shift -> the signal family expected to see it first, and the seed of its shifted images
SHIFTS = {
    "defocus": ("image.", 1),
    "illumination": ("image.", 2),
    "noise": ("image.", 3),
    "morphology": ("prediction.object_", 4),
}


@dataclass(frozen=True)
class Prefix:
    """The in-distribution run: its size and severities, the events it raised, its checkpoint."""

    size: int
    severities: dict[str, float]
    detections: list[Detection]
    checkpoint: str


@pytest.fixture(
    scope="module",
    params=[
        pytest.param((128, {"defocus": 1.0, "morphology": 0.75}), id="128px"),
        pytest.param((256, {}), id="256px", marks=pytest.mark.slow),
    ],
)
def prefix(request: pytest.FixtureRequest) -> Prefix:
    """Replay the in-distribution prefix once per image size; keep its events and checkpoint."""
    size, severities = request.param
    monitor = DriftMonitor()
    spec = SyntheticSpec(size=(size, size))
    detections = replay(monitor, synthetic_stream(spec, DriftSchedule(), IN_DISTRIBUTION, seed=20261201))
    return Prefix(size, severities, detections, json.dumps(monitor.state_dict()))


def test_no_drift_event_during_the_first_300_images(prefix: Prefix) -> None:
    assert prefix.detections == []
    instrument = json.loads(prefix.checkpoint)["instruments"]["synthetic"]
    assert instrument["counters"]["fingerprints"] == IN_DISTRIBUTION
    assert instrument["tracks"]["image.p50"]["reference"] is not None


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_shift_raises_a_drift_event_within_50_images(prefix: Prefix, shift: str) -> None:
    family, seed = SHIFTS[shift]
    severity = prefix.severities.get(shift, 0.5)
    monitor = DriftMonitor.from_state(json.loads(prefix.checkpoint))
    schedule = DriftSchedule.from_pairs([(IN_DISTRIBUTION, DriftSpec(shift, severity))])
    spec = SyntheticSpec(size=(prefix.size, prefix.size))
    shifted = synthetic_stream(spec, schedule, WITHIN, seed=seed, start=IN_DISTRIBUTION, models=StandInModels())
    first: list[Detection] = []
    for item in shifted:
        first = replay(monitor, [item])
        if first:
            break
    assert first, f"{shift} at severity {severity} went unnoticed for {WITHIN} images"
    delay = first[0].index - IN_DISTRIBUTION + 1
    signals = sorted(d.event.signal for d in first)
    print(f"{prefix.size}px {shift} (severity {severity}): first drift event after {delay} images on {signals}")
    assert any(signal.startswith(family) for signal in signals)
    event = first[0].event
    assert event.instrument_id == "synthetic" and event.model_version == "v1"
    assert event.evidence[-1] == f"synthetic-{first[0].index:06d}"
    assert event.first_seen_at <= event.detected_at
