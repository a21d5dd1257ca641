"""Normal-score standardisation against a reference window."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streams.drift.errors import DriftStateError
from streams.drift.reference import RobustReference, transform_value


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.standard_normal(n),
        lambda rng, n: rng.lognormal(0.0, 1.0, n),  # skewed
        lambda rng, n: np.where(rng.random(n) < 0.1, 5.0, 0.0) + rng.standard_normal(n),  # bimodal
    ],
    ids=["normal", "lognormal", "bimodal"],
)
def test_in_distribution_scores_are_near_standard_normal(draw: object) -> None:
    """Whatever the shape of the reference, fresh values from it score like N(0, 1)."""
    rng = np.random.default_rng(0)
    reference = RobustReference.fit(draw(rng, 200), min_scale=1e-6)  # type: ignore[operator]
    scores = np.array([reference.z(x) for x in draw(rng, 4_000)])  # type: ignore[operator]
    assert abs(scores.mean()) < 0.15
    assert 0.8 < scores.std() < 1.2
    # only values beyond the reference range (about 1 in 200) can score beyond its edge (2.8)
    assert np.mean(np.abs(scores) > 3.5) < 0.02


def test_scores_beyond_the_range_grow_linearly_with_the_tail_scale() -> None:
    reference = RobustReference.fit(np.linspace(-2.0, 2.0, 101), min_scale=1e-6)
    edge = reference.z(2.0 + 1e-9)
    assert reference.z(2.0 + 3 * reference.upper_scale) == pytest.approx(edge + 3.0)
    assert reference.z(-2.0 - 3 * reference.lower_scale) == pytest.approx(-edge - 3.0)
    assert reference.z(1e9, clip=6.0) == 6.0 and reference.z(-1e9, clip=6.0) == -6.0


def test_a_heavy_tail_extrapolates_more_gently_than_the_centre() -> None:
    values = np.random.default_rng(2).lognormal(0.0, 1.0, 200)
    reference = RobustReference.fit(values, min_scale=1e-6)
    assert reference.upper_scale > 2 * reference.scale
    assert reference.lower_scale == reference.scale


def test_a_constant_reference_scores_itself_zero_and_uses_min_scale() -> None:
    reference = RobustReference.fit([0.0] * 100, min_scale=1e-3)
    assert reference.scale == 1e-3
    assert reference.z(0.0) == 0.0
    assert reference.z(2e-3) == pytest.approx(reference.z(1e-12) + 2.0, abs=1e-6)


def test_mostly_constant_reference_falls_back_to_mean_absolute_deviation() -> None:
    values = [0.0] * 90 + [1.0] * 10
    reference = RobustReference.fit(values, min_scale=1e-6)
    assert reference.scale == pytest.approx(math.sqrt(math.pi / 2) * 0.1)


def test_round_trip_and_bad_checkpoints() -> None:
    reference = RobustReference.fit(np.random.default_rng(1).standard_normal(50), min_scale=1e-6)
    restored = RobustReference.from_state(json.loads(json.dumps(reference.state_dict())))
    assert restored == reference
    with pytest.raises(DriftStateError):
        RobustReference.from_state({"median": 0.0, "scale": 1.0})
    with pytest.raises(DriftStateError):
        RobustReference.from_state({"values": [], "median": 0.0, "scale": 1.0})


def test_fit_refuses_empty_or_non_finite() -> None:
    with pytest.raises(ValueError):
        RobustReference.fit([], min_scale=1e-6)
    with pytest.raises(ValueError):
        RobustReference.fit([1.0, float("nan")], min_scale=1e-6)


def test_log_transform_floors_zero() -> None:
    assert transform_value(math.e, "log") == pytest.approx(1.0)
    assert math.isfinite(transform_value(0.0, "log"))
    assert transform_value(-3.0, "identity") == -3.0
