"""Named drift transforms with a severity in [0, 1], and schedules of drift over an image stream.

Each drift has two faces:

- ``apply_drift(spec, drift)`` changes the generator's ``SyntheticSpec`` at the stage where the real
  cause acts (defocus blurs before the camera adds noise; a brighter lamp adds shot noise too). The
  synthetic instrument uses this route. Every drift has it.
- ``transform(image, mask, drift, rng)`` edits an existing (image, mask) pair, so the acquisition
  drifts can be put on real images (the DSB tiles). Density, morphology and a dataset switch change
  *what* is on the slide and cannot be painted onto a finished image; they only exist on the spec.

Severity 0 is always the identity; 1 is a drift an operator would call severe.

>>> from models.data.synthetic import SyntheticSpec
>>> apply_drift(SyntheticSpec(), DriftSpec("defocus", 1.0)).blur_sigma
4.5
>>> schedule = DriftSchedule.parse("defocus:0.5@100, noise:1@200+50")
>>> schedule.active(150), schedule.onset
((DriftSpec(name='defocus', severity=0.5),), 100)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage
from skimage.transform import rescale

from models.data.synthetic import SyntheticSpec

__all__ = [
    "DRIFTS",
    "DriftKind",
    "DriftSchedule",
    "DriftSpec",
    "DriftStep",
    "apply_drift",
    "transform",
]

SpecEffect = Callable[[SyntheticSpec, float], SyntheticSpec]
ImageEffect = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DriftKind:
    """One kind of drift: what it models, the statistic it moves first, and its two effects."""

    name: str
    description: str
    #: The ``image_stats`` key or object measurement that this drift is expected to move.
    moves: str
    on_spec: SpecEffect
    on_image: ImageEffect | None = field(default=None)


@dataclass(frozen=True)
class DriftSpec:
    """One drift of a named kind at a severity in [0, 1]."""

    name: str
    severity: float

    def __post_init__(self) -> None:
        if self.name not in DRIFTS:
            raise ValueError(f"unknown drift {self.name!r}; known: {', '.join(DRIFTS)}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(f"drift severity must be in [0, 1], got {self.severity}")


def apply_drift(spec: SyntheticSpec, drift: DriftSpec | Iterable[DriftSpec]) -> SyntheticSpec:
    """The generator spec under one drift, or several composed in order."""
    drifts = (drift,) if isinstance(drift, DriftSpec) else tuple(drift)
    for item in drifts:
        if item.severity > 0.0:
            spec = DRIFTS[item.name].on_spec(spec, item.severity)
    return spec


def transform(
    image: np.ndarray, mask: np.ndarray, drift: DriftSpec | Iterable[DriftSpec], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Put acquisition drift on an existing (image, mask) pair; image dtype and shape are kept.

    Raises ``ValueError`` for drifts that only exist on the spec (density, morphology).
    """
    drifts = (drift,) if isinstance(drift, DriftSpec) else tuple(drift)
    for item in drifts:
        effect = DRIFTS[item.name].on_image
        if effect is None:
            raise ValueError(
                f"drift {item.name!r} changes the specimen, not the acquisition: "
                "apply it to a SyntheticSpec with apply_drift instead"
            )
        if item.severity > 0.0:
            image, mask = effect(image, mask, item.severity, rng)
    return image, mask


# --- spec effects: severity s in (0, 1] ---------------------------------------------------------


def _illumination_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """A brighter lamp (up to 3x) with a stronger, uneven field: more photons everywhere."""
    power = 1.0 + 2.0 * s
    return replace(
        spec,
        intensity=(spec.intensity[0] * power, spec.intensity[1] * power),
        background=spec.background * power,
        vignetting=spec.vignetting + 0.3 * s,
        illumination_gradient=spec.illumination_gradient + 0.3 * s,
    )


def _defocus_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """The focal plane moves off the nuclei: a wider point-spread function (up to +3.5 px)."""
    return replace(spec, blur_sigma=spec.blur_sigma + 3.5 * s)


def _noise_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """A noisier camera (warm sensor, high-speed readout): read noise up by 25 electrons RMS."""
    return replace(spec, read_noise=spec.read_noise + 25.0 * s)


