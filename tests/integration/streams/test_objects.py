"""The vectorised object measurements agree with scikit-image's regionprops (models.measure)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest

from models.data.synthetic import SyntheticSpec, generate_batch
from models.measure import MEASUREMENT_KEYS
from models.measure import measure_objects as regionprops_measurements
from streams.objects import measure_objects


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_same_measurements_as_regionprops_on_touching_nuclei(dtype: Literal["uint8", "uint16"]) -> None:
    images, masks = generate_batch(SyntheticSpec(size=(96, 128), dtype=dtype, bit_depth=8 if dtype == "uint8" else 16,
                                                 min_separation=0.6), 4, seed=11)
    for image, mask in zip(images, masks, strict=True):
        expected = regionprops_measurements(mask, image)
        got = measure_objects(mask, image)
        assert [row["label"] for row in got] == [row["label"] for row in expected]
        for row, reference in zip(got, expected, strict=True):
            for key in MEASUREMENT_KEYS:
                assert row[key] == pytest.approx(reference[key], rel=1e-9, abs=1e-9), key


def test_objects_on_the_image_border_single_pixels_and_lines() -> None:
    labels = np.zeros((6, 7), dtype=np.int32)
    labels[0, 0] = 1            # a single pixel in the corner
    labels[2, 1:6] = 2          # a horizontal line
    labels[3:6, 4:7] = 3        # a block touching the line and the border
    labels[5, 0] = 5            # label 4 absent
    image = np.arange(42, dtype=np.float32).reshape(6, 7)
    expected = regionprops_measurements(labels, image)
    got = measure_objects(labels, image)
    assert [r["label"] for r in got] == [r["label"] for r in expected] == [1, 2, 3, 5]
    for row, reference in zip(got, expected, strict=True):
        assert row == pytest.approx(reference)


def test_no_objects_and_multichannel_images() -> None:
    assert measure_objects(np.zeros((4, 4), np.int32), np.ones((4, 4))) == []
    labels = np.zeros((5, 5), np.int32)
    labels[1:4, 1:4] = 1
    rgb = np.dstack([np.full((5, 5), v, np.uint8) for v in (10, 20, 30)])
    (row,) = measure_objects(labels, rgb)
    assert row["mean_intensity"] == pytest.approx(20.0)
