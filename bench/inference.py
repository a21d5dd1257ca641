"""Segmenter inference throughput: torch eager vs onnxruntime fp32 vs onnxruntime static int8.

Uses the shipped baseline (``models/artifacts``): the torch weights for eager mode, the ONNX
exports for onnxruntime. Every engine gets the same thread count; onnxruntime runs with spinning
off because torch shares the process. Engines are measured in interleaved rounds (the median of
``--rounds`` is reported) so a neighbour's load spike hits all of them alike.

GFLOP/s is the U-Net's multiply-add work per image (counted once with torch's FLOP counter,
2 FLOPs per multiply-add) times images/s; int8 performs the same operations in integer math.

    .venv/bin/python -m bench.inference
    .venv/bin/python -m bench.inference --json    # one line: torch_eager, ort_fp32, ort_int8 (256², batch 8)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from models.registry import ARTIFACTS_DIR
from models.runners import SegmenterRunner
from models.unet import ProbabilityUNet, load_unet

SIZE = 256
BATCHES = (1, 8)


def _rate(run: Callable[[], object], batch: int, min_seconds: float) -> float:
    """Images/s of ``run`` over at least ``min_seconds`` (after one warm-up call)."""
    run()
    calls, started = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return calls * batch / elapsed


def measure(artifacts: Path, threads: int, rounds: int, min_seconds: float) -> dict[str, object]:
    torch.set_num_threads(threads)
    manifest = json.loads((artifacts / "manifest.json").read_text())
    seg = manifest["segmenter"]
    model = ProbabilityUNet(load_unet((artifacts / seg["weights"]).read_bytes())).eval()
    fp32 = SegmenterRunner(artifacts / seg["onnx"], intra_op_threads=threads)
    int8 = SegmenterRunner(artifacts / seg["int8"]["onnx"], intra_op_threads=threads)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 1, SIZE, SIZE))
    flops_per_image = counter.get_total_flops()

    rng = np.random.default_rng(0)
    results: dict[str, dict[int, list[float]]] = {
        name: {b: [] for b in BATCHES} for name in ("torch_eager", "ort_fp32", "ort_int8")
    }
    for _ in range(rounds):
        for batch in BATCHES:
            x = rng.random((batch, 1, SIZE, SIZE), dtype=np.float32)
            xt = torch.from_numpy(x)

            def eager(xt: torch.Tensor = xt) -> object:
                with torch.inference_mode():
                    return model(xt)

            results["torch_eager"][batch].append(_rate(eager, batch, min_seconds))
            results["ort_fp32"][batch].append(_rate(partial(fp32.predict_batch, x), batch, min_seconds))
            results["ort_int8"][batch].append(_rate(partial(int8.predict_batch, x), batch, min_seconds))
    table = {
        name: {b: statistics.median(rates) for b, rates in per_batch.items()} for name, per_batch in results.items()
    }
    return {
        "size": SIZE,
        "threads": threads,
        "gflop_per_image": flops_per_image / 1e9,
        "images_per_s": {name: {str(b): r for b, r in rates.items()} for name, rates in table.items()},
        "gflop_per_s": {
            name: {str(b): r * flops_per_image / 1e9 for b, r in rates.items()} for name, rates in table.items()
        },
        "torch_eager": table["torch_eager"][8],
        "ort_fp32": table["ort_fp32"][8],
        "ort_int8": table["ort_int8"][8],
        "ort_fp32_over_torch": table["ort_fp32"][8] / table["torch_eager"][8],
        "ort_int8_over_fp32": table["ort_int8"][8] / table["ort_fp32"][8],
        "segmenter_version_sha256": manifest["sha256"][seg["onnx"]],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=1.5, help="per engine, batch and round")
    parser.add_argument("--json", action="store_true", help="one JSON line")
    args = parser.parse_args(argv)
    figures = measure(args.artifacts, args.threads, args.rounds, args.min_seconds)
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"U-Net at {SIZE}x{SIZE}: {figures['gflop_per_image']:.2f} GFLOP/image, {args.threads} threads")
    print(f"{'engine':12s} {'batch':>5s} {'images/s':>10s} {'GFLOP/s':>9s}")
    rates = figures["images_per_s"]
    gflops = figures["gflop_per_s"]
    assert isinstance(rates, dict) and isinstance(gflops, dict)
    for name in rates:
        for batch in rates[name]:
            print(f"{name:12s} {batch:>5s} {rates[name][batch]:10.1f} {gflops[name][batch]:9.1f}")
    print(
        f"onnxruntime fp32 / torch eager (batch 8): {figures['ort_fp32_over_torch']:.2f}x; "
        f"int8 / fp32: {figures['ort_int8_over_fp32']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
