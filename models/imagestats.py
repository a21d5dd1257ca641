"""Cheap raw-intensity statistics of one image, computed before any normalisation.

These are the drift signals that catch acquisition changes fastest (DESIGN.md, "Drift"): a change
of gain moves the percentiles, defocus lowers the focus measure, a noisier camera raises the noise
estimate, over-exposure raises the saturation fraction. Per-image normalisation, which the model
needs, removes exactly these effects, so the statistics must be taken on the raw pixels.

>>> import numpy as np
>>> stats = image_stats(np.full((32, 32), 7, dtype=np.uint16))
>>> stats["p50"], stats["std"], stats["focus"], stats["noise"], stats["saturation_fraction"]
(7.0, 0.0, 0.0, 0.0, 0.0)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["STAT_KEYS", "image_stats"]

#: The keys of ``image_stats``; the ImageStats event carries the same fields.
STAT_KEYS = ("p01", "p50", "p99", "mean", "std", "focus", "noise", "saturation_fraction")
#: Pixels per side averaged before the focus Laplacian (see ``_focus``).
_FOCUS_BINNING = 4


def image_stats(image: np.ndarray, saturation_level: float | None = None) -> dict[str, float]:
    """Percentiles p01/p50/p99, mean, std, focus, noise and saturation fraction of a raw image.

    - ``focus``: variance of the 4-neighbour Laplacian (Pech-Pacheco et al. 2000) of the 4x4-binned
      image, relative to that image's variance: dimensionless, independent of gain, and driven by
      the optics rather than by camera noise (why: see ``_focus``). Lower is blurrier.
    - ``noise``: Immerkaer's (1996) estimate of the Gaussian noise sigma from the absolute response
      to a mask that cancels locally planar structure, so edges of objects barely bias it.
    - ``saturation_fraction``: share of pixels at or above ``saturation_level``; by default the
      maximum of an integer dtype (65535 for uint16). Float images have no natural white level and
      report 0 unless a level is given.

    Multi-channel images (H, W, C) are reduced to their channel mean first, except for saturation,
    which counts saturated samples in any channel.
    """
    if image.ndim not in (2, 3):
        raise ValueError(f"image_stats expects an (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError("image_stats got an empty image")
    gray = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)

    # A gray integer image keeps its dtype for the percentiles: that is what enables the histogram path.
    p01, p50, p99 = _percentiles(image if image.ndim == 2 else gray, (1.0, 50.0, 99.0))
    mean = float(gray.mean(dtype=np.float64))
    std = float(gray.std(dtype=np.float64))
    if saturation_level is None and np.issubdtype(image.dtype, np.integer):
        saturation_level = float(np.iinfo(image.dtype).max)
    saturated = 0 if saturation_level is None else np.count_nonzero(image >= saturation_level)
    saturation = float(saturated) / image.size
    return {
        "p01": p01,
        "p50": p50,
        "p99": p99,
        "mean": mean,
        "std": std,
        "focus": _focus(gray),
        "noise": _immerkaer_noise(gray),
        "saturation_fraction": saturation,
    }


def _percentiles(values: np.ndarray, quantiles: tuple[float, ...]) -> tuple[float, ...]:
    """Percentiles with linear interpolation; 16-bit and smaller integers go through a histogram.

    A bincount over at most 65,536 bins is several times cheaper than the partial sort that
    ``np.percentile`` does, and gives the same values (numpy's default 'linear' method).
    """
    if values.dtype.kind == "u" and values.dtype.itemsize <= 2:
        counts = np.bincount(values.ravel())
        cumulative = np.cumsum(counts)
        n = int(cumulative[-1])
        result = []
        for q in quantiles:
            position = q / 100.0 * (n - 1)
            below = math.floor(position)
            low = int(np.searchsorted(cumulative, below + 1))
            high = int(np.searchsorted(cumulative, min(below + 2, n)))
            result.append(float(low + (high - low) * (position - below)))
        return tuple(result)
    return tuple(float(v) for v in np.percentile(values, quantiles))


def _focus(gray: np.ndarray) -> float:
    """Variance of the Laplacian of the 4x4-binned image, divided by the binned image's variance.

    The plain variance of the Laplacian is dominated by pixel noise in shot-noise-limited images
    (on the DSB image it is 20 * noise^2 to within 3%), so a physical defocus, which blurs the
    specimen but not the camera noise, hardly moves it: half-severity defocus of the synthetic
    instrument shifts it by 0.55 standard deviations of the in-distribution spread (32 images,
    256 px), and the drift monitor misses it for 50 images. Binning 4x4 averages the pixel noise
    down 16-fold while nuclei (radius >= ~5 px) keep their edges, and the ratio to the variance
    cancels gain: the same defocus shifts this measure by 6.9 standard deviations, and the
    monitor flags it after 2 images. Blurring a finished image (which also smooths its noise)
    still lowers it, and lowers ``noise`` far more. Images under 48 px on a side are not binned.
    """
    factor = _FOCUS_BINNING if min(gray.shape) >= 12 * _FOCUS_BINNING else 1
    height, width = (gray.shape[0] // factor) * factor, (gray.shape[1] // factor) * factor
    if height < 3 or width < 3:
        return 0.0
    binned = gray[:height, :width].reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))
    variance = float(binned.var(dtype=np.float64))
    if variance <= 0.0:
        return 0.0
    lap = (
        binned[:-2, 1:-1]
        + binned[2:, 1:-1]
        + binned[1:-1, :-2]
        + binned[1:-1, 2:]
        - np.float32(4.0) * binned[1:-1, 1:-1]
    )
    return float(lap.var(dtype=np.float64)) / variance


def _immerkaer_noise(gray: np.ndarray) -> float:
    """sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|, M = [[1,-2,1],[-2,4,-2],[1,-2,1]].

    M is the outer product of [1, -2, 1] with itself, so the filter is two separable passes.
    """
    height, width = gray.shape
    if height < 3 or width < 3:
        return 0.0
    rows = gray[:-2, :] - np.float32(2.0) * gray[1:-1, :] + gray[2:, :]
    both = rows[:, :-2] - np.float32(2.0) * rows[:, 1:-1] + rows[:, 2:]
    total = float(np.abs(both).sum(dtype=np.float64))
    return math.sqrt(math.pi / 2.0) * total / (6.0 * (width - 2) * (height - 2))
