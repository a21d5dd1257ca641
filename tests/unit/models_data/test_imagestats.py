"""Raw image statistics: exact percentiles, a calibrated noise estimate, a focus measure that follows the optics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from models.data.dsb import dsb_tiles
from models.imagestats import STAT_KEYS, image_stats


@given(
    arrays(
        st.sampled_from([np.uint8, np.uint16]),
        st.tuples(st.integers(1, 30), st.integers(1, 30)),
        elements=st.integers(0, 255),
    )
)
@settings(max_examples=80, deadline=None)
def test_histogram_percentiles_equal_numpy(image: np.ndarray) -> None:
    stats = image_stats(image)
    expected = np.percentile(image, (1, 50, 99))
    assert [stats["p01"], stats["p50"], stats["p99"]] == pytest.approx(expected.tolist())


def test_keys_and_plain_floats() -> None:
    stats = image_stats(dsb_tiles(128, "val")[0][0])
    assert tuple(stats) == STAT_KEYS
    assert all(type(value) is float for value in stats.values())


@pytest.mark.parametrize("sigma", [2.0, 10.0, 40.0])
def test_noise_estimate_recovers_gaussian_sigma_under_structure(sigma: float) -> None:
    """Immerkaer's estimate stays within 10% of the true sigma on a smooth, structured image."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256]
    structure = 1000 + 300 * np.sin(x / 20.0) * np.cos(y / 15.0)
    noisy = structure + rng.normal(0, sigma, structure.shape)
    assert image_stats(noisy.astype(np.float32))["noise"] == pytest.approx(sigma, rel=0.1)


def test_focus_falls_with_blur_and_ignores_gain() -> None:
    image = dsb_tiles(256, "val")[0][0].astype(np.float32)
    sharp = image_stats(image)["focus"]
    assert image_stats(3.0 * image + 50.0)["focus"] == pytest.approx(sharp, rel=1e-4)
    blurred = [image_stats(ndimage.gaussian_filter(image, sigma))["focus"] for sigma in (1.0, 2.0, 4.0)]
    assert sharp > blurred[0] > blurred[1] > blurred[2]


def test_gain_moves_percentiles_proportionally() -> None:
    image = dsb_tiles(128, "val")[1][0]
    base, doubled = image_stats(image), image_stats(image * 2)
    for key in ("p01", "p50", "p99", "mean", "std", "noise"):
        assert doubled[key] == pytest.approx(2 * base[key], rel=1e-6)


def test_saturation_fraction() -> None:
    image = np.zeros((10, 10), dtype=np.uint16)
    image[:2] = 65535
    assert image_stats(image)["saturation_fraction"] == pytest.approx(0.2)
    assert image_stats(image.astype(np.float32))["saturation_fraction"] == 0.0
    assert image_stats(image.astype(np.float32), saturation_level=65535)["saturation_fraction"] == pytest.approx(0.2)
    assert image_stats((image // 16).astype(np.uint16), saturation_level=4095)["saturation_fraction"] == 0.2


def test_multichannel_uses_the_channel_mean() -> None:
    gray = dsb_tiles(128, "val")[0][0]
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert image_stats(rgb) == pytest.approx(image_stats(gray))


def test_tiny_and_bad_images() -> None:
    stats = image_stats(np.array([[3, 5]], dtype=np.uint8))
    assert stats["focus"] == 0.0 and stats["noise"] == 0.0 and stats["p50"] == 4.0
    with pytest.raises(ValueError):
        image_stats(np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError):
        image_stats(np.zeros((0, 4)))
