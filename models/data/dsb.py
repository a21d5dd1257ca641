"""Fixed, non-overlapping train/val/test tiles of the real DSB 2018 nuclei image.

The 512 x 512 image is split by quadrant, and every tile lies inside exactly one quadrant::

    +-------+-------+
    | train | train |      rows 0..255
    +-------+-------+
    |  val  | test  |      rows 256..511
    +-------+-------+

so a test tile never shares a pixel with a train or val tile, at any tile size, and the split is the
same whichever tile size a caller picks (a 128-px test tile always lies inside the 256-px test tile).
Tiles are taken row-major inside each quadrant. Objects cut by a tile border stay, cut, as they would
in a real field of view; each tile's mask is relabelled 1..n.

>>> [len(dsb_tiles(128, split)) for split in ("train", "val", "test")]
[8, 4, 4]
>>> image, mask = dsb_tiles(256, "test")[0]
>>> image.shape, image.dtype.name, mask.dtype.name
((256, 256), 'uint16', 'int32')

``dsb_field`` is the other use: a random field of view anywhere on the image, as a microscope would
record it on another day (position, orientation and a slight magnification jitter), for the
dataset-switch drift of the synthetic instrument (``models.data.drift``).

>>> import numpy as np
>>> values, mask = dsb_field((96, 128), np.random.default_rng(0))
>>> values.shape, values.dtype.name, mask.shape, mask.dtype.name
((96, 128), 'float32', (96, 128), 'int32')
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import tifffile
from skimage.transform import resize

__all__ = ["QUADRANTS", "Split", "dsb_background", "dsb_field", "dsb_image", "dsb_tiles", "random_field"]

Split = Literal["train", "val", "test"]

#: (top, left) of the 256 x 256 quadrants of each split.
QUADRANTS: dict[str, tuple[tuple[int, int], ...]] = {
    "train": ((0, 0), (0, 256)),
    "val": ((256, 0),),
    "test": ((256, 256),),
}
_QUADRANT = 256


@cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    folder = resources.files("models.data.dsb2018")
    with resources.as_file(folder / "img2d.tif") as path:
        image = tifffile.imread(path)
    with resources.as_file(folder / "mask2d.tif") as path:
        mask = tifffile.imread(path).astype(np.int32)
    image.setflags(write=False)
    mask.setflags(write=False)
    return image, mask


def dsb_image() -> tuple[np.ndarray, np.ndarray]:
    """The whole 512 x 512 uint16 image and its int32 instance mask (copies; safe to modify)."""
    image, mask = _load()
    return image.copy(), mask.copy()


def dsb_tiles(size: int = 128, split: Split = "train") -> list[tuple[np.ndarray, np.ndarray]]:
    """The (image uint16, mask int32) tiles of ``split``; ``size`` must divide 256 (16..256)."""
    if split not in QUADRANTS:
        raise ValueError(f"split must be one of {sorted(QUADRANTS)}, got {split!r}")
    if size < 16 or _QUADRANT % size:
        raise ValueError(f"tile size must divide {_QUADRANT} and be at least 16, got {size}")
    image, mask = _load()
    tiles = []
    for top, left in QUADRANTS[split]:
        for y in range(top, top + _QUADRANT, size):
            for x in range(left, left + _QUADRANT, size):
                tile_mask = mask[y : y + size, x : x + size]
                tiles.append((image[y : y + size, x : x + size].copy(), _relabel(tile_mask)))
    return tiles


@cache
def dsb_background() -> float:
    """Median of the image's unlabelled pixels: the level that maps onto another camera's background."""
    image, mask = _load()
    return float(np.median(image[mask == 0]))


def dsb_field(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random field of view of the whole real image (all splits): float32 values and its int32 mask.

    See :func:`random_field`. Fields overlap (the image is 512 x 512): what varies from one to the
    next is what re-imaging a slide varies (position, orientation), not the specimen.
    """
    image, mask = _load()
    return random_field(image, mask, size, rng)


def random_field(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` field of a 2-D (image, instance mask) pair as re-imaging the slide would see it.

    A window at a random position, then one of the eight right-angle rotations and flips; the mask
    follows every step of the image and is relabelled 1..n, and objects cut by the window stay, cut.
    There is no magnification jitter: resampling averages neighbouring pixels, which lowers the
    noise estimate of a 128 px field 2.4-fold at a 5 % zoom, a shift of its own. Only a window
    larger than the image is enlarged to ``size`` (bilinear for the image, nearest for the mask, so
    labels stay labels).
    """
    height, width = size
    turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
    # The window is cut in the unrotated frame, so an odd number of turns swaps its sides.
    rows, cols = (width, height) if turns % 2 else (height, width)
    crop_rows, crop_cols = min(image.shape[0], rows), min(image.shape[1], cols)
    top = int(rng.integers(0, image.shape[0] - crop_rows + 1))
    left = int(rng.integers(0, image.shape[1] - crop_cols + 1))
    window = (slice(top, top + crop_rows), slice(left, left + crop_cols))
    values = np.rot90(image[window].astype(np.float32), turns)
    labels = np.rot90(mask[window], turns)
    if flip:
        values, labels = values[:, ::-1], labels[:, ::-1]
    if values.shape != (height, width):
        values = resize(values, (height, width), order=1, preserve_range=True, anti_aliasing=False)
        labels = resize(labels, (height, width), order=0, preserve_range=True, anti_aliasing=False)
    return np.ascontiguousarray(values, dtype=np.float32), _relabel(np.asarray(labels).astype(np.int32))


def _relabel(mask: np.ndarray) -> np.ndarray:
    present = np.unique(mask)
    present = present[present > 0]
    lookup = np.zeros(int(mask.max()) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return lookup[mask]
