"""The fast split of touching nuclei against the textbook one (peak_local_max + watershed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from models.data.synthetic import SyntheticSpec, generate_batch
from models.split import split_touching


def _textbook(foreground: np.ndarray, min_distance: int) -> np.ndarray:
    components, _ = ndimage.label(foreground)
    distance = ndimage.distance_transform_edt(foreground)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
    markers = np.zeros(foreground.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    return np.asarray(watershed(-distance, markers, mask=foreground), dtype=np.int32)


def _fast(foreground: np.ndarray, min_distance: int) -> np.ndarray:
    components, _ = ndimage.label(foreground)
    return split_touching(foreground, components, min_distance)


def _assert_same_split(foreground: np.ndarray, min_distance: int = 5) -> None:
    got = _fast(foreground, min_distance)
    assert got.dtype == np.int32
    assert np.array_equal(got, _textbook(foreground, min_distance))


@pytest.mark.parametrize("density", [(4.2, 6.4), (12.0, 14.0), (20.0, 24.0)])
def test_synthetic_nuclei_split_as_the_textbook_does(density: tuple[float, float]) -> None:
    _, masks = generate_batch(SyntheticSpec(size=(256, 256), density=density, min_separation=0.6), 4, 3)
    for mask in masks:
        _assert_same_split(mask > 0)


@given(st.integers(0, 2**32 - 1), st.floats(1.0, 4.0), st.floats(0.3, 0.9), st.integers(2, 7))
@settings(max_examples=80, deadline=None)
def test_smooth_random_masks(seed: int, sigma: float, quantile: float, min_distance: int) -> None:
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random((48, 64)), sigma)
    _assert_same_split(noise > np.quantile(noise, quantile), min_distance)


@given(st.integers(0, 2**32 - 1), st.floats(0.2, 0.8))
@settings(max_examples=60, deadline=None)
def test_speckled_masks_with_thin_and_tiny_components(seed: int, fill: float) -> None:
    """Lines and specks are all maxima: scikit-image seeds them from their isolated pixels."""
    _assert_same_split(np.random.default_rng(seed).random((20, 20)) < fill)


def test_all_foreground_is_one_object() -> None:
    assert np.array_equal(_fast(np.ones((12, 12), dtype=bool), 5), np.ones((12, 12), dtype=np.int32))
