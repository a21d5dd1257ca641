"""The shared normalisation: gain invariance, range, padding round trip."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.preprocess import (
    HIGH_PERCENTILE,
    LOW_PERCENTILE,
    MULTIPLE,
    Padding,
    normalize,
    pad_to_multiple,
    prepare_batch,
    unpad,
)

images = arrays(
    np.float64,
    st.tuples(st.integers(4, 40), st.integers(4, 40)),
    elements=st.floats(0, 1000, allow_nan=False, width=32),
)


@given(images, st.floats(0.01, 100.0), st.floats(-500.0, 500.0))
@settings(max_examples=60, deadline=None)
def test_normalize_is_invariant_to_gain_and_offset(image: np.ndarray, gain: float, offset: float) -> None:
    # Contrast (the normalising percentile span) below the float64 resolution of the shifted values
    # is gone before normalize sees it.
    low, high = np.percentile(image, (LOW_PERCENTILE, HIGH_PERCENTILE))
    assume((high - low) * gain > 1e-9 * (abs(offset) + gain * float(np.abs(image).max()) + 1.0))
    assert np.allclose(normalize(image), normalize(gain * image + offset), atol=1e-4)


@given(images)
@settings(max_examples=60, deadline=None)
def test_normalize_range_and_type(image: np.ndarray) -> None:
    out = normalize(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_normalize_maps_percentiles_to_0_and_1() -> None:
    image = np.arange(10_000, dtype=np.uint16).reshape(100, 100)
    out = normalize(image)
    assert np.isclose(out[np.unravel_index(int(0.01 * 9999), out.shape)], 0.0, atol=1e-3)
    assert out.max() == 1.0 and out.min() == 0.0
    assert np.mean(out == 1.0) == pytest.approx(0.002, abs=0.001)


def test_flat_image_normalises_to_zeros() -> None:
    assert not normalize(np.full((8, 8), 123, dtype=np.uint16)).any()


def test_channels_are_normalised_separately() -> None:
    gray = np.random.default_rng(0).random((16, 16))
    out = normalize(np.stack([gray, 100 * gray + 7], axis=-1))
    assert np.allclose(out[..., 0], out[..., 1], atol=1e-5)


@given(
    st.tuples(st.integers(0, 2), st.integers(1, 50), st.integers(1, 50)),
    st.sampled_from([1, 8, MULTIPLE, 32]),
)
@settings(max_examples=80, deadline=None)
def test_pad_unpad_round_trip(shape: tuple[int, int, int], multiple: int) -> None:
    leading, height, width = shape
    x = np.random.default_rng(height * width).random((2,) * leading + (height, width))
    padded, padding = pad_to_multiple(x, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - height < multiple and padded.shape[-1] - width < multiple
    assert isinstance(padding, Padding)
    assert np.array_equal(unpad(padded, padding), x)


def test_padding_reflects_content() -> None:
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    padded, padding = pad_to_multiple(x, 8)
    assert padding == Padding(1, 2, 1, 1)
    assert padded[0, 1 + 1] == x[1, 1]  # row above the image mirrors the second row


def test_prepare_batch_shapes() -> None:
    rng = np.random.default_rng(1)
    batch, padding = prepare_batch([rng.integers(0, 4000, (50, 70), dtype=np.uint16) for _ in range(3)])
    assert batch.shape == (3, 1, 64, 80) and batch.dtype == np.float32
    assert unpad(batch, padding).shape == (3, 1, 50, 70)


@pytest.mark.parametrize(
    "images_", [[], [np.zeros((8, 8)), np.zeros((8, 9))], [np.zeros((8, 8, 3))]], ids=["empty", "mixed", "rgb"]
)
def test_prepare_batch_rejects_bad_input(images_: list[np.ndarray]) -> None:
    with pytest.raises(ValueError):
        prepare_batch(images_)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        normalize(np.zeros(5))
    with pytest.raises(ValueError):
        pad_to_multiple(np.zeros(5))
    with pytest.raises(ValueError):
        pad_to_multiple(np.zeros((4, 4)), 0)
