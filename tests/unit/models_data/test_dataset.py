"""Dataset import/export: both layouts, the formats, the rules, and errors that name the file."""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from models.data.dataset import DatasetError, find_pairs, load_dataset, read_image, write_dataset, write_image
from models.data.synthetic import SyntheticSpec, generate_batch

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture
def pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    images, masks = generate_batch(SyntheticSpec(size=(40, 48)), 2, seed=3)
    return list(zip(images, masks, strict=True))


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif", ".png"])
def test_write_then_load_round_trip(tmp_path: Path, pairs: list, suffix: str) -> None:
    write_dataset(tmp_path, pairs, names=["a", "b"], suffix=suffix)
    items = load_dataset(tmp_path)
    assert [item.name for item in items] == ["a", "b"]
    for item, (image, mask) in zip(items, pairs, strict=True):
        assert np.array_equal(item.image, image)
        assert np.array_equal(item.mask, mask) and item.mask.dtype == np.int32
        assert item.metadata.format == {".tif": "tiff", ".ome.tif": "ome-tiff", ".png": "png"}[suffix]


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif"])
def test_pixel_size_round_trip(tmp_path: Path, pairs: list, suffix: str) -> None:
    write_dataset(tmp_path, pairs[:1], suffix=suffix, pixel_size_um=0.65)
    assert load_dataset(tmp_path)[0].metadata.pixel_size_um == pytest.approx(0.65)


def test_committed_ome_tiff_metadata() -> None:
    image, metadata = read_image(DATA / "nuclei_48_dapi.ome.tif")
    assert image.shape == (48, 48) and image.dtype == np.uint16
    assert metadata.pixel_size_um == pytest.approx(0.325)
    assert metadata.channels == ("DAPI",)
    assert metadata.format == "ome-tiff"


