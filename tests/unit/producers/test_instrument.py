"""The synthetic instrument: reproducible per image, drifts on schedule, labels the requested fraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec
from producers.instrument import InstrumentConfig, SyntheticInstrument
from schemas.blobstore import BlobStore
from schemas.claimcheck import image_pixels, label_mask

SMALL = SyntheticSpec(size=(48, 48))


def _pixels(instrument: SyntheticInstrument, index: int) -> np.ndarray:
    event, _ = instrument.acquire(index, store=None)
    assert event.pixels is not None
    return event.pixels


def test_same_seed_and_index_give_the_same_image() -> None:
    a = SyntheticInstrument(InstrumentConfig(spec=SMALL, seed=7))
    b = SyntheticInstrument(InstrumentConfig(spec=SMALL, seed=7))
    np.testing.assert_array_equal(_pixels(a, 5), _pixels(b, 5))
    assert not np.array_equal(_pixels(a, 5), _pixels(a, 6))


def test_drift_acts_from_its_onset() -> None:
    schedule = DriftSchedule.parse("illumination:1@10")
    drifting = SyntheticInstrument(InstrumentConfig(spec=SMALL, schedule=schedule))
    steady = SyntheticInstrument(InstrumentConfig(spec=SMALL))
    for index in range(10):
        np.testing.assert_array_equal(_pixels(drifting, index), _pixels(steady, index))
    shift = [float(np.mean(_pixels(drifting, i))) / float(np.mean(_pixels(steady, i))) for i in range(10, 15)]
    assert all(abs(ratio - 1.0) > 0.2 for ratio in shift)


def test_label_fraction_is_respected_and_masks_match_images(tmp_path: Path) -> None:
    instrument = SyntheticInstrument(InstrumentConfig(spec=SMALL, label_fraction=0.3, seed=1))
    store = BlobStore(tmp_path)
    labels = [instrument.acquire(i, store=store, threshold_bytes=64)[1] for i in range(200)]
    labelled = [label for label in labels if label is not None]
    assert 40 <= len(labelled) <= 80  # 0.3 of 200 = 60, binomial sd ~6.5
    first = labelled[0]
    assert first.mask_blob is not None  # above the (tiny) threshold: claim-checked
    assert label_mask(first, store).shape == (48, 48)


def test_large_images_are_claim_checked(tmp_path: Path) -> None:
    instrument = SyntheticInstrument(InstrumentConfig(spec=SMALL))
    store = BlobStore(tmp_path)
    event, _ = instrument.acquire(0, store=store, threshold_bytes=512)
    assert event.blob is not None
    assert image_pixels(event, store).shape == (48, 48)


def test_config_refuses_impossible_fractions() -> None:
    with pytest.raises(ValueError, match="label_fraction"):
        InstrumentConfig(label_fraction=1.5)
