"""The real DSB tiles (fixed split, no overlap, sequential masks) and random fields of the image."""

import numpy as np
import pytest
from scipy import ndimage

from models.data.dsb import dsb_background, dsb_field, dsb_image, dsb_tiles, random_field


def test_whole_image_matches_its_provenance() -> None:
    image, mask = dsb_image()
    assert image.shape == mask.shape == (512, 512)
    assert image.dtype == np.uint16
    assert np.count_nonzero(np.unique(mask)) == 125


@pytest.mark.parametrize(("size", "counts"), [(64, (32, 16, 16)), (128, (8, 4, 4)), (256, (2, 1, 1))])
def test_tile_counts(size: int, counts: tuple[int, int, int]) -> None:
    assert tuple(len(dsb_tiles(size, split)) for split in ("train", "val", "test")) == counts


def test_tiles_reassemble_the_documented_quadrants() -> None:
    """The 128 px tiles of each split are exactly the split's quadrants, so splits cannot overlap."""
    image, _ = dsb_image()
    train = dsb_tiles(128, "train")
    rows = [np.concatenate([tile for tile, _ in train[i : i + 2]], axis=1) for i in range(0, 8, 2)]
    left = np.concatenate(rows[:2], axis=0)
    right = np.concatenate(rows[2:], axis=0)
    assert np.array_equal(left, image[:256, :256]) and np.array_equal(right, image[:256, 256:])
    (test_tile, _), *_ = dsb_tiles(256, "test")
    assert np.array_equal(test_tile, image[256:, 256:])
    (val_tile, _), *_ = dsb_tiles(256, "val")
    assert np.array_equal(val_tile, image[256:, :256])


def test_smaller_test_tiles_lie_inside_the_larger_test_tile() -> None:
    (big, _), *_ = dsb_tiles(256, "test")
    for tile, _ in dsb_tiles(64, "test"):
        windows = np.lib.stride_tricks.sliding_window_view(big, tile.shape)[::64, ::64]
        assert any(np.array_equal(tile, window) for window in windows.reshape(-1, 64, 64))


def test_tile_masks_are_sequential_and_cover_the_nuclei() -> None:
    for image, mask in dsb_tiles(128, "val"):
        labels = np.unique(mask)
        assert np.array_equal(labels, np.arange(labels[-1] + 1))
        assert mask.dtype == np.int32
        if mask.any():
            assert image[mask > 0].mean() > image[mask == 0].mean()


def test_tiles_are_copies() -> None:
    image, _ = dsb_tiles(128, "train")[0]
    image[:] = 0
    assert dsb_tiles(128, "train")[0][0].any()


@pytest.mark.parametrize(("size", "split"), [(100, "train"), (8, "train"), (512, "train"), (128, "holdout")])
def test_bad_arguments(size: int, split: str) -> None:
    with pytest.raises(ValueError):
        dsb_tiles(size, split)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (600, 560)])
def test_random_field_mask_follows_the_image(size: tuple[int, int]) -> None:
    """An image that is its own label map (label x 10) must come back aligned with the returned mask.

    Every rotation, flip and crop of the image must hit the mask too: inside each returned object the
    image holds one original label's code, different objects hold different codes, and the
    background is 0. The 600 x 560 field is larger than the image, so it is also enlarged.
    """
    _, mask = dsb_image()
    coded = mask.astype(np.float32) * 10.0
    rng = np.random.default_rng(4)
    for _ in range(8):
        values, labels = random_field(coded, mask, size, rng)
        assert values.shape == labels.shape == size and labels.dtype == np.int32
        present = np.unique(labels)
        assert np.array_equal(present, np.arange(present[-1] + 1))
        # Away from object borders (where enlarging interpolates), values are exact label codes.
        same_around = (ndimage.minimum_filter(labels, 5) == labels) & (ndimage.maximum_filter(labels, 5) == labels)
        inner = (labels > 0) & same_around
        assert np.all(values[ndimage.maximum_filter(labels, 5) == 0] == 0.0)
        codes = {int(label): set(np.unique(values[inner & (labels == label)]).tolist()) for label in present[1:]}
        whole = [next(iter(c)) for c in codes.values() if c]
        assert all(len(c) <= 1 for c in codes.values()) and len(whole) == len(set(whole))


def test_dsb_field_is_a_real_field_with_its_mask() -> None:
    rng = np.random.default_rng(2)
    image, mask = dsb_image()
    for _ in range(6):
        values, labels = dsb_field((128, 128), rng)
        assert values.min() >= image.min() and values.max() <= image.max()
        assert values[labels > 0].mean() > 2.0 * values[labels == 0].mean()
        assert np.count_nonzero(labels) > 0
    assert dsb_background() == float(np.median(image[mask == 0]))
