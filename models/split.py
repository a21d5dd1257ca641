"""The watershed split of touching nuclei, at a fraction of its textbook cost.

The textbook split (scikit-image's ``peak_local_max(distance, labels=components)`` to seed,
``watershed(-distance, markers, mask=foreground)`` to flood) was a third of the segment step's CPU,
most of it in ``peak_local_max``, which spaces each component's peaks with a k-d tree queried
point by point. This module returns the same labels, pixel for pixel, with cheaper seeding:

- one exact squared Euclidean distance transform (``edt``) for the whole image; squaring keeps
  the order of the values, and seeds and floods depend on nothing else;
- per component, scikit-image's peak candidates in its box (a maximum filter with the other
  pixels masked out), as ``peak_local_max`` computes them;
- the candidates spaced greedily, highest first (raster order between equals), per component:
  what ``ensure_spacing`` computes, without building a tree.

The flood stays scikit-image's, over the whole foreground with every seed: it breaks ties between
equal heights in the order of its heap, which holds every component's seeds, so flooding only the
components that need it moved boundaries. ``tests/unit/models_data/test_split.py`` checks the
equality against the textbook split.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage
from skimage.segmentation import watershed

__all__ = ["split_touching"]


def split_touching(foreground: np.ndarray, components: np.ndarray, min_distance: int) -> np.ndarray:
    """Object labels (int32) of a 4-connected ``components`` labelling, touching objects split.

    Labels are the textbook split's marker numbers: components in label order, and within a
    component its seeds from the highest distance down (raster order between equals).
    """
    squared = edt.edtsq(foreground, black_border=False, parallel=1).astype(np.float64)
    if not (squared == 0).any():  # all foreground: no distance to split along, one object
        return components.astype(np.int32)
    size = 2 * min_distance + 1
    candidates = np.zeros(foreground.shape, dtype=bool)
    for label, box in enumerate(ndimage.find_objects(components), start=1):
        if box is not None:
            candidates[box] |= _peak_mask(squared[box], components[box] == label, size)
    seeds = _spaced_seeds(candidates, squared, components, min_distance)
    markers = np.zeros(components.shape, dtype=np.int32)
    markers.ravel()[seeds] = np.arange(1, len(seeds) + 1, dtype=np.int32)
    return np.asarray(watershed(-squared, markers, mask=foreground), dtype=np.int32)


def _peak_mask(values: np.ndarray, own: np.ndarray, size: int) -> np.ndarray:
    """scikit-image's peak candidates of one component in its box (other pixels masked out).

    A pixel equal to the maximum of its window is a candidate; if every pixel of the component
    is (a line, a speck), scikit-image takes the pixels that an opening removes instead.
    """
    masked = np.where(own, values, -np.inf)
    out = masked == ndimage.maximum_filter(masked, size=size, mode="nearest")
    if np.all(out[own]):
        out[:] = False
        out[np.logical_xor(own, ndimage.binary_opening(own))] = True
    return out & (masked > 0)


def _spaced_seeds(
    candidates: np.ndarray, squared: np.ndarray, components: np.ndarray, min_distance: int
) -> np.ndarray:
    """Flat indices of the seeds, in marker order: greedy spacing, highest first, per component."""
    flat = np.flatnonzero(candidates)
    owner = components.ravel()[flat]
    order = np.lexsort((flat, -squared.ravel()[flat], owner))
    flat, owner = flat[order], owner[order]
    rows, cols = np.divmod(flat, components.shape[1])
    kept: list[int] = []
    accepted: dict[int, list[tuple[int, int]]] = {}
    for i, (label, row, col) in enumerate(zip(owner.tolist(), rows.tolist(), cols.tolist(), strict=True)):
        placed = accepted.setdefault(label, [])
        if all(max(abs(row - r), abs(col - c)) >= min_distance for r, c in placed):
            placed.append((row, col))
            kept.append(i)
    return flat[kept]
