"""The shipped baseline models: how they are trained, and the command that prints their quality.

``python -m models.baseline train`` trains the baseline segmenter and fingerprint encoder from the
synthetic generator plus the training quadrants of the DSB 2018 image, exports them to ONNX (parity
checked), quantises the segmenter to int8 (kept only within 0.01 Dice), and writes everything to
``models/artifacts/`` with ``manifest.json``: metrics, configs, sha256, seeds and the command.

``python -m models.baseline evaluate`` (torch-free) scores the shipped ONNX files on data never
seen in training — the DSB test quadrant and synthetic images from a held-out seed — and prints
the figures (``--json`` for one JSON line).

Splits: synthetic train/val/test use seeds 1/2/3 (disjoint draws); DSB train/val/test are the
disjoint quadrants of :mod:`models.data.dsb`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from models.data.dsb import dsb_tiles
from models.data.synthetic import SyntheticSpec, generate_batch
from models.registry import ARTIFACTS_DIR
from models.runners import EncoderRunner, SegmenterRunner
from models.train_eval import Pair, evaluate_segmenter

__all__ = ["BaselineData", "evaluate_artifacts", "load_data", "main", "train_baseline"]

log = logging.getLogger(__name__)

SEEDS = {"train": 1, "val": 2, "test": 3}
KINDS = ("segmenter", "encoder")
COMMAND = "python -m models.baseline train"


class BaselineData:
    """The baseline's splits; the test split is never touched by training or model selection."""

    def __init__(self, synthetic: dict[str, list[Pair]], dsb: dict[str, list[Pair]]) -> None:
        self.synthetic = synthetic
        self.dsb = dsb

    def pairs(self, split: str) -> list[Pair]:
        return self.synthetic[split] + self.dsb[split]


