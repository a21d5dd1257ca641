"""The shipped baseline: its held-out quality (the issue's bar), its manifest, its int8 path."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx
import pytest

from models.baseline import evaluate_artifacts, load_data
from models.data.dsb import dsb_tiles
from models.quantize import publish_int8
from models.registry import ARTIFACTS_DIR, Registry
from schemas.blobstore import BlobStore

MANIFEST = json.loads((ARTIFACTS_DIR / "manifest.json").read_text())


def test_artifacts_match_the_manifest_and_stay_small() -> None:
    total = 0
    for name, digest in MANIFEST["sha256"].items():
        data = (ARTIFACTS_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        total += len(data)
    assert (ARTIFACTS_DIR / MANIFEST["segmenter"]["onnx"]).stat().st_size < 4 * 2**20
    assert total < 60 * 2**20
    assert MANIFEST["segmenter"]["parity_max_abs_diff"] <= 1e-4
    assert MANIFEST["encoder"]["parity_max_abs_diff"] <= 1e-4


def test_held_out_quality_meets_the_bar() -> None:
    figures = evaluate_artifacts(ARTIFACTS_DIR, load_data(n_train=0))
    assert figures["dsb_test_dice"] >= 0.80
    assert figures["synthetic_test_dice"] >= 0.85
    assert figures["int8_dsb_test_dice"] >= figures["dsb_test_dice"] - 0.02


def test_int8_is_static_qdq_and_served_only_within_the_dice_tolerance(tmp_path: Path) -> None:
    registry = Registry(BlobStore(tmp_path / "blobs"))
    base = registry.bootstrap_from_baseline()["segmenter"]
    calibration = [image for image, _ in dsb_tiles(128, "train")[:4]]
    val = dsb_tiles(128, "val")

    refused, strict = publish_int8(registry, base.version, calibration, val, max_dice_drop=-1.0)
    assert not strict.promoted and registry.serving("segmenter") == base
    ops = {node.op_type for node in onnx.load_from_string(strict.onnx).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "DynamicQuantizeLinear" not in ops

    child, decision = publish_int8(registry, base.version, calibration, val)
    assert child == refused  # same bytes, same version: registering is idempotent
    assert child.parent == base.version and child.precision == "int8"
    assert child.metrics["int8_dice_drop"] == pytest.approx(decision.dice_drop)
    assert registry.load_weights(child.version) == registry.load_weights(base.version)
    assert decision.promoted == (decision.dice_drop <= 0.01)
    assert registry.serving("segmenter") == (child if decision.promoted else base)
    int8 = MANIFEST["segmenter"]["int8"]
    assert int8["within_tolerance"] == (int8["dice_drop"] <= 0.01)


@pytest.mark.parametrize("kind", ["segmenter", "encoder"])
def test_manifest_records_how_to_reproduce(kind: str) -> None:
    assert MANIFEST["reproduce"]["command"] == "python -m models.baseline train"
    assert MANIFEST[kind]["metrics"]["epochs"] >= 1
