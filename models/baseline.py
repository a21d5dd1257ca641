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
    out_dir: Path = ARTIFACTS_DIR, *, seconds: float | None = None, encoder_seconds: float | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Train, export, quantise and write the baseline; returns the manifest it wrote.

    Budgets are epochs (with early stopping), so a rerun gives the same models; ``seconds`` adds a
    wall-clock cap for slow machines at the price of that reproducibility.
    """
    import torch

    from models.autoencoder import AutoencoderConfig, save_autoencoder
    from models.onnx_export import export_autoencoder, export_segmenter
    from models.quantize import quantize_if_within
    from models.train_autoencoder import AutoencoderTrainConfig, train_autoencoder
    from models.train_segmenter import SegmenterTrainConfig, TrainBudget, train_segmenter
    from models.unet import UNetConfig, save_unet

    torch.set_num_threads(threads)
    started = time.monotonic()
    data = load_data()
    # The DSB training quadrants are 8 tiles against 96 synthetic images: repeat them so about a
    # third of the crops come from real nuclei.
    seg_train = data.synthetic["train"] + data.dsb["train"] * 6
    seg_config = SegmenterTrainConfig(
        unet=UNetConfig(base_width=8, depth=4, max_width=128),
        tile=128,
        batch_size=8,
        steps_per_epoch=25,
        learning_rate=3e-3,
        seed=0,
        budget=TrainBudget(max_epochs=14, max_seconds=seconds, patience=5),
    )
    seg = train_segmenter(seg_train, data.pairs("val"), seg_config)
    seg_export = export_segmenter(seg.model)
    int8 = quantize_if_within(
        seg_export.onnx, [image for image, _ in data.pairs("train")[::4]], data.pairs("val")
    )
    ae_config = AutoencoderTrainConfig(
        autoencoder=AutoencoderConfig(latent_dim=32, input_size=64),
        seed=0,
        budget=TrainBudget(max_epochs=25, max_seconds=encoder_seconds, patience=4),
    )
    ae = train_autoencoder(
        [image for image, _ in data.pairs("train")], [image for image, _ in data.pairs("val")], ae_config
    )
    ae_export = export_autoencoder(ae.model, fp16_storage=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "segmenter.onnx": seg_export.onnx,
        "segmenter.pt": save_unet(seg.model),
        "segmenter-int8.onnx": int8.onnx,
        "encoder.onnx": ae_export.onnx,
        "encoder.pt": save_autoencoder(ae.model, half=True),
    }
    for name, blob in files.items():
        (out_dir / name).write_bytes(blob)
    sha = {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()}
    manifest: dict[str, Any] = {
        "segmenter": {
            "onnx": "segmenter.onnx",
            "weights": "segmenter.pt",
            "precision": "fp32",
            "config": seg.model.config.to_dict(),
            "metrics": seg.metrics,
            "parity_max_abs_diff": seg_export.parity_max_abs_diff,
            "history": seg.history,
            "int8": {
                "onnx": "segmenter-int8.onnx",
                "val_dice_fp32": int8.dice_fp32,
                "val_dice_int8": int8.dice_int8,
                "dice_drop": int8.dice_drop,
                "within_tolerance": int8.promoted,
            },
        },
        "encoder": {
            "onnx": "encoder.onnx",
            "weights": "encoder.pt",
            "precision": "fp16",
            "config": ae.model.config.to_dict(),
            "metrics": ae.metrics,
            "parity_max_abs_diff": ae_export.parity_max_abs_diff,
            "fp16_storage_max_abs_diff": ae_export.storage_max_abs_diff,
            "history": ae.history,
        },
        "sha256": sha,
        "reproduce": {
            "command": COMMAND,
            "seeds": {"synthetic": SEEDS, "torch": 0},
            "data": "synthetic generator (96 train / 8 val images, 256x256) + DSB 2018 train quadrants "
            "(128 px tiles, x6); validation: synthetic seed 2 + DSB val quadrant",
            "threads": threads,
            "device": seg.device,
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
            "seconds": time.monotonic() - started,
        },
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.baseline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train, export and write the baseline artifacts (needs torch)")
    train.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    train.add_argument("--seconds", type=float, default=None, help="wall-clock cap on segmenter training")
    train.add_argument("--encoder-seconds", type=float, default=None, help="wall-clock cap on encoder training")
    train.add_argument("--threads", type=int, default=2)
    evaluate = sub.add_parser("evaluate", help="print held-out figures of the shipped artifacts")
    evaluate.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR)
    evaluate.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    if args.command == "train":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        manifest = train_baseline(args.out, seconds=args.seconds, encoder_seconds=args.encoder_seconds,
                                  threads=args.threads)
        print(json.dumps({k: manifest[k]["metrics"] for k in ("segmenter", "encoder")}))
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
