"""Image-statistics signals: the raw-intensity statistics a fingerprint event carries.

They are computed on raw intensities before the model's normalisation, which is why they see what a
normalised embedding cannot: on real nuclei crops they flag defocus, gain, noise, gamma and a switch
of microscope within one to three images (DESIGN.md, "Drift"). ``mean`` is left out: with ``p50``
it carries the same information and would double-count every exposure change.

One signal is derived: ``image.sharpness = focus / (20 * noise^2)``. The variance of the
4-neighbour Laplacian of white noise of standard deviation sigma is ``20 sigma^2``, so sharpness is
the Laplacian energy relative to the noise floor: the part of ``focus`` that comes from structure.
Where shot noise dominates the Laplacian (dim fluorescence), ``focus`` alone barely moves under
defocus (-0.3 robust sd for +1.75 px of blur on the synthetic instrument) while sharpness moves by
-4 sd; gain cancels out of it (both terms scale with gain squared).

>>> from schemas.events import ImageStats
>>> stats = ImageStats(p01=100, p50=180, p99=900, mean=230, std=150, focus=42, noise=6, saturation_fraction=0)
>>> sorted(image_stat_values(stats))[:3]
['image.focus', 'image.noise', 'image.p01']
>>> round(image_stat_values(stats)["image.sharpness"], 4)
0.0583
"""

from __future__ import annotations

from schemas.events import ImageStats

__all__ = ["IMAGE_STAT_FIELDS", "image_stat_values", "sharpness"]

IMAGE_STAT_FIELDS = ("p01", "p50", "p99", "std", "focus", "noise", "saturation_fraction")
#: Variance of the 4-neighbour Laplacian of unit white noise (4 x 1 + 1 x 16).
_LAPLACIAN_NOISE_GAIN = 20.0
_TINY = 1e-12


def sharpness(stats: ImageStats) -> float:
    """Laplacian variance over the variance white noise of the image's noise level would give."""
    return stats.focus / max(_LAPLACIAN_NOISE_GAIN * stats.noise * stats.noise, _TINY)


def image_stat_values(stats: ImageStats) -> dict[str, float]:
    """One value per image-statistics signal: ``image.<field>`` and ``image.sharpness``."""
    values = {f"image.{field}": float(getattr(stats, field)) for field in IMAGE_STAT_FIELDS}
    values["image.sharpness"] = sharpness(stats)
    return values
