"""Training loops on tiny models: reproducible by seed, learning, fine-tuning never ends worse."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.autoencoder import AutoencoderConfig, load_autoencoder, save_autoencoder  # noqa: E402
from models.data.synthetic import SyntheticSpec, generate_batch  # noqa: E402
from models.train_autoencoder import AutoencoderTrainConfig, train_autoencoder  # noqa: E402
from models.train_eval import evaluate_segmenter  # noqa: E402
from models.train_segmenter import (  # noqa: E402
    SegmenterTrainConfig,
    TorchSegmenter,
    TrainBudget,
    choose_device,
    fine_tune,
    train_segmenter,
)
from models.unet import UNetConfig, load_unet, save_unet  # noqa: E402

pytestmark = pytest.mark.torch

TINY = SegmenterTrainConfig(
    unet=UNetConfig(base_width=4, depth=2), tile=32, batch_size=4, steps_per_epoch=4, learning_rate=1e-2,
    device="cpu", budget=TrainBudget(max_epochs=3, patience=3),
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pairs() -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    images, masks = generate_batch(SyntheticSpec(size=(64, 64)), 6, seed=5)
    data = list(zip(images, masks, strict=True))
    return data[:4], data[4:]


def test_device_is_chosen_not_assumed() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device().type == expected
    assert choose_device("cpu").type == "cpu"


def test_same_seed_same_model_and_the_best_epoch_is_kept(pairs) -> None:
    train, val = pairs
    first = train_segmenter(train, val, TINY)
    second = train_segmenter(train, val, TINY)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    best = max(h["val_dice"] for h in first.history)
    assert first.metrics["val_dice"] == pytest.approx(best)
    assert set(first.metrics) >= {"val_dice", "val_iou", "val_object_f1", "epochs"}
    assert first.device == "cpu"


def test_fine_tune_from_checkpoint_bytes_never_ends_below_its_start(pairs) -> None:
    train, val = pairs
    start = train_segmenter(train, val, TINY).model
    start_dice = evaluate_segmenter(TorchSegmenter(start), val, objects=False)["dice"]
    restored = load_unet(save_unet(start))
    for a, b in zip(start.state_dict().values(), restored.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    model, metrics = fine_tune(save_unet(start), train, val, TrainBudget(max_epochs=2, patience=2), config=TINY)
    assert metrics["val_dice"] >= start_dice - 1e-9
    assert model.config == start.config
    with pytest.raises(ValueError, match="torch checkpoint"):
        fine_tune(b"\x08\x07onnx-protobuf", train, val)


def test_autoencoder_training_lowers_reconstruction_error_and_round_trips(pairs) -> None:
    train, val = pairs
    config = AutoencoderTrainConfig(
        autoencoder=AutoencoderConfig(latent_dim=4, input_size=32, decoder_width=32), batch_size=4,
        device="cpu", budget=TrainBudget(max_epochs=3, patience=3),
    )
    result = train_autoencoder([i for i, _ in train], [i for i, _ in val], config)
    first, last = result.history[0]["val_mse"], result.metrics["val_mse"]
    assert np.isfinite(last) and last <= first
    restored = load_autoencoder(save_autoencoder(result.model, half=True))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        z_a, _ = result.model(x)
        z_b, _ = restored(x)
    assert z_b.shape == (2, 4)
    assert float((z_a - z_b).abs().max()) < 5e-2  # fp16 checkpoint
