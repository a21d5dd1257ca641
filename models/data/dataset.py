"""Import and export of segmentation datasets: image files with their instance masks.

Dataset-formation rules (after Berezsky et al.): a dataset is a folder of images with one mask per
image, in one of two layouts,

- ``images/`` and ``masks/`` side by side, a mask named like its image (optionally with the mask
  suffix), e.g. ``images/a1.tif`` + ``masks/a1.tif``;
- one folder, the mask next to its image with a suffix (default ``_mask``): ``a1.tif`` + ``a1_mask.png``;

images are brought to one target size (centre crop, or resize) and one colour model (gray or RGB),
and pixel data is 8- or 16-bit. TIFF, OME-TIFF and PNG are read. A file that breaks a rule raises
``DatasetError`` naming the file and the rule, so a curator can fix it rather than guess.

``read_image`` is also the single reader the instrument-side publishers use: it returns the pixel
size from OME-XML, ImageJ or TIFF resolution tags when the file has one.

>>> import tempfile, numpy as np
>>> folder = tempfile.mkdtemp()
>>> mask = np.zeros((16, 16), dtype=np.int32); mask[4:9, 4:9] = 1
>>> _ = write_dataset(folder, [(np.full((16, 16), 9, dtype=np.uint16), mask)], pixel_size_um=0.5)
>>> item = load_dataset(folder)[0]
>>> item.name, int(item.mask.max()), item.metadata.pixel_size_um
('image_0000', 1, 0.5)
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imageio.v3 as iio
import numpy as np
import tifffile
from skimage.transform import resize as skimage_resize

from models.measure import label_instances

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetError",
    "DatasetItem",
    "ImageMetadata",
    "find_pairs",
    "load_dataset",
    "read_image",
    "write_dataset",
    "write_image",
]

#: Recognised file endings, longest first so ``a.ome.tif`` is not taken for ``a.ome`` + ``.tif``.
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png")
_ALLOWED_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_LENGTH_IN_UM = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "um": 1.0, "micron": 1.0, "mm": 1e3, "cm": 1e4, "m": 1e6}
_OME_NAMESPACE = re.compile(r"^\{[^}]*\}")


class DatasetError(Exception):
    """A file breaks a dataset rule; ``path`` names the file and ``problem`` says what is wrong."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class ImageMetadata:
    """What the file says about its pixels, beyond the array itself."""

    path: Path
    format: Literal["tiff", "ome-tiff", "png"]
    shape: tuple[int, ...]
    dtype: str
    pixel_size_um: float | None = None
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetItem:
    """One image and its instance mask (int32, 0 = background) after size and colour rules."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    metadata: ImageMetadata


def read_image(path: str | Path) -> tuple[np.ndarray, ImageMetadata]:
    """Read a TIFF, OME-TIFF or PNG as (H, W) or (H, W, C), with pixel size when the file records one.

    Singleton axes are dropped and a channel-first (C, H, W) TIFF with C <= 4 is moved to channel-last.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix is None:
        raise DatasetError(path, f"unsupported file type; expected one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise DatasetError(path, "file does not exist")
    fmt: Literal["tiff", "ome-tiff", "png"] = "png"
    pixel_size: float | None = None
    channels: tuple[str, ...] = ()
    try:
        if suffix == ".png":
            array = np.asarray(iio.imread(path))
        else:
            with tifffile.TiffFile(path) as tif:
                array = tif.series[0].asarray()
                fmt = "ome-tiff" if tif.is_ome else "tiff"
                pixel_size, channels = _tiff_pixel_size_and_channels(tif)
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise DatasetError(path, f"unreadable {suffix} file ({type(exc).__name__}: {exc})") from exc

    array = np.squeeze(array)
    if array.ndim == 3 and array.shape[0] <= 4 < min(array.shape[1:]):
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] > 4):
        raise DatasetError(path, f"expected a 2-D image with at most 4 channels, got shape {array.shape}")
    metadata = ImageMetadata(path, fmt, tuple(array.shape), array.dtype.name, pixel_size, channels)
    return array, metadata