def _contrast_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """Faded or changed stain: weaker nuclear signal, more unspecific background, flatter response."""
    fade = 1.0 - 0.6 * s
    return replace(
        spec,
        intensity=(spec.intensity[0] * fade, spec.intensity[1] * fade),
        background=spec.background * (1.0 + 0.8 * s),
        gamma=spec.gamma * (1.0 - 0.5 * s),
    )


def _density_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """Denser seeding (up to 3x the objects), so more nuclei touch."""
    return replace(
        spec,
        density=(spec.density[0] * (1.0 + 2.0 * s), spec.density[1] * (1.0 + 2.0 * s)),
        min_separation=spec.min_separation * (1.0 - 0.3 * s),
    )


def _morphology_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """Elongated, irregular nuclei (a treatment or another cell line)."""
    low, high = spec.eccentricity
    return replace(
        spec,
        eccentricity=(low + (0.85 - low) * s, high + (0.96 - high) * s),
        irregularity=spec.irregularity + 0.12 * s,
    )


def _scale_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """Higher magnification (up to 2x): larger nuclei, proportionally fewer per field."""
    zoom = 1.0 + s
    return replace(
        spec,
        radius=(spec.radius[0] * zoom, spec.radius[1] * zoom),
        density=(spec.density[0] / zoom**2, spec.density[1] / zoom**2),
    )


def _dataset_spec(spec: SyntheticSpec, s: float) -> SyntheticSpec:
    """Another, real dataset: a share ``s`` of images are DSB 2018 fields instead of synthetic ones."""
    return replace(spec, real_fraction=spec.real_fraction + (1.0 - spec.real_fraction) * s)


# --- image effects ------------------------------------------------------------------------------


def _white_level(image: np.ndarray) -> float:
    return float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else float(np.inf)


