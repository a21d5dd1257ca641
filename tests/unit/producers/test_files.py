"""Instrument files become images by the documented rules: formats, stacks, channels, pixel size, dtypes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from models.data.dataset import write_image
from producers.files import ImageFileError, expand_paths, read_planes
from producers.publish import image_events
from schemas.blobstore import BlobStore
from schemas.claimcheck import image_pixels
from schemas.errors import BlobIntegrityError


def _noise(shape: tuple[int, ...], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=shape).astype(dtype)


def test_single_images_in_every_format_keep_pixels_and_pixel_size(tmp_path: Path) -> None:
    image = _noise((24, 32))
    ome = write_image(tmp_path / "a.ome.tif", image, pixel_size_um=0.325)
    tif = write_image(tmp_path / "b.tif", image)
    png = write_image(tmp_path / "c.png", image.astype(np.uint8))
    [ome_plane], [tif_plane], [png_plane] = read_planes(ome), read_planes(tif), read_planes(png)
    assert ome_plane.pixel_size_um == pytest.approx(0.325)
    assert tif_plane.pixel_size_um is None and tif_plane.index is None
    np.testing.assert_array_equal(ome_plane.pixels, image)
    assert png_plane.pixels.dtype == np.uint8


def test_ome_stack_becomes_one_multichannel_image_per_plane(tmp_path: Path) -> None:
    data = _noise((5, 2, 16, 16))
    path = tmp_path / "stack.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={
        "axes": "ZCYX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "µm", "Channel": {"Name": ["dapi", "gfp"]},
    })  # fmt: skip
    planes = read_planes(path)
    assert [p.index for p in planes] == [0, 1, 2, 3, 4]
    assert planes[3].pixels.shape == (16, 16, 2)
    assert planes[3].channels == ["dapi", "gfp"]
    assert planes[3].pixel_size_um == pytest.approx(0.5)
    np.testing.assert_array_equal(planes[3].pixels[..., 1], data[3, 1])


def test_plain_multipage_tiff_is_one_image_per_page(tmp_path: Path) -> None:
    data = _noise((7, 12, 12), "uint8")
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, data)
    planes = read_planes(path)
    assert len(planes) == 7
    np.testing.assert_array_equal(planes[6].pixels, data[6])


def test_rgb_png_channels_are_named(tmp_path: Path) -> None:
    path = write_image(tmp_path / "rgb.png", _noise((8, 8, 3), "uint8"))
    [plane] = read_planes(path)
    assert plane.channels == ["red", "green", "blue"]


@pytest.mark.parametrize(
    ("array", "dtype"),
    [(np.arange(64, dtype=np.int16).reshape(8, 8), "uint16"), (np.linspace(0, 1, 64).reshape(8, 8), "float32")],
)
def test_lossless_dtype_conversion(tmp_path: Path, array: np.ndarray, dtype: str) -> None:
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, array)
    assert read_planes(path)[0].pixels.dtype.name == dtype


def test_values_that_would_change_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "negative.tif"
    tifffile.imwrite(path, np.full((8, 8), -3, dtype=np.int16))
    with pytest.raises(ImageFileError, match="cannot be sent"):
        read_planes(path)


def test_truncated_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write_image(tmp_path / "cut.tif", _noise((64, 64)))
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageFileError, match=r"cut\.tif"):
        read_planes(path)


def test_expand_paths_sorts_by_name_and_skips_non_images(tmp_path: Path) -> None:
    for name in ("b.tif", "a.png", "sub/c.ome.tif", ".hidden.tif", "notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = expand_paths([tmp_path, tmp_path / "b.tif"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.png", "b.tif", "sub/c.ome.tif"]
    with pytest.raises(ImageFileError, match="not a TIFF"):
        expand_paths([tmp_path / "notes.txt"])


def test_large_images_are_claim_checked_and_verified_on_read(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.tif", _noise((256, 256), seed=1))
    store = BlobStore(tmp_path / "blobs")
    [inline] = image_events(path, instrument_id="scope-1", store=store, threshold_bytes=10 * 1024 * 1024)
    [checked] = image_events(path, instrument_id="scope-1", store=store, threshold_bytes=16 * 1024)
    assert inline.pixels is not None and checked.blob is not None
    assert inline.image_id == checked.image_id  # same file, same id: a re-publish deduplicates
    np.testing.assert_array_equal(image_pixels(checked, store), inline.pixels)

    blob_file = tmp_path / "blobs" / BlobStore.key_of(checked.blob.uri)
    data = blob_file.read_bytes()
    blob_file.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # flip the last byte's bits
    with pytest.raises(BlobIntegrityError):
        image_pixels(checked, store)


def test_an_image_the_contract_refuses_is_a_refused_file_with_the_reason(tmp_path: Path) -> None:
    path = write_image(tmp_path / "speck.tif", _noise((8, 64)))
    with pytest.raises(ImageFileError, match=r"speck\.tif: not a valid image: .*outside 16\.\.16384 px"):
        image_events(path, instrument_id="scope", store=None)