def load_data(n_train: int = 96, n_val: int = 8, n_test: int = 16, dsb_tile: int = 128) -> BaselineData:
    """Synthetic 256x256 images (seeds 1/2/3) and DSB tiles of ``dsb_tile`` px per split."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    synthetic = {}
    for split, n in sizes.items():
        images, masks = generate_batch(SyntheticSpec(), n, seed=SEEDS[split])
        synthetic[split] = list(zip(images, masks, strict=True))
    dsb = {split: dsb_tiles(dsb_tile, split) for split in ("train", "val", "test")}
    return BaselineData(synthetic, dsb)


def evaluate_artifacts(artifacts_dir: Path = ARTIFACTS_DIR, data: BaselineData | None = None) -> dict[str, float]:
    """Held-out scores of the shipped ONNX models (onnxruntime only)."""
    data = data or load_data(n_train=0)
    manifest = json.loads((artifacts_dir / "manifest.json").read_text())
    segmenter = SegmenterRunner(artifacts_dir / manifest["segmenter"]["onnx"])
    figures: dict[str, float] = {}
    for name, pairs in (("dsb_test", data.dsb["test"]), ("synthetic_test", data.synthetic["test"])):
        for metric, value in evaluate_segmenter(segmenter.predict, pairs).items():
            figures[f"{name}_{metric}"] = value
    int8 = manifest["segmenter"].get("int8")
    if int8 is not None:
        runner = SegmenterRunner(artifacts_dir / int8["onnx"])
        for name, pairs in (("dsb_test", data.dsb["test"]), ("synthetic_test", data.synthetic["test"])):
            figures[f"int8_{name}_dice"] = evaluate_segmenter(runner.predict, pairs, objects=False)["dice"]
    encoder = EncoderRunner(artifacts_dir / manifest["encoder"]["onnx"])
    for name, pairs in (("dsb_test", data.dsb["test"]), ("synthetic_test", data.synthetic["test"])):
        _, errors = encoder.encode([image for image, _ in pairs])
        figures[f"encoder_{name}_reconstruction_mse"] = float(errors.mean())
    return figures


def train_baseline(
    out_dir: Path = ARTIFACTS_DIR,
    *,
    kinds: Sequence[str] = KINDS,
    seconds: float | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Train, export (and for the segmenter quantise) ``kinds``; write the files and the manifest.

    Budgets are epochs (with early stopping), so a rerun gives the same models; ``seconds`` adds a
    wall-clock cap per model for slow machines at the price of that reproducibility. Retraining one
    kind keeps the other's files and manifest entry.
    """
    import torch

    torch.set_num_threads(threads)
    manifest_path = out_dir / "manifest.json"
    manifest: dict[str, Any] = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    data = load_data()
    files: dict[str, bytes] = {}
    device = "cpu"
    for kind in kinds:
        started = time.monotonic()
        train = _train_segmenter if kind == "segmenter" else _train_encoder
        kind_files, entry, device = train(data, seconds)
        entry["seconds"] = time.monotonic() - started
        files |= kind_files
        manifest[kind] = entry
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (out_dir / name).write_bytes(blob)
    manifest["sha256"] = {
        **manifest.get("sha256", {}), **{name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()}
    }
    manifest["reproduce"] = {
        "command": COMMAND,
        "seeds": {"synthetic": SEEDS, "torch": 0},
        "data": "synthetic generator (96 train / 8 val images, 256x256) + DSB 2018 train quadrants "
        "(128 px tiles, x6 for the segmenter); validation: synthetic seed 2 + DSB val quadrant",
        "threads": threads,
        "device": device,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _train_segmenter(data: BaselineData, seconds: float | None) -> tuple[dict[str, bytes], dict[str, Any], str]:
    from models.onnx_export import export_segmenter
    from models.quantize import quantize_if_within
    from models.train_segmenter import SegmenterTrainConfig, TrainBudget, train_segmenter
    from models.unet import UNetConfig, save_unet

    # The DSB training quadrants are 8 tiles against 96 synthetic images: repeat them so about a
    # third of the crops come from real nuclei.
    train = data.synthetic["train"] + data.dsb["train"] * 6
    config = SegmenterTrainConfig(
        unet=UNetConfig(base_width=8, depth=4, max_width=128),
        tile=128,
        batch_size=8,
        steps_per_epoch=25,
        learning_rate=3e-3,
        seed=0,
        budget=TrainBudget(max_epochs=14, max_seconds=seconds, patience=5),
    )
    result = train_segmenter(train, data.pairs("val"), config)
    export = export_segmenter(result.model)
    int8 = quantize_if_within(export.onnx, [image for image, _ in data.pairs("train")[::4]], data.pairs("val"))
    files = {"segmenter.onnx": export.onnx, "segmenter.pt": save_unet(result.model), "segmenter-int8.onnx": int8.onnx}
    entry = {
        "onnx": "segmenter.onnx",
        "weights": "segmenter.pt",
        "precision": "fp32",
        "config": result.model.config.to_dict(),
        "metrics": result.metrics,
        "parity_max_abs_diff": export.parity_max_abs_diff,
        "history": result.history,
        "int8": {
            "onnx": "segmenter-int8.onnx",
            "val_dice_fp32": int8.dice_fp32,
            "val_dice_int8": int8.dice_int8,
            "dice_drop": int8.dice_drop,
            "within_tolerance": int8.promoted,
        },
    }
    return files, entry, result.device


def _train_encoder(data: BaselineData, seconds: float | None) -> tuple[dict[str, bytes], dict[str, Any], str]:
    from models.autoencoder import AutoencoderConfig, save_autoencoder
    from models.onnx_export import export_autoencoder
    from models.train_autoencoder import AutoencoderTrainConfig, train_autoencoder
    from models.train_segmenter import TrainBudget

    config = AutoencoderTrainConfig(
        autoencoder=AutoencoderConfig(latent_dim=32, input_size=64),
        seed=0,
        budget=TrainBudget(max_epochs=25, max_seconds=seconds, patience=4),
    )
    result = train_autoencoder(
        [image for image, _ in data.pairs("train")], [image for image, _ in data.pairs("val")], config
    )
    export = export_autoencoder(result.model, fp16_storage=True)
    files = {"encoder.onnx": export.onnx, "encoder.pt": save_autoencoder(result.model, half=True)}
    entry = {
        "onnx": "encoder.onnx",
        "weights": "encoder.pt",
        "precision": "fp16",
        "config": result.model.config.to_dict(),
        "metrics": result.metrics,
        "parity_max_abs_diff": export.parity_max_abs_diff,
        "fp16_storage_max_abs_diff": export.storage_max_abs_diff,
        "history": result.history,
    }
    return files, entry, result.device


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.baseline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train, export and write the baseline artifacts (needs torch)")
    train.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    train.add_argument("--only", choices=KINDS, help="retrain one model, keep the other's files")
    train.add_argument("--seconds", type=float, default=None, help="wall-clock cap per model")
    train.add_argument("--threads", type=int, default=2)
    evaluate = sub.add_parser("evaluate", help="print held-out figures of the shipped artifacts")
    evaluate.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR)
    evaluate.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    if args.command == "train":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        kinds = (args.only,) if args.only else KINDS
        manifest = train_baseline(args.out, kinds=kinds, seconds=args.seconds, threads=args.threads)
        print(json.dumps({kind: manifest[kind]["metrics"] for kind in kinds}))
        return 0
    figures = evaluate_artifacts(args.artifacts)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        for name, value in figures.items():
            print(f"{name:45s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
