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
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import tifffile

__all__ = ["QUADRANTS", "Split", "dsb_image", "dsb_tiles"]

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


def _relabel(mask: np.ndarray) -> np.ndarray:
    present = np.unique(mask)
    present = present[present > 0]
    lookup = np.zeros(int(mask.max()) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return lookup[mask]
