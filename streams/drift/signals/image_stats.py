"""Image-statistics signals: the raw-intensity statistics a fingerprint event carries.

They are computed on raw intensities before the model's normalisation, which is why they see what a
normalised embedding cannot: on real nuclei crops they flag defocus, gain, noise, gamma and a switch
of microscope within one to three images (DESIGN.md, "Drift"). ``mean`` is left out: with ``p50``
it carries the same information and would double-count every exposure change.

>>> from schemas.events import ImageStats
>>> stats = ImageStats(p01=100, p50=180, p99=900, mean=230, std=150, focus=42, noise=6, saturation_fraction=0)
>>> sorted(image_stat_values(stats))[:3]
['image.focus', 'image.noise', 'image.p01']
"""

from __future__ import annotations

from schemas.events import ImageStats

__all__ = ["IMAGE_STAT_FIELDS", "image_stat_values"]

IMAGE_STAT_FIELDS = ("p01", "p50", "p99", "std", "focus", "noise", "saturation_fraction")


def image_stat_values(stats: ImageStats) -> dict[str, float]:
    """One value per image-statistics signal, named ``image.<field>``."""
    return {f"image.{field}": float(getattr(stats, field)) for field in IMAGE_STAT_FIELDS}
