"""Training of the fingerprint autoencoder: MSE reconstruction with Adam (the seed's recipe).

Inputs are prepared by :func:`models.runners.encoder_input` (normalise, resize), the function the
serving runner uses, so the reconstruction error measured in production is the training
objective. Flips and 90° turns augment the scarce reference data; early stopping watches the
validation MSE. Seeded; the device is chosen (CUDA when present, else CPU).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from models.autoencoder import AutoencoderConfig, FingerprintAutoencoder
from models.runners import encoder_input
from models.train_segmenter import TrainBudget, choose_device, seed_torch

__all__ = ["AutoencoderTrainConfig", "AutoencoderTrainResult", "train_autoencoder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    device: str | None = None
    budget: TrainBudget = field(default_factory=lambda: TrainBudget(max_epochs=30, patience=5))


@dataclass
class AutoencoderTrainResult:
    model: FingerprintAutoencoder
    metrics: dict[str, float]
    history: list[dict[str, float]]
    device: str


def _inputs(images: Sequence[np.ndarray], config: AutoencoderConfig) -> torch.Tensor:
    return torch.from_numpy(np.stack([encoder_input(i, config.in_channels, config.input_size) for i in images]))


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    x = torch.rot90(x, int(rng.integers(4)), dims=(2, 3))
    return torch.flip(x, dims=(3,)) if rng.random() < 0.5 else x


def _val_mse(model: FingerprintAutoencoder, x: torch.Tensor, device: torch.device) -> float:
    model.eval()
    with torch.inference_mode():
        errors = [F.mse_loss(model(chunk.to(device))[1], chunk.to(device), reduction="sum") for chunk in x.split(64)]
    return float(sum(float(e) for e in errors) / x.numel())


def train_autoencoder(
    train_images: Sequence[np.ndarray],
    val_images: Sequence[np.ndarray],
    config: AutoencoderTrainConfig | None = None,
) -> AutoencoderTrainResult:
    """Train on reference images; returns the epoch with the lowest validation MSE."""
    config = config or AutoencoderTrainConfig()
    if not train_images or not val_images:
        raise ValueError("training needs at least one train and one validation image")
    device = choose_device(config.device)
    rng = np.random.default_rng(config.seed)
    seed_torch(config.seed)
    model = FingerprintAutoencoder(config.autoencoder).to(device)
    train_x = _inputs(train_images, config.autoencoder)
    val_x = _inputs(val_images, config.autoencoder)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    budget = config.budget
    best, best_state = float("inf"), copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    stale, started = 0, time.monotonic()
    for epoch in range(budget.max_epochs):
        model.train()
        order = rng.permutation(len(train_x))
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = _augment(train_x[order[start:start + config.batch_size]], rng).to(device)
            loss = F.mse_loss(model(batch)[1], batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        val = _val_mse(model, val_x, device)
        elapsed = time.monotonic() - started
        history.append({"epoch": float(epoch), "loss": float(np.mean(losses)), "val_mse": val, "seconds": elapsed})
        log.info("epoch %d loss %.5f val mse %.5f (%.0f s)", epoch, np.mean(losses), val, elapsed)
        if val < best:
            best, stale = val, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if stale >= budget.patience or (budget.max_seconds is not None and elapsed >= budget.max_seconds):
            break
    model.load_state_dict(best_state)
    model.eval()
    metrics = {"val_mse": best, "epochs": float(len(history)), "train_seconds": time.monotonic() - started}
    return AutoencoderTrainResult(model=model.cpu(), metrics=metrics, history=history, device=str(device))
