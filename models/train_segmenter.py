"""Training of the U-Net segmenter: BCE + Dice loss, augmentation, early stopping on validation Dice.

Seeded and reproducible (one ``numpy`` generator drives sampling and augmentation, torch is
seeded). The device is chosen, never assumed: CUDA when present, else CPU. Inputs go through the
serving preprocessing (:func:`models.runners.model_input`: per-image percentile normalisation)
before cropping, so training sees what the runner will feed.

:func:`fine_tune` is the entry point of the training worker: it starts from the serving weights
(the checkpoint the registry keeps next to each ONNX artifact).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from models.preprocess import pad_to_multiple, unpad
from models.runners import model_input
from models.train_eval import Pair, evaluate_segmenter
from models.unet import UNet, UNetConfig, load_unet

__all__ = [
    "SegmenterTrainConfig",
    "TorchSegmenter",
    "TrainBudget",
    "TrainResult",
    "augment",
    "bce_dice_loss",
    "choose_device",
    "fine_tune",
    "seed_torch",
    "train_segmenter",
]

log = logging.getLogger(__name__)


def choose_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA when available, else CPU."""
    if preferred:
        return torch.device(preferred)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_torch(seed: int) -> None:
    """Seed torch and make cuDNN pick deterministic kernels, so a seed gives the same model on GPU too."""
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@dataclass(frozen=True)
class TrainBudget:
    """When to stop: epochs, wall-clock seconds, or ``patience`` epochs without a better val Dice."""

    max_epochs: int = 40
    max_seconds: float | None = None
    patience: int = 6


@dataclass(frozen=True)
class SegmenterTrainConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    tile: int = 128
    batch_size: int = 8
    steps_per_epoch: int = 40
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    dice_weight: float = 1.0
    seed: int = 0
    device: str | None = None
    budget: TrainBudget = field(default_factory=TrainBudget)


@dataclass
class TrainResult:
    model: UNet
    metrics: dict[str, float]
    history: list[dict[str, float]]
    device: str


class TorchSegmenter:
    """Adapts a torch U-Net to the ``images -> probability maps`` callable used for evaluation."""

    def __init__(self, model: UNet, device: torch.device | None = None, batch_size: int = 8) -> None:
        self.model = model
        self.device = device or next(model.parameters()).device
        self.batch_size = batch_size

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.model.eval()
        multiple = self.model.config.size_multiple
        out = []
        with torch.inference_mode():
            for image in images:
                x, padding = pad_to_multiple(model_input(image, self.model.config.in_channels), multiple)
                logits = self.model(torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device))
                out.append(unpad(torch.sigmoid(logits)[0, 0].float().cpu().numpy(), padding))
        return out


def augment(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Geometric (flips, 90° turns) and photometric (gamma, contrast, offset, noise) augmentation.

    ``x`` is a normalised (C, H, W) crop and ``y`` its (H, W) foreground. The photometric part
    imitates what survives per-image normalisation of a drifting microscope: a different
    background level, a gamma/contrast change, more or less noise.
    """
    k = int(rng.integers(4))
    x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, ::-1]
    x = np.clip(x, 0.0, 1.0) ** rng.uniform(0.6, 1.6)
    x = x * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(0.0, 0.08), size=x.shape)
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.float32)


def _prepare(pairs: Sequence[Pair], channels: int, tile: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Normalise whole images once (as serving does) and reflect-pad any smaller than a tile."""
    prepared = []
    for image, mask in pairs:
        x = model_input(image, channels)
        y = (np.asarray(mask) > 0).astype(np.float32)
        pad_h, pad_w = max(0, tile - y.shape[0]), max(0, tile - y.shape[1])
        if pad_h or pad_w:
            x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
            y = np.pad(y, ((0, pad_h), (0, pad_w)), mode="reflect")
        prepared.append((x, y))
    return prepared


def _batch(
    data: list[tuple[np.ndarray, np.ndarray]], size: int, tile: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(size):
        x, y = data[int(rng.integers(len(data)))]
        top = int(rng.integers(y.shape[0] - tile + 1))
        left = int(rng.integers(y.shape[1] - tile + 1))
        cx, cy = augment(x[:, top:top + tile, left:left + tile], y[top:top + tile, left:left + tile], rng)
        xs.append(cx)
        ys.append(cy)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))[:, None]