def _as_input_dtype(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    if np.issubdtype(like.dtype, np.integer):
        return np.clip(np.rint(values), 0, _white_level(like)).astype(like.dtype)
    return values.astype(like.dtype)


def _illumination_image(
    image: np.ndarray, mask: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Brighter by up to 3x, with an uneven field of up to 30% across the frame; clips at white."""
    height, width = image.shape[:2]
    angle = rng.uniform(0.0, 2.0 * np.pi)
    y = np.linspace(-0.5, 0.5, height)[:, None]
    x = np.linspace(-0.5, 0.5, width)[None, :]
    field_ = (1.0 + 2.0 * s) * (1.0 + 0.3 * s * (np.cos(angle) * y + np.sin(angle) * x))
    if image.ndim == 3:
        field_ = field_[..., None]
    return _as_input_dtype(image.astype(np.float64) * field_, image), mask


def _defocus_image(
    image: np.ndarray, mask: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blur of up to 3.5 px (the finished image's noise is blurred too, unlike on the spec)."""
    sigma = (3.5 * s, 3.5 * s, 0.0) if image.ndim == 3 else 3.5 * s
    return _as_input_dtype(ndimage.gaussian_filter(image.astype(np.float64), sigma), image), mask


def _noise_image(
    image: np.ndarray, mask: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Added Gaussian noise of up to 8% of the image's 1-99 percentile range."""
    low, high = np.percentile(image, (1.0, 99.0))
    sigma = 0.08 * s * max(float(high - low), 1.0)
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, size=image.shape)
    return _as_input_dtype(noisy, image), mask


def _contrast_image(
    image: np.ndarray, mask: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stain change: contrast around the median compressed by up to 60%, then a gamma of up to 1.5."""
    values = image.astype(np.float64)
    low, median, high = np.percentile(values, (0.1, 50.0, 99.9))
    values = median + (values - median) * (1.0 - 0.6 * s)
    span = max(float(high - low), 1e-12)
    relative = np.clip((values - low) / span, 0.0, None)
    return _as_input_dtype(low + span * relative ** (1.0 + 0.5 * s), image), mask


def _scale_image(
    image: np.ndarray, mask: np.ndarray, s: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom in by up to 2x about the centre and crop back to the original size."""
    zoom = 1.0 + s
    channel_axis = 2 if image.ndim == 3 else None
    big = rescale(image.astype(np.float64), zoom, order=1, channel_axis=channel_axis, preserve_range=True)
    big_mask = rescale(mask, zoom, order=0, preserve_range=True, anti_aliasing=False).astype(mask.dtype)
    height, width = image.shape[:2]
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    window = (slice(top, top + height), slice(left, left + width))
    return _as_input_dtype(big[window], image), big_mask[window]


DRIFTS: dict[str, DriftKind] = {
    kind.name: kind
    for kind in (
        DriftKind(
            "illumination",
            "lamp power / gain change with an uneven field",
            "p50",
            _illumination_spec,
            _illumination_image,
        ),
        DriftKind("defocus", "focal plane off the specimen", "focus", _defocus_spec, _defocus_image),
        DriftKind("noise", "noisier camera readout", "noise", _noise_spec, _noise_image),
        DriftKind(
            "contrast", "stain fading / stain protocol change (contrast, gamma)", "p99", _contrast_spec, _contrast_image
        ),
        DriftKind("density", "more cells per field, more touching nuclei", "object_count", _density_spec),
        DriftKind("morphology", "elongated, irregular nuclei", "eccentricity", _morphology_spec),
        DriftKind("scale", "magnification change", "area", _scale_spec, _scale_image),
        DriftKind("dataset", "switch to another, real dataset (DSB 2018 fields)", "focus", _dataset_spec),
    )
}


# --- schedules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftStep:
    """From image ``start`` on, drift ``drift.name`` runs at ``drift.severity``.

    With ``ramp`` > 0 the severity moves linearly from the previous value of that drift (0 if none)
    to the new one over ``ramp`` images: a gradual drift instead of a sudden one.
    """

    start: int
    drift: DriftSpec
    ramp: int = 0

    def __post_init__(self) -> None:
        if self.start < 0 or self.ramp < 0:
            raise ValueError(f"start and ramp must be >= 0, got start={self.start} ramp={self.ramp}")


_STEP_PATTERN = re.compile(
    r"^\s*(?P<name>[a-z]+)\s*:\s*(?P<sev>[0-9.]+)\s*@\s*(?P<start>\d+)(?:\s*\+\s*(?P<ramp>\d+))?\s*$"
)


@dataclass(frozen=True)
class DriftSchedule:
    """Which drifts act on the i-th image of a stream; different drift names compose.

    For each drift name the latest step with ``start <= index`` holds, so a later step with
    severity 0 ends a drift (recovery) and a later step with another severity changes it.
    """

    steps: tuple[DriftStep, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[int, DriftSpec]]) -> DriftSchedule:
        """A schedule of sudden drifts from (start_index, drift) pairs."""
        return cls(tuple(DriftStep(start, drift) for start, drift in pairs))

    @classmethod
    def parse(cls, text: str) -> DriftSchedule:
        """Parse ``name:severity@start[+ramp]`` items separated by commas, e.g. ``defocus:0.6@500+100``."""
        steps = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            match = _STEP_PATTERN.match(item)
            if match is None:
                raise ValueError(f"cannot parse drift step {item!r}; expected name:severity@start[+ramp]")
            steps.append(
                DriftStep(
                    int(match["start"]),
                    DriftSpec(match["name"], float(match["sev"])),
                    int(match["ramp"] or 0),
                )
            )
        return cls(tuple(steps))

    @property
    def onset(self) -> int | None:
        """Index of the first image that any drift touches (None for a drift-free schedule)."""
        starts = [step.start for step in self.steps if step.drift.severity > 0.0]
        return min(starts) if starts else None

    def active(self, index: int) -> tuple[DriftSpec, ...]:
        """The drifts with nonzero severity acting on image ``index``, in order of first appearance."""
        severities: dict[str, float] = {}
        for step in sorted(self.steps, key=lambda item: item.start):
            if step.start > index:
                break
            target = step.drift.severity
            if step.ramp and index < step.start + step.ramp:
                previous = severities.get(step.drift.name, 0.0)
                target = previous + (target - previous) * (index - step.start + 1) / (step.ramp + 1)
            severities[step.drift.name] = target
        return tuple(DriftSpec(name, severity) for name, severity in severities.items() if severity > 0.0)

    def spec_at(self, base: SyntheticSpec, index: int) -> SyntheticSpec:
        """The generator spec for image ``index`` of the stream."""
        return apply_drift(base, self.active(index))
