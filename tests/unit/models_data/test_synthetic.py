"""The synthetic generator: contracts of the output, reproducibility, and that the spec is honoured."""

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from models.data.synthetic import SyntheticSpec, generate, generate_batch
from models.measure import measure_objects

SMALL = SyntheticSpec(size=(96, 128))


def test_output_types_shapes_and_consecutive_labels() -> None:
    image, mask = generate(SMALL, np.random.default_rng(0))
    assert image.shape == mask.shape == (96, 128)
    assert image.dtype == np.uint16 and mask.dtype == np.int32
    labels = np.unique(mask)
    assert labels[0] == 0
    assert np.array_equal(labels[1:], np.arange(1, labels[-1] + 1))


def test_same_seed_same_batch_and_different_seed_differs() -> None:
    images_a, masks_a = generate_batch(SMALL, 3, seed=7)
    images_b, masks_b = generate_batch(SMALL, 3, seed=7)
    images_c, _ = generate_batch(SMALL, 3, seed=8)
    assert images_a.shape == (3, 96, 128) and masks_a.dtype == np.int32
    assert np.array_equal(images_a, images_b) and np.array_equal(masks_a, masks_b)
    assert not np.array_equal(images_a, images_c)


def test_nuclei_are_brighter_than_background() -> None:
    images, masks = generate_batch(SMALL, 4, seed=1)
    for image, mask in zip(images, masks, strict=True):
        assert mask.max() > 0
        assert np.median(image[mask > 0]) > np.median(image[mask == 0]) + 3 * np.std(image[mask == 0]) / 2


def test_density_scales_object_count() -> None:
    sparse = replace(SMALL, density=(2.0, 2.0))
    dense = replace(SMALL, density=(8.0, 8.0), min_separation=0.6)
    count_sparse = sum(int(m.max()) for m in generate_batch(sparse, 5, seed=2)[1])
    count_dense = sum(int(m.max()) for m in generate_batch(dense, 5, seed=2)[1])
    assert count_dense > 2.5 * count_sparse


def test_radius_and_eccentricity_ranges_are_honoured() -> None:
    spec = replace(SyntheticSpec(size=(192, 192)), radius=(9.0, 9.0), eccentricity=(0.8, 0.8), irregularity=0.0)
    image, mask = generate(spec, np.random.default_rng(3))
    height, width = mask.shape
    inner = [
        row
        for row in measure_objects(mask, image)
        if 15 < row["centroid_y"] < height - 15 and 15 < row["centroid_x"] < width - 15
    ]
    areas = [row["area"] for row in inner]
    assert len(inner) >= 5
    # Touching neighbours take a few boundary pixels, so the median sits just below pi * r^2.
    assert 0.8 * np.pi * 81 < np.median(areas) < 1.1 * np.pi * 81
    assert abs(np.median([row["eccentricity"] for row in inner]) - 0.8) < 0.05


def test_acquisition_jitter_spreads_but_bounds_the_background_level() -> None:
    images, masks = generate_batch(SyntheticSpec(size=(64, 64)), 20, seed=4)
    levels = np.array([np.median(image[mask == 0]) for image, mask in zip(images, masks, strict=True)])
    relative_spread = levels.std() / levels.mean()
    assert 0.005 < relative_spread < 0.1


def test_out_of_focus_nuclei_brighten_the_background_but_stay_unlabelled() -> None:
    clear = replace(SMALL, out_of_focus=0.0)
    hazy = replace(SMALL, out_of_focus=6.0, out_of_focus_brightness=0.6)
    bright_background = []
    for spec in (clear, hazy):
        images, masks = generate_batch(spec, 6, seed=9)
        bright_background.append(np.mean([np.percentile(i[m == 0], 95) for i, m in zip(images, masks, strict=True)]))
        assert all(int(m.max()) > 0 for m in masks)
    assert bright_background[1] > bright_background[0] + 20


def test_bright_gain_saturates_at_the_bit_depth() -> None:
    spec = replace(SMALL, bit_depth=12, gain=40.0)
    image, _ = generate(spec, np.random.default_rng(5))
    assert image.max() == spec.white_level == 4095
    assert np.count_nonzero(image == 4095) > 0


def test_uint8_output() -> None:
    spec = replace(SMALL, dtype="uint8", bit_depth=8, gain=0.5, offset=10.0)
    image, _ = generate(spec, np.random.default_rng(6))
    assert image.dtype == np.uint8 and image.max() > image.min()


def test_an_empty_field_has_no_labels() -> None:
    image, mask = generate(replace(SMALL, density=(0.0, 0.0)), np.random.default_rng(0))
    assert not mask.any() and image.max() > 0


@pytest.mark.parametrize(
    "changes",
    [
        {"size": (4, 64)},
        {"radius": (5.0, 2.0)},
        {"eccentricity": (0.5, 1.0)},
        {"gain": 0.0},
        {"dtype": "uint8", "bit_depth": 12},
        {"read_noise": -1.0},
        {"out_of_focus": -0.5},
    ],
)
def test_invalid_specs_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(SMALL, **changes)
