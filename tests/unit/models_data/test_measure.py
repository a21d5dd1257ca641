"""Instances from binary masks and their regionprops measurements."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage.draw import disk, ellipse

from models.measure import MEASUREMENT_KEYS, label_instances, measure_objects


def _two_touching_discs() -> np.ndarray:
    binary = np.zeros((60, 90), dtype=bool)
    binary[disk((30, 30), 14)] = True
    binary[disk((30, 55), 14)] = True
    return binary


def test_components_without_watershed_merge_touching_objects() -> None:
    labels = label_instances(_two_touching_discs())
    assert labels.dtype == np.int32 and labels.max() == 1


def test_watershed_splits_touching_discs_evenly() -> None:
    labels = label_instances(_two_touching_discs(), watershed=True)
    assert labels.max() == 2
    areas = np.bincount(labels.ravel())[1:]
    assert abs(int(areas[0]) - int(areas[1])) < 0.1 * areas.mean()


@given(arrays(np.bool_, (24, 24)), st.booleans())
@settings(max_examples=60, deadline=None)
def test_every_foreground_pixel_gets_a_label(binary: np.ndarray, watershed: bool) -> None:
    """No component is lost, whatever its shape: each one holds at least one watershed seed."""
    labels = label_instances(binary, watershed=watershed)
    assert np.array_equal(labels > 0, binary)
    assert np.array_equal(np.unique(labels[labels > 0]), np.arange(1, labels.max() + 1))


def test_watershed_keeps_a_lone_disc_whole() -> None:
    binary = np.zeros((40, 40), dtype=bool)
    binary[disk((20, 20), 12)] = True
    assert label_instances(binary, watershed=True).max() == 1


def test_min_area_drops_specks_and_relabels() -> None:
    binary = np.zeros((20, 20), dtype=bool)
    binary[0, 0] = True
    binary[5:10, 5:10] = True
    labels = label_instances(binary, min_area=4)
    assert labels.max() == 1 and labels[0, 0] == 0 and labels[7, 7] == 1


def test_measurements_of_known_shapes() -> None:
    labels = np.zeros((100, 100), dtype=np.int32)
    labels[disk((30, 30), 10)] = 3
    labels[ellipse(70, 60, 8, 20)] = 7
    image = np.where(labels == 3, 200.0, 0.0) + np.where(labels == 7, 50.0, 0.0)
    rows = measure_objects(labels, image.astype(np.uint16))
    assert [row["label"] for row in rows] == [3, 7]
    disc, ell = rows
    assert set(disc) == {"label", *MEASUREMENT_KEYS}
    assert disc["area"] == pytest.approx(np.pi * 100, rel=0.05)
    assert disc["perimeter"] == pytest.approx(2 * np.pi * 10, rel=0.1)
    assert disc["eccentricity"] < 0.2
    assert (disc["centroid_y"], disc["centroid_x"]) == pytest.approx((30, 30), abs=0.01)
    assert disc["mean_intensity"] == pytest.approx(200.0)
    assert ell["eccentricity"] == pytest.approx(np.sqrt(1 - (8 / 20) ** 2), abs=0.02)
    assert ell["mean_intensity"] == pytest.approx(50.0)
    assert all(type(value) is float for key, value in disc.items() if key != "label")


def test_empty_and_mismatched() -> None:
    assert measure_objects(np.zeros((5, 5), dtype=np.int32), np.zeros((5, 5))) == []
    with pytest.raises(ValueError):
        measure_objects(np.zeros((5, 5), dtype=np.int32), np.zeros((5, 6)))
    with pytest.raises(ValueError):
        label_instances(np.zeros((2, 2, 2)))


def test_rgb_intensity_is_averaged() -> None:
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[2:5, 2:5] = 1
    rgb = np.zeros((10, 10, 3))
    rgb[..., 0] = 30.0
    assert measure_objects(labels, rgb)[0]["mean_intensity"] == pytest.approx(10.0)
