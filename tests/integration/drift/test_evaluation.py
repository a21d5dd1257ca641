"""The synthetic-stream helpers the benchmark and the Done-when test build on."""

from __future__ import annotations

import numpy as np
import pytest

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec, generate
from schemas.codec import decode, encode
from streams.drift.evaluation import ThumbnailEncoder, image_events, synthetic_stream

SPEC = SyntheticSpec(size=(64, 64))


def test_thumbnail_encoder_is_deterministic_and_blind_to_gain() -> None:
    image, _ = generate(SPEC, np.random.default_rng(0))
    encoder = ThumbnailEncoder(latent_dim=8, side=16, seed=3)
    latent, error = encoder(image)
    assert len(latent) == 8 and error >= 0
    assert ThumbnailEncoder(latent_dim=8, side=16, seed=3)(image) == (latent, error)
    brighter, _ = encoder(image.astype(np.float64) * 2.0)
    assert np.allclose(brighter, latent)  # per-image normalised, like the embedding DESIGN.md measured
    with pytest.raises(ValueError, match="smaller"):
        encoder(np.zeros((8, 8), dtype=np.uint16))


def test_image_events_are_valid_contract_messages() -> None:
    image, mask = generate(SPEC, np.random.default_rng(1))
    item = image_events(image, mask, index=7, encoder=ThumbnailEncoder(), instrument_id="scope-9")
    assert item.fingerprint.image_id == item.prediction.image_id == "scope-9-000007"
    assert decode(encode(item.fingerprint)) == item.fingerprint
    assert decode(encode(item.prediction)) == item.prediction
    assert item.prediction.object_count == len(item.prediction.objects) > 0
    assert item.prediction.foreground_fraction == pytest.approx(np.count_nonzero(mask) / mask.size)


def test_synthetic_stream_is_reproducible_and_indexed() -> None:
    first = list(synthetic_stream(SPEC, DriftSchedule(), 3, seed=5, start=10))
    again = list(synthetic_stream(SPEC, DriftSchedule(), 3, seed=5, start=10))
    assert [i.index for i in first] == [10, 11, 12]
    assert [i.fingerprint.stats for i in first] == [i.fingerprint.stats for i in again]