def write_image(path: str | Path, image: np.ndarray, pixel_size_um: float | None = None) -> Path:
    """Write a TIFF (OME-TIFF when the name ends in .ome.tif[f]) or PNG; pixel size goes into the metadata.

    PNG has no standard place for a pixel size, so asking for one there is an error, not a silent loss.
    """
    path = Path(path)
    suffix = _suffix(path)
    if suffix is None:
        raise DatasetError(path, f"unsupported file type; expected one of {', '.join(IMAGE_SUFFIXES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        if pixel_size_um is not None:
            raise DatasetError(path, "PNG cannot record a pixel size; write .ome.tif instead")
        iio.imwrite(path, image)
    elif suffix.startswith(".ome"):
        metadata: dict[str, object] = {"axes": "YXS" if image.ndim == 3 else "YX"}
        if pixel_size_um is not None:
            metadata.update(
                PhysicalSizeX=pixel_size_um,
                PhysicalSizeY=pixel_size_um,
                PhysicalSizeXUnit="µm",
                PhysicalSizeYUnit="µm",
            )
        tifffile.imwrite(path, image, ome=True, metadata=metadata)
    elif pixel_size_um is not None:
        per_cm = 1e4 / pixel_size_um
        tifffile.imwrite(path, image, resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    else:
        tifffile.imwrite(path, image)
    return path


def find_pairs(root: str | Path, mask_suffix: str = "_mask") -> list[tuple[str, Path, Path]]:
    """(name, image path, mask path) of every image under ``root``, in name order.

    Uses the ``images/`` + ``masks/`` layout when both folders exist, else the suffix layout.
    Files that are not images (README, CSV) are ignored; an image without a mask or a mask without
    an image is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "dataset folder does not exist")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        images = _images_by_name(root / "images")
        masks = {_strip_suffix(name, mask_suffix): path for name, path in _images_by_name(root / "masks").items()}
    else:
        files = _images_by_name(root)
        masks = {name[: -len(mask_suffix)]: path for name, path in files.items() if name.endswith(mask_suffix)}
        images = {name: path for name, path in files.items() if not name.endswith(mask_suffix)}
    for name, mask_path in sorted(masks.items()):
        if name not in images:
            raise DatasetError(mask_path, f"mask has no image named {name!r}")
    pairs = []
    for name, image_path in sorted(images.items()):
        if name not in masks:
            raise DatasetError(
                image_path, f"mask missing: expected {name}{mask_suffix}.<tif|png> or masks/{name}.<ext>"
            )
        pairs.append((name, image_path, masks[name]))
    if not pairs:
        raise DatasetError(root, "no images found (expected images/ + masks/ or <name> + <name>_mask files)")
    return pairs


def load_dataset(
    root: str | Path,
    *,
    mask_suffix: str = "_mask",
    target_size: tuple[int, int] | None = None,
    size_mode: Literal["crop", "resize"] = "crop",
    color: Literal["gray", "rgb"] = "gray",
) -> list[DatasetItem]:
    """Read every (image, mask) pair under ``root`` and apply the dataset rules.

    - images must be 8- or 16-bit unsigned; masks integer (or boolean) and the image's H x W;
    - binary masks (a single foreground value) are split into connected components, colour-coded
      RGB masks into one object per colour, so every mask comes back as int32 instance labels;
    - ``target_size`` (H, W): ``crop`` takes the centre (an image smaller than the target is an
      error), ``resize`` interpolates the image linearly and the mask by nearest neighbour;
    - ``color``: ``gray`` turns RGB into luminance, ``rgb`` repeats a gray image into 3 channels.
    """
    items = []
    for name, image_path, mask_path in find_pairs(root, mask_suffix):
        image, metadata = read_image(image_path)
        if image.dtype not in _ALLOWED_DTYPES:
            raise DatasetError(image_path, f"wrong dtype {image.dtype.name}: images must be 8- or 16-bit unsigned")
        raw_mask, _ = read_image(mask_path)
        mask = _instance_labels(raw_mask, mask_path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(
                mask_path,
                f"size mismatch: mask is {mask.shape[0]}x{mask.shape[1]}, "
                f"image {image_path.name} is {image.shape[0]}x{image.shape[1]}",
            )
        image = _to_color(image, color)
        if target_size is not None:
            image, mask = _to_size(image, mask, target_size, size_mode, image_path)
        items.append(DatasetItem(name, image, mask, metadata))
    return items


def write_dataset(
    directory: str | Path,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    names: Sequence[str] | None = None,
    mask_suffix: str = "_mask",
    suffix: str = ".tif",
    pixel_size_um: float | None = None,
) -> list[tuple[Path, Path]]:
    """Write pairs in the suffix layout (``name.tif`` + ``name_mask.tif``); returns the paths written.

    Masks are stored as uint16 when their labels fit (readable by every viewer), else int32 TIFF.
    """
    if names is not None and len(names) != len(pairs):
        raise ValueError(f"{len(names)} names for {len(pairs)} pairs")
    directory = Path(directory)
    written = []
    for i, (image, mask) in enumerate(pairs):
        name = names[i] if names is not None else f"image_{i:04d}"
        fits_16_bit = mask.size == 0 or (int(mask.min()) >= 0 and int(mask.max()) <= np.iinfo(np.uint16).max)
        stored_mask = mask.astype(np.uint16 if fits_16_bit else np.int32)
        mask_file = suffix if fits_16_bit or not suffix.endswith(".png") else ".tif"
        image_path = write_image(directory / f"{name}{suffix}", image, pixel_size_um)
        mask_path = write_image(directory / f"{name}{mask_suffix}{mask_file}", stored_mask)
        written.append((image_path, mask_path))
    return written


def _suffix(path: Path) -> str | None:
    lower = path.name.lower()
    return next((suffix for suffix in IMAGE_SUFFIXES if lower.endswith(suffix)), None)


def _images_by_name(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = _suffix(path)
        if suffix is None or not path.is_file():
            continue
        name = path.name[: -len(suffix)]
        if name in found:
            raise DatasetError(path, f"two files are named {name!r} ({found[name].name} and {path.name})")
        found[name] = path
    return found


def _strip_suffix(name: str, mask_suffix: str) -> str:
    return name[: -len(mask_suffix)] if mask_suffix and name.endswith(mask_suffix) else name


def _instance_labels(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.dtype.kind not in "biu":
        raise DatasetError(path, f"wrong dtype {raw.dtype.name}: masks must hold integer labels")
    if raw.ndim == 3:
        colours, inverse = np.unique(raw.reshape(-1, raw.shape[2]), axis=0, return_inverse=True)
        black = np.flatnonzero(~colours.any(axis=1))
        labels = inverse.reshape(raw.shape[:2]).astype(np.int32) + 1
        if black.size:
            labels[labels == black[0] + 1] = 0
            labels[labels > black[0] + 1] -= 1
        return labels
    if raw.dtype.kind == "i" and raw.size and int(raw.min()) < 0:
        raise DatasetError(path, "mask has negative labels")
    values = np.unique(raw)
    if np.count_nonzero(values) <= 1:
        return label_instances(raw != 0)
    return raw.astype(np.int32)


def _to_color(image: np.ndarray, color: Literal["gray", "rgb"]) -> np.ndarray:
    if color == "gray":
        if image.ndim == 2:
            return image
        if image.shape[2] == 1:
            return image[..., 0]
        rgb = image[..., :3].astype(np.float64)
        luminance = rgb @ np.array([0.2125, 0.7154, 0.0721])
        return np.rint(luminance).astype(image.dtype)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    return image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)


def _to_size(
    image: np.ndarray, mask: np.ndarray, size: tuple[int, int], mode: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    if mode == "crop":
        if image.shape[0] < height or image.shape[1] < width:
            raise DatasetError(
                path,
                f"size mismatch: {image.shape[0]}x{image.shape[1]} is smaller than the target "
                f"{height}x{width}; use size_mode='resize'",
            )
        top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
        return image[top : top + height, left : left + width], mask[top : top + height, left : left + width]
    if mode != "resize":
        raise ValueError(f"size_mode must be 'crop' or 'resize', got {mode!r}")
    shape = (height, width, *image.shape[2:])
    resized = skimage_resize(image, shape, order=1, preserve_range=True, anti_aliasing=True)
    resized_mask = skimage_resize(mask, (height, width), order=0, preserve_range=True, anti_aliasing=False)
    return np.rint(resized).astype(image.dtype), resized_mask.astype(np.int32)


def _tiff_pixel_size_and_channels(tif: tifffile.TiffFile) -> tuple[float | None, tuple[str, ...]]:
    """Pixel size in µm from OME-XML, else ImageJ metadata, else the TIFF resolution tags."""
    if tif.is_ome and tif.ome_metadata:
        found = _ome_pixel_size_and_channels(tif.ome_metadata)
        if found[0] is not None or found[1]:
            return found
    page = tif.pages.first
    x_resolution, _ = page.resolution
    if not x_resolution:
        return None, ()
    if tif.is_imagej and tif.imagej_metadata:
        unit = str(tif.imagej_metadata.get("unit", "")).replace("\\u00B5", "µ")
        scale = _LENGTH_IN_UM.get(unit)
        return (scale / x_resolution if scale else None), ()
    unit_length = {2: 25_400.0, 3: 10_000.0}.get(int(page.resolutionunit))
    return (unit_length / x_resolution if unit_length else None), ()


def _ome_pixel_size_and_channels(xml: str) -> tuple[float | None, tuple[str, ...]]:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None, ()
    for element in root.iter():
        if _OME_NAMESPACE.sub("", element.tag) != "Pixels":
            continue
        channels = tuple(child.get("Name", "") for child in element if _OME_NAMESPACE.sub("", child.tag) == "Channel")
        size = element.get("PhysicalSizeX")
        scale = _LENGTH_IN_UM.get(element.get("PhysicalSizeXUnit", "µm"))
        pixel_size = float(size) * scale if size is not None and scale is not None else None
        return pixel_size, tuple(name for name in channels if name)
    return None, ()