def bce_dice_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice: BCE for calibrated pixels, Dice against foreground imbalance."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    total = prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    soft_dice = (2 * inter + 1.0) / (total + 1.0)
    return bce + dice_weight * (1 - soft_dice.mean())


def train_segmenter(
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    config: SegmenterTrainConfig | None = None,
    *,
    init: UNet | None = None,
) -> TrainResult:
    """Train (or continue training ``init``) and return the epoch with the best validation Dice."""
    config = config or SegmenterTrainConfig()
    if not train_pairs or not val_pairs:
        raise ValueError("training needs at least one train and one validation pair")
    device = choose_device(config.device)
    rng = np.random.default_rng(config.seed)
    seed_torch(config.seed)
    model = (copy.deepcopy(init) if init is not None else UNet(config.unet)).to(device)
    tile = max(config.tile, model.config.size_multiple)
    if tile % model.config.size_multiple:
        raise ValueError(f"tile {tile} must be a multiple of {model.config.size_multiple}")
    data = _prepare(train_pairs, model.config.in_channels, tile)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    budget = config.budget
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, budget.max_epochs))
    evaluate = TorchSegmenter(model, device)
    best = evaluate_segmenter(evaluate, val_pairs, objects=False)["dice"] if init is not None else -1.0
    best_state = copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    stale, started = 0, time.monotonic()
    for epoch in range(budget.max_epochs):
        model.train()
        losses = []
        for _ in range(config.steps_per_epoch):
            x, y = _batch(data, config.batch_size, tile, rng)
            loss = bce_dice_loss(model(x.to(device)), y.to(device), config.dice_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        val_dice = evaluate_segmenter(evaluate, val_pairs, objects=False)["dice"]
        elapsed = time.monotonic() - started
        history.append({"epoch": float(epoch), "loss": float(np.mean(losses)), "val_dice": val_dice,
                        "seconds": elapsed})
        log.info("epoch %d loss %.4f val dice %.4f (%.0f s)", epoch, np.mean(losses), val_dice, elapsed)
        if val_dice > best:
            best, stale = val_dice, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if stale >= budget.patience or (budget.max_seconds is not None and elapsed >= budget.max_seconds):
            break
    model.load_state_dict(best_state)
    model.eval()
    metrics = {f"val_{k}": v for k, v in evaluate_segmenter(evaluate, val_pairs).items()}
    metrics["epochs"] = float(len(history))
    metrics["train_seconds"] = time.monotonic() - started
    return TrainResult(model=model.cpu(), metrics=metrics, history=history, device=str(device))


def fine_tune(
    weights: bytes | UNet,
    train_pairs: Sequence[Pair],
    val_pairs: Sequence[Pair],
    budget: TrainBudget | None = None,
    *,
    config: SegmenterTrainConfig | None = None,
) -> tuple[UNet, dict[str, float]]:
    """Continue training the serving model on new data; returns the best model and its val metrics.

    ``weights`` is the checkpoint the registry stores next to each ONNX artifact
    (``Registry.load_weights(version)``) or a U-Net. ONNX bytes cannot be fine-tuned: the exporter
    folds batch-norm into the convolutions, so the torch weights are kept for this purpose.
    The starting model's own val Dice is the bar: the result is never worse on the val set.
    """
    if isinstance(weights, bytes | bytearray):
        if bytes(weights[:4]) != b"PK\x03\x04":  # torch checkpoints are zip archives; ONNX is protobuf
            raise ValueError("fine_tune needs the torch checkpoint (Registry.load_weights), not ONNX bytes")
        init = load_unet(bytes(weights))
    else:
        init = weights
    base = config or SegmenterTrainConfig(unet=init.config, learning_rate=5e-4)
    chosen = replace(base, budget=budget or base.budget)
    result = train_segmenter(train_pairs, val_pairs, chosen, init=init)
    return result.model, dict(result.metrics)
