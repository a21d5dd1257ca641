"""Instrument files as images: which files count, and how a file becomes one or more image planes.

A file becomes images by these rules (the README's instrument section repeats them):

- PNG, single-image TIFF and OME-TIFF: one image, read by :func:`models.data.dataset.read_image`
  (one reader for the whole project), which returns ``(H, W)`` or ``(H, W, C)`` and the pixel size
  from OME-XML, ImageJ or resolution tags.
- A multi-page TIFF is a stack: every axis other than Y, X, channel (C) and sample (S) is iterated,
  so a ``ZCYX`` OME-TIFF with 5 planes of 2 channels gives 5 images of shape ``(H, W, 2)``, in page
  order. A plain multi-page TIFF without axis metadata is one image per page; write channels as an
  OME-TIFF ``C`` axis (or as RGB samples) to keep them together.
- Channel names come from OME ``Channel@Name`` when present, ``red/green/blue(/alpha)`` for RGB(A)
  PNGs, else ``gray`` or ``c0..cN``.
- Pixels must be ``uint8``, ``uint16`` or ``float32`` on the wire: other integer types are
  converted only when no value changes (``int16`` without negatives, booleans), other float types
  become ``float32`` when finite; anything else is refused with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from models.data.dataset import IMAGE_SUFFIXES, DatasetError, read_image
from schemas.events import MAX_CHANNELS

__all__ = ["ImageFileError", "Plane", "expand_paths", "file_sha256", "is_image_file", "read_planes"]

_CHANNEL_AXES = "CS"
_SPATIAL_AXES = "YX"
_RGB_NAMES = {3: ["red", "green", "blue"], 4: ["red", "green", "blue", "alpha"]}


class ImageFileError(ValueError):
    """A file cannot be published as images; the message names the file and the reason."""


@dataclass(frozen=True)
class Plane:
    """One image taken from a file: pixels ``(H, W)`` or ``(H, W, C)`` and what the file says about them."""

    pixels: np.ndarray
    channels: list[str] | None
    pixel_size_um: float | None
    #: Position in a multi-page stack (None when the file holds a single image).
    index: int | None


def is_image_file(path: Path) -> bool:
    """A publishable image by its name: TIFF/OME-TIFF/PNG, not hidden, not a partial download."""
    name = path.name.lower()
    return not name.startswith(".") and any(name.endswith(suffix) for suffix in IMAGE_SUFFIXES)


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """The image files named by ``paths`` (folders searched recursively), in name order, each once."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            if not is_image_file(path):
                raise ImageFileError(f"{path}: not a TIFF, OME-TIFF or PNG file")
            found.add(path)
        else:
            raise ImageFileError(f"{path}: no such file or folder")
    return sorted(found, key=lambda p: (str(p.parent), p.name))


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes, read in chunks (instrument files can be hundreds of MiB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def acquired_at(path: Path) -> datetime:
    """When the file was written (its mtime), the best acquisition time a plain file records."""
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def read_planes(path: Path) -> list[Plane]:
    """The images in ``path`` by the rules of this module, or :class:`ImageFileError`."""
    try:
        stack = _tiff_stack_axes(path)
        if stack is not None:
            return _read_stack(path, stack)
        array, metadata = read_image(path)
    except DatasetError as exc:
        raise ImageFileError(str(exc)) from exc
    except (OSError, ValueError, IndexError, KeyError, tifffile.TiffFileError) as exc:
        # tifffile reports a damaged header as any of these; all mean "not an image we can read".
        raise ImageFileError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    pixels = _wire_dtype(path, array)
    channels = list(metadata.channels) or None
    if channels is None and metadata.format == "png" and pixels.ndim == 3:
        channels = _RGB_NAMES.get(pixels.shape[2])
    return [Plane(pixels, _matching(channels, pixels), metadata.pixel_size_um, None)]


def _tiff_stack_axes(path: Path) -> str | None:
    """The axes of a TIFF that holds more than one image, else None (PNGs and single images)."""
    if path.name.lower().endswith(".png"):
        return None
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ImageFileError(f"{path}: the TIFF holds no image")
        series = tif.series[0]
        axes, shape = series.axes, series.shape
    stacked = [n for axis, n in zip(axes, shape, strict=True) if axis not in _CHANNEL_AXES + _SPATIAL_AXES]
    return axes if any(n > 1 for n in stacked) else None


def _read_stack(path: Path, axes: str) -> list[Plane]:
    with tifffile.TiffFile(path) as tif:
        data = tif.series[0].asarray()
        pixel_size, names = _ome_pixels(tif.ome_metadata) if tif.is_ome and tif.ome_metadata else (None, [])
    stack_axes = [i for i, axis in enumerate(axes) if axis not in _CHANNEL_AXES + _SPATIAL_AXES]
    channel_axes = [i for i, axis in enumerate(axes) if axis in _CHANNEL_AXES]
    order = [*stack_axes, axes.index("Y"), axes.index("X"), *channel_axes]
    data = np.transpose(data, order)
    n_stack = int(np.prod([data.shape[i] for i in range(len(stack_axes))]))
    n_channels = int(np.prod(data.shape[len(stack_axes) + 2 :]))
    if n_channels > MAX_CHANNELS:
        raise ImageFileError(f"{path}: {n_channels} channels per plane exceed the limit of {MAX_CHANNELS}")
    planes = data.reshape(n_stack, data.shape[len(stack_axes)], data.shape[len(stack_axes) + 1], n_channels)
    result = []
    for index in range(n_stack):
        plane = planes[index] if n_channels > 1 else planes[index, :, :, 0]
        pixels = _wire_dtype(path, np.ascontiguousarray(plane))
        result.append(Plane(pixels, _matching(names or None, pixels), pixel_size, index))
    return result


def _ome_pixels(xml: str) -> tuple[float | None, list[str]]:
    """Pixel size (µm) and channel names from the first OME ``Image``'s ``Pixels`` element."""
    try:
        image: Any = tifffile.xml2dict(xml)["OME"]["Image"]
    except (KeyError, TypeError, ValueError):
        return None, []
    pixels = (image[0] if isinstance(image, list) else image).get("Pixels", {})
    size = pixels.get("PhysicalSizeX")
    unit = pixels.get("PhysicalSizeXUnit", "µm")
    scale = {"nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3}.get(unit)
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    names = [str(c.get("Name")) for c in channels if isinstance(c, dict) and c.get("Name")]
    pixel_size = float(size) * scale if size is not None and scale is not None and float(size) > 0 else None
    return pixel_size, names


def _matching(channels: list[str] | None, pixels: np.ndarray) -> list[str] | None:
    """Channel names only when there is one per channel (an OME file may name fewer)."""
    n = pixels.shape[2] if pixels.ndim == 3 else 1
    return channels if channels is not None and len(channels) == n else None


def _wire_dtype(path: Path, array: np.ndarray) -> np.ndarray:
    """The array in a dtype the wire carries, converted only when no value changes."""
    if array.dtype.name in ("uint8", "uint16", "float32"):
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.size and int(array.min()) >= 0 and int(array.max()) <= 65535:
        return array.astype(np.uint8 if int(array.max()) <= 255 and array.dtype.itemsize == 1 else np.uint16)
    if array.dtype.kind == "f":
        converted = array.astype(np.float32)
        if np.isfinite(converted).all():
            return converted
    raise ImageFileError(
        f"{path}: pixel type {array.dtype.name} (range {array.min()}..{array.max()}) cannot be sent "
        "without changing values; convert to uint8, uint16 or float32"
    )

