"""The contract every detector passes (River's ``test_drift_detectors.py`` idea), plus their specifics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streams.drift.detectors import CUSUM, DETECTOR_KINDS, Detector, PageHinkley, detector_from_state
from streams.drift.errors import DriftStateError

DETECTORS = {
    "cusum-default": lambda: CUSUM(),
    "cusum-small-shift": lambda: CUSUM(allowance=0.5, threshold=11.0),
    "page-hinkley-default": lambda: PageHinkley(),
    "page-hinkley-early": lambda: PageHinkley(delta=0.75, threshold=12.0, min_instances=10),
}


@pytest.fixture(params=sorted(DETECTORS))
def detector(request: pytest.FixtureRequest) -> Detector:
    return DETECTORS[request.param]()


def test_every_kind_is_covered() -> None:
    assert {DETECTORS[name]().kind for name in DETECTORS} == set(DETECTOR_KINDS)


def test_no_alarm_on_stationary_noise(detector: Detector) -> None:
    noise = np.random.default_rng(1).standard_normal(5_000)
    assert not any(detector.update(x) for x in noise)


def test_alarm_soon_after_a_mean_shift(detector: Detector) -> None:
    rng = np.random.default_rng(2)
    for x in rng.standard_normal(300):
        detector.update(x)
    shifted = rng.standard_normal(100) + 3.0
    first = next((i for i, x in enumerate(shifted) if detector.update(x)), None)
    assert first is not None, "a 3-sd shift went unnoticed for 100 points"
    assert first < 15
    # the excursion that fired began at (or just before) the shift, and its size is about the shift
    assert first + 1 <= detector.run_length <= first + 4
    assert detector.magnitude > 1.5 and detector.magnitude < 5.0


def test_no_alarm_on_a_downward_shift(detector: Detector) -> None:
    """Detectors are one-sided: a fall is the other side's business."""
    rng = np.random.default_rng(3)
    stream = np.concatenate([rng.standard_normal(300), rng.standard_normal(300) - 3.0])
    assert not any(detector.update(x) for x in stream)


def test_state_round_trip_gives_identical_future(detector: Detector) -> None:
    rng = np.random.default_rng(4)
    for x in np.concatenate([rng.standard_normal(200), rng.standard_normal(7) + 2.0]):
        detector.update(x)
    restored = detector_from_state(json.loads(json.dumps(detector.state_dict())))
    future = np.concatenate([rng.standard_normal(20) + 2.0, rng.standard_normal(50)])
    original_trace = [(detector.update(x), detector.statistic, detector.run_length) for x in future]
    restored_trace = [(restored.update(x), restored.statistic, restored.run_length) for x in future]
    assert restored_trace == original_trace
    assert any(fired for fired, _, _ in original_trace)


def test_alarm_resets_on_the_next_update(detector: Detector) -> None:
    for x in np.random.default_rng(5).standard_normal(100):
        detector.update(x)
    updates = 0
    while not detector.update(10.0):
        updates += 1
        assert updates < 1_000
    assert detector.drift_detected and detector.statistic > detector.threshold
    detector.update(0.0)
    assert not detector.drift_detected
    assert detector.statistic < detector.threshold


def test_unknown_kind_and_bad_params_are_state_errors() -> None:
    with pytest.raises(DriftStateError, match="unknown detector"):
        detector_from_state({"kind": "kswin", "params": {}, "state": {}})
    with pytest.raises(DriftStateError, match="do not fit"):
        detector_from_state({"kind": "cusum", "params": {"lambda_": 3}, "state": {}})
    with pytest.raises(DriftStateError, match="incomplete"):
        detector_from_state({"kind": "cusum", "params": {}, "state": {"sum": 1.0}})


@pytest.mark.parametrize(
    "make",
    [
        lambda: CUSUM(allowance=-1.0),
        lambda: CUSUM(threshold=0.0),
        lambda: PageHinkley(delta=-0.1),
        lambda: PageHinkley(min_instances=0),
    ],
)
def test_invalid_parameters_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_cusum_forgets_below_zero() -> None:
    """A long quiet spell does not bank credit against a later shift (unlike a plain sum)."""
    detector = CUSUM(allowance=1.0, threshold=8.0)
    for _ in range(1_000):
        detector.update(-3.0)
    assert detector.statistic == 0.0
    fired_after = next(i for i in range(10) if detector.update(6.0))
    assert fired_after == 1


def test_page_hinkley_waits_for_min_instances() -> None:
    detector = PageHinkley(delta=0.0, threshold=1.0, min_instances=20)
    assert not any(detector.update(100.0 if i == 5 else 0.0) for i in range(19))
