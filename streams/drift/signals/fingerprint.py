"""Fingerprint signals: how far an image's encoder latent lies from the reference images' latents,
and the autoencoder's reconstruction error.

The distance is a standardised L2 (a diagonal Mahalanobis distance): the latent is centred on the
reference median and divided per dimension by the reference's robust spread, and the distance is the
root mean square of that, so it reads ~1 for a typical reference image whatever the latent width. A
full covariance would also see correlations, but for a 4096-wide latent it is a 128 MB checkpoint
and it is singular with a hundred reference images; the diagonal form costs 2 x width numbers.

>>> reference = LatentReference.fit([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0], [1.0, 3.0]])
>>> reference.center, [round(s, 3) for s in reference.scale]
([1.0, 3.0], [0.741, 1.483])
>>> round(reference.distance([1.0, 3.0]), 3), round(reference.distance([3.0, 7.0]), 3)
(0.0, 2.698)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.events import FingerprintEvent
from streams.drift.errors import DriftInputError, DriftStateError

__all__ = ["LatentReference", "reconstruction_value"]

_MAD_TO_SD = 1.4826
#: A dimension's spread is floored at this fraction of the median spread, so a dimension that barely
#: varied in the reference (a dead unit of the encoder) cannot dominate the distance.
_RELATIVE_SCALE_FLOOR = 1e-2


def reconstruction_value(event: FingerprintEvent) -> dict[str, float]:
    """The autoencoder signal of one fingerprint event."""
    return {"fingerprint.reconstruction_error": event.reconstruction_error}


@dataclass(frozen=True)
class LatentReference:
    """Per-dimension centre and robust spread of the reference latents."""

    center: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, latents: Sequence[Sequence[float]]) -> LatentReference:
        """Fit on the reference latents (all of one width)."""
        data = np.asarray(latents, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] < 2:
            raise ValueError(f"need at least two latents of one width, got shape {data.shape}")
        center = np.median(data, axis=0)
        scale = _MAD_TO_SD * np.median(np.abs(data - center), axis=0)
        # Where the MAD is 0 (a near-constant dimension) fall back to the standard deviation.
        scale = np.where(scale > 0, scale, data.std(axis=0))
        floor = max(float(np.median(scale)) * _RELATIVE_SCALE_FLOOR, 1e-12)
        scale = np.maximum(scale, floor)
        return cls(center=center.tolist(), scale=scale.tolist())

    @property
    def width(self) -> int:
        return len(self.center)

    def distance(self, latent: Sequence[float]) -> float:
        """Root-mean-square standardised distance of ``latent`` from the reference centre."""
        if len(latent) != self.width:
            raise DriftInputError(
                f"latent has {len(latent)} dimensions, the reference has {self.width}; an encoder with "
                "another latent width must carry another encoder_version"
            )
        standardised = (np.asarray(latent, dtype=np.float64) - self.center) / np.asarray(self.scale)
        return float(np.sqrt(np.mean(standardised * standardised)))

    def state_dict(self) -> dict[str, Any]:
        return {"center": self.center, "scale": self.scale}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LatentReference:
        try:
            center = [float(v) for v in state["center"]]
            scale = [float(v) for v in state["scale"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise DriftStateError(f"latent reference checkpoint is incomplete: {exc}") from exc
        if len(center) != len(scale) or not center:
            raise DriftStateError(f"latent reference has {len(center)} centres and {len(scale)} scales")
        return cls(center=center, scale=scale)
