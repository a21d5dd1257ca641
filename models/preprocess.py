"""The one input normalisation shared by training and serving.

Training and the streaming segment agent must feed the network identically, or a served model sees
inputs it never trained on. Both call ``prepare_batch`` (or ``normalize`` + ``pad_to_multiple``):

- per-image percentile normalisation to float32 [0, 1]: invariant to camera gain and offset, so the
  model does not have to learn every instrument's intensity scale (raw-intensity drift is watched
  separately by ``models.imagestats``);
- reflect padding of H and W to a multiple of 16, because a 4-level U-Net halves the size four
  times, and cropping the output back with ``unpad``.

>>> import numpy as np
>>> x = normalize(np.arange(100, dtype=np.uint16).reshape(10, 10))
>>> x.dtype.name, float(x.min()), float(x.max())
('float32', 0.0, 1.0)
>>> padded, padding = pad_to_multiple(x, 16)
>>> padded.shape, unpad(padded, padding).shape
((16, 16), (10, 10))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "HIGH_PERCENTILE",
    "LOW_PERCENTILE",
    "MULTIPLE",
    "Padding",
    "normalize",
    "pad_to_multiple",
    "prepare_batch",
    "unpad",
]

LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.8
#: A 4-level U-Net needs H and W divisible by 2**4.
MULTIPLE = 16


class Padding(NamedTuple):
    """Rows/columns added on each side of the last two axes by ``pad_to_multiple``."""

    top: int
    bottom: int
    left: int
    right: int


def normalize(image: np.ndarray, low: float = LOW_PERCENTILE, high: float = HIGH_PERCENTILE) -> np.ndarray:
    """Map the ``low``..``high`` percentiles of one image to 0..1 (clipped), as float32.

    An (H, W, C) image is normalised per channel. A flat image (no contrast) maps to zeros rather
    than dividing by zero. The high percentile is below 100 so a few hot pixels or a bright
    mitotic nucleus do not compress everything else.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"normalize expects an (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.ndim == 3:
        return np.stack([normalize(image[..., c], low, high) for c in range(image.shape[2])], axis=-1)
    # float32 holds every 8/16-bit value exactly; float64 input keeps its precision until the offset
    # is gone, or a faint image on a large offset would lose its contrast in the subtraction.
    precision: type[np.floating] = np.float64 if image.dtype == np.float64 else np.float32
    data: np.ndarray = image.astype(precision, copy=False)
    lo, hi = (float(v) for v in np.percentile(data, (low, high)))
    span = hi - lo
    if not np.isfinite(span) or span <= 0.0:
        return np.zeros(data.shape, dtype=np.float32)
    out = ((data - lo) * (1.0 / span)).astype(np.float32, copy=False)
    return np.clip(out, 0.0, 1.0, out=out)


def pad_to_multiple(x: np.ndarray, multiple: int = MULTIPLE) -> tuple[np.ndarray, Padding]:
    """Reflect-pad the last two axes up to a multiple of ``multiple``; returns the padding to undo it.

    The padding is split as evenly as possible between the two sides so the network sees real
    context on every border. Reflection mirrors image content rather than inventing an edge.
    """
    if x.ndim < 2:
        raise ValueError(f"pad_to_multiple needs at least 2 dimensions, got shape {x.shape}")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    height, width = x.shape[-2:]
    extra_h, extra_w = -height % multiple, -width % multiple
    padding = Padding(extra_h // 2, extra_h - extra_h // 2, extra_w // 2, extra_w - extra_w // 2)
    if extra_h == 0 and extra_w == 0:
        return x, padding
    widths = [(0, 0)] * (x.ndim - 2) + [(padding.top, padding.bottom), (padding.left, padding.right)]
    return np.pad(x, widths, mode="reflect"), padding


def unpad(x: np.ndarray, padding: Padding) -> np.ndarray:
    """Crop the last two axes back to the size before ``pad_to_multiple``."""
    height, width = x.shape[-2:]
    return x[..., padding.top : height - padding.bottom, padding.left : width - padding.right]


def prepare_batch(images: Sequence[np.ndarray], multiple: int = MULTIPLE) -> tuple[np.ndarray, Padding]:
    """Normalise and pad same-sized (H, W) images into one (N, 1, H', W') float32 network input.

    Crop the network output back with ``unpad(output, padding)``.
    """
    if not images:
        raise ValueError("prepare_batch needs at least one image")
    shapes = {image.shape for image in images}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"prepare_batch needs (H, W) images of one shape, got shapes {sorted(shapes)}")
    batch = np.stack([normalize(image) for image in images])[:, None]
    return pad_to_multiple(batch, multiple)