def test_imagej_tiff_pixel_size(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron"})
    assert read_image(path)[1].pixel_size_um == pytest.approx(0.5)


def test_plain_tiff_without_resolution_has_no_pixel_size(tmp_path: Path) -> None:
    write_image(tmp_path / "plain.tif", np.zeros((8, 8), np.uint8))
    assert read_image(tmp_path / "plain.tif")[1].pixel_size_um is None


def test_committed_png_pair_in_suffix_layout() -> None:
    (item,) = load_dataset(DATA / "png_pair")
    assert item.name == "nuclei_48" and item.image.dtype == np.uint8
    assert item.mask.max() == 5


def test_images_and_masks_folders(tmp_path: Path, pairs: list) -> None:
    for i, (image, mask) in enumerate(pairs):
        write_image(tmp_path / "images" / f"f{i}.tif", image)
        write_image(tmp_path / "masks" / f"f{i}_mask.png", mask.astype(np.uint16))
    assert [name for name, _, _ in find_pairs(tmp_path)] == ["f0", "f1"]
    items = load_dataset(tmp_path)
    assert np.array_equal(items[1].mask, pairs[1][1])


def test_binary_and_colour_masks_become_instances(tmp_path: Path) -> None:
    image = np.full((20, 20), 10, dtype=np.uint8)
    binary = np.zeros((20, 20), dtype=np.uint8)
    binary[2:6, 2:6] = 255
    binary[10:15, 10:15] = 255
    colour = np.zeros((20, 20, 3), dtype=np.uint8)
    colour[2:6, 2:6] = (255, 0, 0)
    colour[6:10, 2:6] = (0, 255, 0)  # touching the red one: only colour separates them
    write_image(tmp_path / "bin.png", image)
    write_image(tmp_path / "bin_mask.png", binary)
    write_image(tmp_path / "rgb.png", image)
    write_image(tmp_path / "rgb_mask.png", colour)
    items = {item.name: item.mask for item in load_dataset(tmp_path)}
    assert items["bin"].max() == 2 and items["bin"][3, 3] != items["bin"][12, 12]
    assert items["rgb"].max() == 2 and items["rgb"][3, 3] != items["rgb"][7, 3] and items["rgb"][15, 15] == 0


def test_target_size_crop_and_resize(tmp_path: Path, pairs: list) -> None:
    write_dataset(tmp_path, pairs)
    cropped = load_dataset(tmp_path, target_size=(32, 32))[0]
    assert cropped.image.shape == cropped.mask.shape == (32, 32)
    assert np.array_equal(cropped.image, pairs[0][0][4:36, 8:40])
    resized = load_dataset(tmp_path, target_size=(80, 96), size_mode="resize")[0]
    assert resized.image.shape == (80, 96) and resized.image.dtype == np.uint16
    assert set(np.unique(resized.mask)) <= set(np.unique(pairs[0][1]))


def test_colour_models(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 1] = 200
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[4:8, 4:8] = 1
    write_image(tmp_path / "c.png", rgb)
    write_image(tmp_path / "c_mask.png", mask)
    gray = load_dataset(tmp_path, color="gray")[0].image
    assert gray.shape == (16, 16) and gray[0, 0] == round(200 * 0.7154)
    assert load_dataset(tmp_path, color="rgb")[0].image.shape == (16, 16, 3)
    write_image(tmp_path / "c.png", rgb[..., 1])
    assert np.array_equal(load_dataset(tmp_path, color="rgb")[0].image[..., 2], rgb[..., 1])


def _expect_error(root: Path, culprit: str, words: str, **kwargs: object) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset(root, **kwargs)  # type: ignore[arg-type]
    assert caught.value.path.name == culprit
    assert words in caught.value.problem
    assert culprit in str(caught.value)


def test_error_mask_missing(tmp_path: Path, pairs: list) -> None:
    write_image(tmp_path / "lonely.tif", pairs[0][0])
    _expect_error(tmp_path, "lonely.tif", "mask missing")


def test_error_mask_without_image(tmp_path: Path, pairs: list) -> None:
    write_dataset(tmp_path, pairs[:1])
    write_image(tmp_path / "ghost_mask.tif", pairs[0][1].astype(np.uint16))
    _expect_error(tmp_path, "ghost_mask.tif", "no image")


def test_error_unreadable(tmp_path: Path, pairs: list) -> None:
    (tmp_path / "broken.tif").write_bytes((DATA / "truncated.tif").read_bytes())
    write_image(tmp_path / "broken_mask.tif", pairs[0][1].astype(np.uint16))
    _expect_error(tmp_path, "broken.tif", "unreadable")


def test_error_size_mismatch(tmp_path: Path, pairs: list) -> None:
    write_image(tmp_path / "x.tif", pairs[0][0])
    write_image(tmp_path / "x_mask.tif", pairs[0][1][:-1].astype(np.uint16))
    _expect_error(tmp_path, "x_mask.tif", "size mismatch")


def test_error_image_smaller_than_crop(tmp_path: Path, pairs: list) -> None:
    write_dataset(tmp_path, pairs[:1])
    _expect_error(tmp_path, "image_0000.tif", "smaller than the target", target_size=(64, 64))


@pytest.mark.parametrize(("which", "words"), [("image", "8- or 16-bit"), ("mask", "integer labels")])
def test_error_wrong_dtype(tmp_path: Path, pairs: list, which: str, words: str) -> None:
    image, mask = pairs[0]
    write_image(tmp_path / "f.tif", image.astype(np.float32) if which == "image" else image)
    write_image(tmp_path / "f_mask.tif", mask.astype(np.float32) if which == "mask" else mask.astype(np.uint16))
    _expect_error(tmp_path, "f.tif" if which == "image" else "f_mask.tif", words)


def test_error_stack_is_not_an_image(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((5, 16, 16, 7), np.uint16))
    with pytest.raises(DatasetError, match="2-D image"):
        read_image(tmp_path / "z.tif")


def test_error_empty_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    _expect_error(tmp_path, tmp_path.name, "no images found")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_unsupported_suffix_and_png_pixel_size(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="unsupported"):
        read_image(tmp_path / "a.jpg")
    with pytest.raises(DatasetError, match="PNG cannot record"):
        write_image(tmp_path / "a.png", np.zeros((4, 4), np.uint8), pixel_size_um=1.0)


def test_channel_first_tiff_is_moved_to_channel_last(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((3, 20, 24), np.uint8), photometric="minisblack")
    assert read_image(tmp_path / "c.tif")[0].shape == (20, 24, 3)


def test_png_16_bit(tmp_path: Path) -> None:
    data = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    iio.imwrite(tmp_path / "w.png", data)
    assert np.array_equal(read_image(tmp_path / "w.png")[0], data)
