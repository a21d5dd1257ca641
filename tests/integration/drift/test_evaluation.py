"""The synthetic-stream helpers the benchmark and the Done-when test build on, with both kinds of models."""

from __future__ import annotations

import numpy as np
import pytest

from models.data.drift import DriftSchedule
from models.data.synthetic import SyntheticSpec, generate
from models.runners import instances_from_probability
from schemas.codec import decode, encode
from streams.drift.evaluation import ServedModels, StandInModels, ThumbnailEncoder, image_events, synthetic_stream
from streams.drift.signals import prediction_values

SPEC = SyntheticSpec(size=(64, 64))


@pytest.fixture(scope="module")
def served() -> ServedModels:
    return ServedModels.from_baseline(batch_size=4)


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
    models = StandInModels()
    item = image_events(
        image,
        index=7,
        fingerprint=models.fingerprints([image])[0],
        prediction=models.segmentations([image], [mask])[0],
        encoder_version=models.encoder_version,
        model_version=models.model_version,
        instrument_id="scope-9",
    )
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


def test_batching_does_not_change_the_stream(served: ServedModels) -> None:
    one = list(synthetic_stream(SPEC, DriftSchedule(), 5, seed=2, models=served, batch_size=1))
    batched = list(synthetic_stream(SPEC, DriftSchedule(), 5, seed=2, models=served, batch_size=4))
    assert [i.fingerprint.stats for i in one] == [i.fingerprint.stats for i in batched]
    for a, b in zip(one, batched, strict=True):
        assert np.allclose(a.fingerprint.latent, b.fingerprint.latent, atol=1e-4)
        assert a.prediction.object_count == b.prediction.object_count


def test_served_models_give_the_monitor_real_model_outputs(served: ServedModels) -> None:
    """The served encoder's latent and the U-Net's uncertainty reach the events; the stand-in's do not."""
    spec = SyntheticSpec(size=(128, 128))
    items = list(synthetic_stream(spec, DriftSchedule(), 4, seed=3, models=served))
    stand_in = list(synthetic_stream(spec, DriftSchedule(), 4, seed=3))
    assert [i.fingerprint.stats for i in items] == [i.fingerprint.stats for i in stand_in]
    assert items[0].fingerprint.encoder_version == served.encoder_version != "thumbnail-v1"
    assert {len(i.fingerprint.latent) for i in items} == {served.encoder.latent_dim}
    confidences = {round(i.prediction.mean_confidence, 6) for i in items}
    assert len(confidences) == 4 and all(0.5 <= c < 1 for c in confidences)
    for item in items:
        assert decode(encode(item.prediction)) == item.prediction
        assert item.prediction.object_count > 0 and 0 < item.prediction.entropy < 1
        assert set(prediction_values(item.prediction)) >= {"prediction.object_area", "prediction.entropy"}
    image, _ = generate(spec, np.random.default_rng(3))  # the stream's first image, through the runner
    (probability,) = served.segmenter.predict([image])
    assert items[0].prediction.object_count == int(instances_from_probability(probability).max())
