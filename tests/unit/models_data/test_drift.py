"""Each drift moves the statistic it models, measured on generated and on real images."""

from collections.abc import Callable

import numpy as np
import pytest
from skimage.segmentation import clear_border

from models.data.drift import DRIFTS, DriftSchedule, DriftSpec, DriftStep, apply_drift, transform
from models.data.dsb import dsb_tiles
from models.data.synthetic import SyntheticSpec, generate_batch
from models.imagestats import image_stats
from models.measure import measure_objects

BASE = SyntheticSpec(size=(192, 192))
N_IMAGES = 8


def _stat(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    return lambda image, mask: image_stats(image)[name]


def _contrast(image: np.ndarray, mask: np.ndarray) -> float:
    stats = image_stats(image)
    return stats["p99"] - stats["p50"]


def _object_count(image: np.ndarray, mask: np.ndarray) -> float:
    return float(mask.max())


def _median_measurement(key: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """Median over whole objects: objects cut by the border would measure the crop, not the drift."""

    def measure(image: np.ndarray, mask: np.ndarray) -> float:
        rows = measure_objects(clear_border(mask), image)
        return float(np.median([row[key] for row in rows])) if rows else float("nan")

    return measure


# The statistic each drift must move, and the direction (+1 up, -1 down) as severity grows.
EXPECTED: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], int]] = {
    "illumination": (_stat("p50"), +1),
    "defocus": (_stat("focus"), -1),
    "noise": (_stat("noise"), +1),
    "contrast": (_contrast, -1),
    "density": (_object_count, +1),
    "morphology": (_median_measurement("eccentricity"), +1),
    "scale": (_median_measurement("area"), +1),
    # Real DSB fields are smoother at the 4x4-binned scale the focus measure uses.
    "dataset": (_stat("focus"), -1),
}


def _values(spec: SyntheticSpec, statistic: Callable[[np.ndarray, np.ndarray], float]) -> np.ndarray:
    images, masks = generate_batch(spec, N_IMAGES, seed=11)
    return np.array([statistic(image, mask) for image, mask in zip(images, masks, strict=True)])


