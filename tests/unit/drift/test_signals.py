"""Signal extraction: image statistics, predictions, labels, latent distance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from schemas.events import ImageStats
from streams.drift.errors import DriftInputError, DriftStateError
from streams.drift.signals import (
    IMAGE_STAT_FIELDS,
    LatentReference,
    image_stat_values,
    label_values,
    prediction_values,
    reconstruction_value,
)
from tests.unit.drift.factories import fingerprint, prediction

STATS = ImageStats(p01=100, p50=180, p99=900, mean=230, std=150, focus=2000, noise=5, saturation_fraction=0.01)


def test_image_stat_values_name_every_field_but_mean() -> None:
    values = image_stat_values(STATS)
    assert set(values) == {f"image.{f}" for f in IMAGE_STAT_FIELDS}
    assert "image.mean" not in values
    assert values["image.p99"] == 900.0 and values["image.saturation_fraction"] == 0.01


def test_prediction_values_skip_shape_signals_without_objects() -> None:
    rng = np.random.default_rng(1)
    full = prediction_values(prediction(0, rng, objects=4))
    assert full["prediction.object_count"] == 4.0
    assert {"prediction.object_area", "prediction.object_eccentricity"} <= set(full)
    empty = prediction_values(prediction(1, rng, objects=0))
    assert empty["prediction.object_count"] == 0.0
    assert "prediction.object_area" not in empty and "prediction.object_eccentricity" not in empty


def test_reconstruction_value() -> None:
    event = fingerprint(0, np.random.default_rng(2))
    assert reconstruction_value(event) == {"fingerprint.reconstruction_error": event.reconstruction_error}


@pytest.mark.parametrize(("dice", "iou"), [(1.2, 0.5), (0.5, -0.1), (float("nan"), 0.5), (0.5, float("inf"))])
def test_label_scores_outside_unit_interval_are_refused(dice: float, iou: float) -> None:
    with pytest.raises(DriftInputError):
        label_values(dice, iou)


def test_latent_distance_reads_about_one_in_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(3)
    scale = np.linspace(0.1, 10.0, 16)  # dimensions of very different spread count equally
    reference = LatentReference.fit((rng.standard_normal((200, 16)) * scale).tolist())
    inside = [reference.distance((rng.standard_normal(16) * scale).tolist()) for _ in range(500)]
    assert 0.85 < float(np.median(inside)) < 1.15
    shifted = reference.distance(((rng.standard_normal(16) + 3.0) * scale).tolist())
    assert shifted > 2.5


def test_latent_reference_floors_dead_dimensions() -> None:
    latents = np.random.default_rng(4).standard_normal((50, 4))
    latents[:, 0] = 0.0  # a dead unit
    reference = LatentReference.fit(latents.tolist())
    assert min(reference.scale) > 0
    assert np.isfinite(reference.distance([1.0, 0.0, 0.0, 0.0]))


def test_latent_reference_round_trip_and_errors() -> None:
    reference = LatentReference.fit(np.random.default_rng(5).standard_normal((20, 3)).tolist())
    assert LatentReference.from_state(json.loads(json.dumps(reference.state_dict()))) == reference
    with pytest.raises(DriftInputError, match="dimensions"):
        reference.distance([0.0, 0.0])
    with pytest.raises(DriftStateError):
        LatentReference.from_state({"center": [0.0], "scale": [1.0, 2.0]})
    with pytest.raises(ValueError):
        LatentReference.fit([[0.0, 1.0]])
