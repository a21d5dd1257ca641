"""``driftscope segment`` and ``driftscope models`` against a fresh home seeded from the baseline."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from typer.testing import CliRunner

from driftscope.cli import app
from models.data.dsb import dsb_tiles

runner = CliRunner()


def test_segment_writes_label_images_and_prints_counts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (gray, _), (colour, _) = dsb_tiles(128, "test")[:2]
    tifffile.imwrite(tmp_path / "tile0.tif", gray)
    rgba = np.stack([colour // 4] * 3 + [np.full_like(colour, 255)], axis=-1).astype(np.uint8)
    iio.imwrite(tmp_path / "tile1.png", rgba)
    paths = [str(tmp_path / "tile0.tif"), str(tmp_path / "tile1.png")]
    result = runner.invoke(app, ["segment", *paths, "--out", str(tmp_path / "out"), "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [Path(line["image"]).name for line in lines] == ["tile0.tif", "tile1.png"]
    for line in lines:
        labels = tifffile.imread(line["mask"])
        assert Path(line["mask"]).name.endswith("_mask.tif")
        assert labels.shape == (128, 128) and labels.dtype == np.int32
        assert line["objects"] == int(labels.max()) > 5


def test_segment_reports_an_unreadable_file_and_goes_on(tmp_path: Path) -> None:
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, dsb_tiles(128, "test")[0][0])
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    result = runner.invoke(app, ["segment", str(bad), str(good), "--out", str(tmp_path / "out"),
                                 "--home", str(tmp_path / "home")])
    assert result.exit_code == 1
    assert (tmp_path / "out" / "good_mask.tif").exists()


def test_models_list_promote_and_rollback(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path / "home")]
    listed = runner.invoke(app, ["models", "list", "--json", *home])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert {row["kind"] for row in rows if row["serving"]} == {"segmenter", "encoder"}
    for row in rows:
        assert len(row["sha256"]) == 64 and row["metrics"]

    assert runner.invoke(app, ["models", "rollback", "segmenter", *home]).exit_code == 2
    bad = runner.invoke(app, ["models", "promote", "segmenter", "segmenter-000000000000", *home])
    assert bad.exit_code == 2 and "not a registered segmenter" in bad.output
    serving = next(row["version"] for row in rows if row["serving"] and row["kind"] == "segmenter")
    again = runner.invoke(app, ["models", "promote", "segmenter", serving, *home])
    assert again.exit_code == 0 and f"segmenter now serving {serving}" in again.output