def test_registry_names() -> None:
    assert set(DRIFTS) == {
        "illumination", "defocus", "noise", "contrast", "density", "morphology", "scale", "dataset"
    }  # fmt: skip
    assert set(EXPECTED) == set(DRIFTS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_spec_drift_moves_its_statistic_monotonically(name: str) -> None:
    statistic, direction = EXPECTED[name]
    medians = [
        float(np.nanmedian(_values(apply_drift(BASE, DriftSpec(name, severity)), statistic)))
        for severity in (0.0, 0.5, 1.0)
    ]
    assert direction * (medians[1] - medians[0]) > 0, medians
    assert direction * (medians[2] - medians[1]) > 0, medians


@pytest.mark.parametrize("name", ["illumination", "defocus", "noise"])
def test_acquisition_drift_at_half_severity_stands_out_of_the_jitter(name: str) -> None:
    """A detector can only see a drift that moves the statistic well beyond image-to-image jitter.

    Contrast is left out on purpose: a faded stain moves p99 - p50 by about one jitter standard
    deviation even at full severity, one of the drifts the statistics see poorly (DESIGN.md).
    """
    statistic, _ = EXPECTED[name]
    base = _values(BASE, statistic)
    drifted = _values(apply_drift(BASE, DriftSpec(name, 0.5)), statistic)
    assert abs(np.median(drifted) - np.median(base)) > 3.0 * base.std()


def test_severity_zero_is_the_identity() -> None:
    for name in DRIFTS:
        assert apply_drift(BASE, DriftSpec(name, 0.0)) == BASE
    image, mask = dsb_tiles(128, "val")[0]
    same_image, same_mask = transform(image, mask, DriftSpec("noise", 0.0), np.random.default_rng(0))
    assert np.array_equal(same_image, image) and np.array_equal(same_mask, mask)


def test_drifts_compose_in_order() -> None:
    both = apply_drift(BASE, [DriftSpec("defocus", 1.0), DriftSpec("noise", 1.0)])
    assert both.blur_sigma == apply_drift(BASE, DriftSpec("defocus", 1.0)).blur_sigma
    assert both.read_noise == apply_drift(BASE, DriftSpec("noise", 1.0)).read_noise


@pytest.mark.parametrize("name", ["illumination", "defocus", "noise", "contrast", "scale"])
def test_image_transform_moves_its_statistic_on_real_tiles(name: str) -> None:
    statistic, direction = EXPECTED[name]
    rng = np.random.default_rng(5)
    for image, mask in dsb_tiles(256, "val") + dsb_tiles(256, "test"):
        drifted, drifted_mask = transform(image, mask, DriftSpec(name, 0.7), rng)
        assert drifted.dtype == image.dtype and drifted.shape == image.shape
        assert drifted_mask.shape == mask.shape
        assert direction * (statistic(drifted, drifted_mask) - statistic(image, mask)) > 0


def test_dataset_switch_draws_real_fields_with_their_own_masks() -> None:
    """At severity 1 every image is a DSB field: its mask still marks the brighter nuclei, 1..n."""
    spec = apply_drift(BASE, DriftSpec("dataset", 1.0))
    assert spec.real_fraction == 1.0 and apply_drift(BASE, DriftSpec("dataset", 0.5)).real_fraction == 0.5
    images, masks = generate_batch(spec, N_IMAGES, seed=3)
    assert images.dtype == np.uint16 and images.shape == (N_IMAGES, *BASE.size)
    for image, mask in zip(images, masks, strict=True):
        labels = np.unique(mask)
        assert np.array_equal(labels, np.arange(labels[-1] + 1)) and labels[-1] > 0
        assert image[mask > 0].mean() > 1.5 * image[mask == 0].mean()


def test_dataset_switch_keeps_the_synthetic_stream_when_off() -> None:
    """Severity 0 draws no random number, so in-distribution streams are unchanged by the new drift."""
    plain = generate_batch(BASE, 2, seed=9)
    off = generate_batch(apply_drift(BASE, DriftSpec("dataset", 0.0)), 2, seed=9)
    assert all(np.array_equal(a, b) for a, b in zip(plain, off, strict=True))


@pytest.mark.parametrize("name", ["density", "morphology", "dataset"])
def test_specimen_drifts_cannot_be_painted_on_an_image(name: str) -> None:
    image, mask = dsb_tiles(128, "val")[0]
    with pytest.raises(ValueError, match="apply_drift"):
        transform(image, mask, DriftSpec(name, 0.5), np.random.default_rng(0))


@pytest.mark.parametrize(("name", "severity"), [("focus", 0.5), ("defocus", 1.5), ("defocus", -0.1)])
def test_invalid_drift_specs_are_rejected(name: str, severity: float) -> None:
    with pytest.raises(ValueError):
        DriftSpec(name, severity)


def test_schedule_switches_ramps_and_recovers() -> None:
    schedule = DriftSchedule(
        (
            DriftStep(10, DriftSpec("defocus", 0.8)),
            DriftStep(20, DriftSpec("noise", 0.9), ramp=2),
            DriftStep(30, DriftSpec("defocus", 0.0)),
        )
    )
    assert schedule.onset == 10
    assert schedule.active(9) == ()
    assert schedule.active(10) == (DriftSpec("defocus", 0.8),)
    assert [drift.name for drift in schedule.active(20)] == ["defocus", "noise"]
    assert schedule.active(20)[1].severity == pytest.approx(0.3)
    assert schedule.active(21)[1].severity == pytest.approx(0.6)
    assert schedule.active(22)[1] == DriftSpec("noise", 0.9)
    assert schedule.active(30) == (DriftSpec("noise", 0.9),)
    assert schedule.spec_at(BASE, 30) == apply_drift(BASE, DriftSpec("noise", 0.9))
    assert schedule.spec_at(BASE, 0) == BASE


def test_schedule_parse_and_from_pairs_agree() -> None:
    parsed = DriftSchedule.parse("defocus:0.6@500, scale:1@800+100")
    assert parsed.steps == (
        DriftStep(500, DriftSpec("defocus", 0.6)),
        DriftStep(800, DriftSpec("scale", 1.0), ramp=100),
    )
    assert DriftSchedule.from_pairs([(500, DriftSpec("defocus", 0.6))]).steps == parsed.steps[:1]
    assert DriftSchedule().onset is None and DriftSchedule.parse("").steps == ()


@pytest.mark.parametrize("text", ["defocus@5", "defocus:0.5", "blur:0.5@3", "defocus:2@3"])
def test_schedule_parse_rejects_bad_items(text: str) -> None:
    with pytest.raises(ValueError):
        DriftSchedule.parse(text)
