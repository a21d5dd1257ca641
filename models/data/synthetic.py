"""Synthetic fluorescence-microscopy images of nuclei with ground-truth instance masks.

The generator follows the physics of a widefield fluorescence acquisition, in this order, so that
each drift transform (``models.data.drift``) can change the stage where the real cause acts:

1. objects: elliptical, optionally irregular nuclei placed at random (some touching), each with a
   stain intensity, a slight centre-to-edge falloff and a chromatin-like texture;
2. background: autofluorescence with vignetting and a slow illumination gradient;
3. optics: Gaussian point-spread blur (focus);
4. camera: shot noise (photon counts) plus read noise, gain (ADU per electron), offset, clipping
   at the bit depth, rounding to an unsigned integer type.

Every image also draws a small acquisition jitter (gain, offset, focus, background) so a stream of
in-distribution images has a realistic spread: drift detectors must tolerate it, not fire on it.
With ``real_fraction`` > 0 that share of images are fields of the real DSB 2018 image recorded by the
same camera instead (the dataset-switch drift).

Shot noise uses the Gaussian approximation ``N(lambda, lambda)`` of ``Poisson(lambda)``: it is five
times faster than ``Generator.poisson`` at 256x256 and indistinguishable at the photon counts the
defaults produce (background >= ~45 electrons per pixel).

>>> import numpy as np
>>> image, mask = generate(SyntheticSpec(size=(64, 64)), np.random.default_rng(0))
>>> image.dtype.name, mask.dtype.name, image.shape == mask.shape == (64, 64)
('uint16', 'int32', True)
>>> bool(mask.max() > 0)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from models.data.dsb import dsb_background, dsb_field

__all__ = ["SyntheticSpec", "generate", "generate_batch"]

#: Radial harmonics used to make nucleus outlines irregular (2 = peanut, 3 = triangular, ...).
_HARMONICS = np.arange(2, 6)
#: Angular resolution of the tabulated outline (2.8 degrees: under a pixel at radius 20).
_ANGLES = 128


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that defines the distribution of generated images; drift changes these fields.

    Intensities are in photo-electrons per pixel; ``gain`` converts them to camera units (ADU).
    The defaults give 256x256 images whose normalised look and object statistics resemble the
    2018 Data Science Bowl fluorescence tile in ``models/data/dsb2018`` (see its PROVENANCE.md).
    Ranges ``(low, high)`` are sampled uniformly per image (density) or per object (the rest).
    """

    size: tuple[int, int] = (256, 256)
    #: Objects per 10,000 px^2 (the DSB image has ~5 labelled nuclei per 10,000 px^2, cut ones included).
    density: tuple[float, float] = (4.2, 6.4)
    #: Equivalent radius sqrt(a*b) of a nucleus, in pixels.
    radius: tuple[float, float] = (10.0, 15.0)
    eccentricity: tuple[float, float] = (0.55, 0.93)
    #: Amplitude of the radial harmonics of the outline; 0 gives perfect ellipses.
    irregularity: float = 0.04
    #: Minimum centre distance as a fraction of the two radii summed; below 1 lets objects touch.
    min_separation: float = 0.85
    #: Stain signal of a nucleus above background, electrons per pixel.
    intensity: tuple[float, float] = (40.0, 120.0)
    #: Fraction of nuclei that are much brighter (mitotic / condensed chromatin), and how much.
    bright_fraction: float = 0.08
    bright_factor: float = 2.8
    #: Relative amplitude of the per-pixel chromatin grain inside nuclei, before the optical blur.
    texture: float = 0.35
    #: Centre-to-edge intensity falloff of a nucleus (1 - falloff * r^2).
    edge_falloff: float = 0.25
    #: Exponent applied to the stain signal (relative to its mean); 1 is linear staining.
    gamma: float = 1.0
    #: Unlabelled out-of-focus nuclei (from other focal planes) per 10,000 px^2, their extra blur in
    #: pixels and their brightness relative to in-focus nuclei. Annotators leave them out, as in the DSB
    #: image, so a model must learn to ignore them.
    out_of_focus: float = 1.5
    out_of_focus_blur: float = 4.0
    out_of_focus_brightness: float = 0.4
    #: Background autofluorescence, electrons per pixel, before vignetting.
    background: float = 55.0
    #: Fractional intensity loss at the image corners.
    vignetting: float = 0.15
    #: Peak-to-peak amplitude of a random linear illumination gradient, as a fraction.
    illumination_gradient: float = 0.08
    #: Standard deviation of the Gaussian point-spread function, pixels.
    blur_sigma: float = 1.0
    #: Camera read noise, electrons RMS.
    read_noise: float = 3.0
    #: ADU per electron, and the camera offset (bias) in ADU.
    gain: float = 2.0
    offset: float = 100.0
    bit_depth: int = 16
    dtype: Literal["uint8", "uint16"] = "uint16"
    #: Per-image acquisition jitter: relative gain, absolute offset (ADU), added focus blur (px),
    #: relative background. These make consecutive in-distribution images differ as on a real scope.
    gain_jitter: float = 0.04
    offset_jitter: float = 3.0
    focus_jitter: float = 0.15
    background_jitter: float = 0.08
    #: Share of images that are fields of the real DSB 2018 image instead of synthetic ones, recorded
    #: by this camera (``models.data.dsb.dsb_field``): the dataset-switch drift. 0 draws no random number.
    real_fraction: float = 0.0

    def __post_init__(self) -> None:
        height, width = self.size
        if height < 8 or width < 8:
            raise ValueError(f"size must be at least 8x8, got {self.size}")
        for name in ("density", "radius", "eccentricity", "intensity"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high, got {(low, high)}")
        if self.eccentricity[1] >= 1:
            raise ValueError(f"eccentricity must stay below 1, got {self.eccentricity}")
        if self.radius[0] <= 0:
            raise ValueError(f"radius must be positive, got {self.radius}")
        if self.gain <= 0 or self.gamma <= 0:
            raise ValueError("gain and gamma must be positive")
        non_negative = ("blur_sigma", "read_noise", "background", "irregularity", "texture", "out_of_focus")
        if min(getattr(self, name) for name in non_negative) < 0:
            raise ValueError(f"{', '.join(non_negative)} must be >= 0")
        if not 0.0 <= self.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {self.real_fraction}")
        max_bits = 8 if self.dtype == "uint8" else 16
        if not 1 <= self.bit_depth <= max_bits:
            raise ValueError(f"bit_depth {self.bit_depth} does not fit dtype {self.dtype}")

    @property
    def white_level(self) -> int:
        """The largest value the camera can record (saturation)."""
        return int(2**self.bit_depth - 1)


def generate(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image (H x W, ``spec.dtype``) and its instance mask (H x W int32, 0 = background).

    Labels are consecutive from 1; an object that touches the border is kept (cut), as in real tiles.
    """
    if spec.real_fraction > 0 and rng.random() < spec.real_fraction:
        return _real_field(spec, rng)
    height, width = spec.size
    gain = spec.gain * float(np.exp(rng.normal(0.0, spec.gain_jitter)))
    offset = spec.offset + float(rng.normal(0.0, spec.offset_jitter))
    blur = spec.blur_sigma + abs(float(rng.normal(0.0, spec.focus_jitter)))
    background = spec.background * float(np.exp(rng.normal(0.0, spec.background_jitter)))

    labels, signal = _render_objects(spec, rng)
    photons = signal + _background_field(spec, background, rng)
    if spec.out_of_focus > 0:
        photons += _out_of_focus_haze(spec, rng)
    if blur > 0:
        photons = ndimage.gaussian_filter(photons, blur, truncate=3.0)
    noise_sd = np.sqrt(np.maximum(photons, 0.0) + np.float32(spec.read_noise**2))
    electrons = photons + noise_sd * rng.standard_normal((height, width), dtype=np.float32)
    return _digitise(spec, electrons, gain, offset), labels


def _digitise(spec: SyntheticSpec, electrons: np.ndarray, gain: float, offset: float) -> np.ndarray:
    """The camera's analogue-to-digital step: gain, offset, rounding, clipping at the bit depth."""
    adu = np.rint(electrons * np.float32(gain) + np.float32(offset))
    return np.clip(adu, 0, spec.white_level).astype(spec.dtype)


def _real_field(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A field of the real DSB 2018 image recorded by this spec's camera (the dataset switch).

    The real image keeps its own optics and photon noise; its background is scaled onto
    ``spec.background`` (with the same per-image jitter), so exposure is comparable and what changes
    is the specimen and its look. The camera then adds read noise, gain and offset, jittered as for a
    synthetic image, so a noise or gain drift composes with the switch.
    """
    values, labels = dsb_field(spec.size, rng)
    gain = spec.gain * float(np.exp(rng.normal(0.0, spec.gain_jitter)))
    offset = spec.offset + float(rng.normal(0.0, spec.offset_jitter))
    background = spec.background * float(np.exp(rng.normal(0.0, spec.background_jitter)))
    photons = values * np.float32(background / dsb_background())
    electrons = photons + np.float32(spec.read_noise) * rng.standard_normal(values.shape, dtype=np.float32)
    return _digitise(spec, electrons, gain, offset), labels


def generate_batch(spec: SyntheticSpec, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` independent images: (n, H, W) images and (n, H, W) int32 masks, reproducible by seed."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, *spec.size), dtype=spec.dtype)
    masks = np.empty((n, *spec.size), dtype=np.int32)
    for i in range(n):
        images[i], masks[i] = generate(spec, rng)
    return images, masks


def _background_field(spec: SyntheticSpec, level: float, rng: np.random.Generator) -> np.ndarray:
    """Autofluorescence times vignetting (off-centre, as lamps rarely sit on the axis) and a gradient.

    Vignetting and gradient are both small, so their product is replaced by their sum, which is
    separable into a row term plus a column term: one full-frame operation instead of eight.
    """
    height, width = spec.size
    y = np.linspace(-1.0, 1.0, height)
    x = np.linspace(-1.0, 1.0, width)
    cy, cx = rng.uniform(-0.3, 0.3, size=2)
    angle = rng.uniform(0.0, 2.0 * np.pi)
    half_vignette, half_gradient = spec.vignetting / 2.0, spec.illumination_gradient / 2.0
    rows = level * (0.5 - half_vignette * (y - cy) ** 2 + half_gradient * np.cos(angle) * y)
    cols = level * (0.5 - half_vignette * (x - cx) ** 2 + half_gradient * np.sin(angle) * x)
    return rows.astype(np.float32)[:, None] + cols.astype(np.float32)[None, :]


def _out_of_focus_haze(spec: SyntheticSpec, rng: np.random.Generator) -> np.ndarray:
    """Glow of nuclei outside the focal plane: wide Gaussian blobs, not in the mask.

    A disc of radius r blurred by s is close to a Gaussian of variance r^2/4 + s^2, so the blobs are
    point sources filtered once. That is done at half resolution and upsampled by pixel repetition:
    the blobs are smooth enough (sigma >= 4 px) that the 2 px steps sink below the shot noise,
    and the optical blur that follows smooths them further.
    """
    height, width = spec.size
    low_h, low_w = (height + 1) // 2, (width + 1) // 2
    count = rng.poisson(spec.out_of_focus * height * width / 10_000.0)
    points = np.zeros((low_h, low_w), dtype=np.float32)
    if count == 0:
        return np.zeros((height, width), dtype=np.float32)
    radius = float(np.mean(spec.radius))
    sigma_low = float(np.sqrt(radius**2 / 4.0 + spec.out_of_focus_blur**2)) / 2.0
    peaks = spec.out_of_focus_brightness * rng.uniform(*spec.intensity, size=count)
    ys, xs = rng.integers(0, low_h, size=count), rng.integers(0, low_w, size=count)
    np.add.at(points, (ys, xs), (peaks * 2.0 * np.pi * sigma_low**2).astype(np.float32))
    haze = ndimage.gaussian_filter(points, sigma_low, truncate=3.0)
    return np.repeat(np.repeat(haze, 2, axis=0), 2, axis=1)[:height, :width]


def _render_objects(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels and the stain signal (electrons) of randomly placed nuclei.

    All objects are rendered at once on an (objects, K, K) window stack, K fitting the largest
    object, because a per-object loop of small numpy calls costs several times more. Where two
    nuclei overlap, a pixel goes to the nucleus whose normalised radius is smaller there (one
    ``minimum.at`` over keys that pack radius and label), which gives the straight shared boundary
    that touching nuclei show in annotated data.
    """
    height, width = spec.size
    centres, radii = _place_centres(spec, rng)
    n = radii.size
    if n == 0:
        return np.zeros((height, width), dtype=np.int32), np.zeros((height, width), dtype=np.float32)

    ecc = rng.uniform(*spec.eccentricity, size=n)
    squash = (1.0 - ecc**2) ** 0.25
    semi_major, semi_minor = radii / squash, radii * squash
    theta = rng.uniform(0.0, np.pi, size=n)
    amplitudes = spec.irregularity * rng.standard_normal((n, _HARMONICS.size)) * 2.0 / _HARMONICS
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, _HARMONICS.size))
    stain = rng.uniform(*spec.intensity, size=n)
    stain = np.where(rng.random(n) < spec.bright_fraction, stain * spec.bright_factor, stain)
    if spec.gamma != 1.0:
        mean_intensity = 0.5 * (spec.intensity[0] + spec.intensity[1])
        stain = mean_intensity * (stain / mean_intensity) ** spec.gamma

    reach = int(np.ceil(float(np.max(semi_major * (1.0 + np.abs(amplitudes).sum(axis=1)))))) + 1
    offsets = np.arange(-reach, reach + 1, dtype=np.int32)
    top, left = np.rint(centres[:, 0]).astype(np.int32), np.rint(centres[:, 1]).astype(np.int32)
    py = top[:, None, None] + offsets[None, :, None]
    px = left[:, None, None] + offsets[None, None, :]
    dy = (py - centres[:, 0, None, None]).astype(np.float32)
    dx = (px - centres[:, 1, None, None]).astype(np.float32)
    cos_t = np.cos(theta).astype(np.float32)[:, None, None]
    sin_t = np.sin(theta).astype(np.float32)[:, None, None]
    u = (dx * cos_t + dy * sin_t) / semi_major.astype(np.float32)[:, None, None]
    v = (dy * cos_t - dx * sin_t) / semi_minor.astype(np.float32)[:, None, None]
    rho = np.sqrt(u * u + v * v)
    # Only pixels that an outline can reach go on; this drops most of each square window early.
    stretch = 1.0 + np.abs(amplitudes).sum(axis=1)
    candidate = (rho <= stretch.astype(np.float32)[:, None, None]) & (py >= 0) & (py < height)
    candidate &= (px >= 0) & (px < width)
    obj, row, col = np.nonzero(candidate)
    flat = (py * width + px)[candidate].astype(np.int64)
    rho_in = rho[candidate]
    if spec.irregularity > 0:
        # The outline r(psi) = 1 + sum_k a_k cos(k*psi + p_k) is tabulated per object at _ANGLES
        # polar angles psi of the window, taken relative to the object's orientation. The angle of
        # each window offset is computed once for the whole stack, so no per-pixel arctan2 is needed.
        angles = np.linspace(0.0, 2.0 * np.pi, _ANGLES, endpoint=False)
        waves = np.cos(_HARMONICS[None, :, None] * angles[None, None, :] + phases[:, :, None])
        outline = np.maximum(1.0 + np.einsum("nk,nka->na", amplitudes, waves), 0.3).astype(np.float32)
        window_angle = np.arctan2(offsets[:, None].astype(np.float64), offsets[None, :].astype(np.float64))
        window_bin = np.rint(window_angle * (_ANGLES / (2.0 * np.pi))).astype(np.int64)
        theta_bin = np.rint(theta * (_ANGLES / (2.0 * np.pi))).astype(np.int64)
        bins = (window_bin[row, col] - theta_bin[obj]) % _ANGLES
        rho_in = rho_in / outline.ravel()[obj * _ANGLES + bins]
    keep = rho_in <= 1.0
    obj, flat, rho_in = obj[keep] + 1, flat[keep], rho_in[keep]
    # Pack (quantised radius, label) into one int64 so the minimum picks the closest object.
    keys = (np.rint(rho_in * 65535.0).astype(np.int64) << 20) | obj
    best = np.full(height * width, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, flat, keys)
    owned = best != np.iinfo(np.int64).max
    labels = np.zeros(height * width, dtype=np.int32)
    labels[owned] = (best[owned] & ((1 << 20) - 1)).astype(np.int32)
    owner_rho = (best[owned] >> 20).astype(np.float32) / np.float32(65535.0)
    signal = np.zeros(height * width, dtype=np.float32)
    stain_lut = np.concatenate([[0.0], stain]).astype(np.float32)
    signal[owned] = stain_lut[labels[owned]] * (1.0 - np.float32(spec.edge_falloff) * owner_rho * owner_rho)

    if spec.texture > 0:
        # White multiplicative grain on the stained pixels only; the optical blur that follows
        # turns it into the ~1 px chromatin granularity of a widefield image.
        grain = rng.standard_normal(int(owned.sum()), dtype=np.float32)
        signal[owned] *= np.maximum(1.0 + np.float32(spec.texture) * grain, 0.0)
    return _relabel_consecutive(labels.reshape(height, width)), signal.reshape(height, width)


def _place_centres(spec: SyntheticSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random centres (rejection sampling on the minimum separation) and their radii.

    Centres may lie up to half a radius outside the frame so that cut objects appear at borders.
    A crowded spec yields fewer objects than asked rather than looping forever.
    """
    height, width = spec.size
    target = round(rng.uniform(*spec.density) * height * width / 10_000.0)
    attempts = 20 * target + 20
    radii_pool = rng.uniform(*spec.radius, size=attempts)
    margin = 0.5 * spec.radius[1]
    ys = rng.uniform(-margin, height + margin, size=attempts)
    xs = rng.uniform(-margin, width + margin, size=attempts)
    centres = np.empty((target, 2))
    radii = np.empty(target)
    count = 0
    for y, x, r in zip(ys, xs, radii_pool, strict=True):
        if count == target:
            break
        if count:
            dist2 = (centres[:count, 0] - y) ** 2 + (centres[:count, 1] - x) ** 2
            if np.any(dist2 < (spec.min_separation * (radii[:count] + r)) ** 2):
                continue
        centres[count] = (y, x)
        radii[count] = r
        count += 1
    return centres[:count], radii[:count]


def _relabel_consecutive(labels: np.ndarray) -> np.ndarray:
    """Map labels to 1..n, dropping objects that lost every pixel to a neighbour."""
    present = np.flatnonzero(np.bincount(labels.ravel()))
    present = present[present > 0]
    if present.size and present[-1] == present.size:
        return labels
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return lookup[labels]
