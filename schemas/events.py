"""The event contracts: one pydantic v2 model per topic payload.

Every event carries ``schema_version`` and an ``event_id``; events about an image carry its
``image_id``. Arrays (pixels, masks) are not part of the JSON metadata: :mod:`schemas.codec` frames
them as compressed binary next to it, so these models hold them as numpy arrays that never pass
through JSON.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "EVENT_TYPES",
    "MAX_CHANNELS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "MIN_SIDE",
    "SCHEMA_VERSION",
    "BlobRef",
    "DataSelection",
    "DeadLetter",
    "DriftEvent",
    "Event",
    "FingerprintEvent",
    "ImageEvent",
    "ImageStats",
    "LabelEvent",
    "ModelPublished",
    "ObjectMeasurement",
    "PredictionEvent",
    "RetrainRequest",
    "TrainingItem",
    "TrainingRunEvent",
    "check_image_shape",
    "check_mask_shape",
    "utcnow",
]

SCHEMA_VERSION: Literal[1] = 1

PixelDType = Literal["uint8", "uint16", "float32"]
MaskDType = Literal["uint8", "uint16", "int32"]

# The image contract's limits. They are checked on the declared shape, which the codec reads before
# it decompresses a single byte (see ``check_image_shape``), so a hostile header costs nothing.
#
#: The smallest side of an image. The U-Net halves an image four times (a bottleneck cell is 16 px),
#: the focus statistic bins 4x4 before its 3x3 Laplacian (12 px at least), and a nucleus is 10-30 px
#: across at the magnifications served: a smaller image holds no object to segment and no statistic
#: to trust, so it is a broken acquisition, not data.
MIN_SIDE = 16
#: The largest side: above any camera frame (sCMOS sensors are at most ~6k px wide); larger mosaics
#: are tiled before they are streamed. It also refuses absurd strips such as 100,000 x 1.
MAX_SIDE = 16 * 1024
#: The most pixels per image (8k x 8k): a 16k x 16k claim would make a worker allocate gigabytes.
MAX_PIXELS = 64 * 1024 * 1024
#: The most channels per image (multi-channel fluorescence). Whether the *serving model* takes that
#: many is the image agents' check: they dead-letter an image their model cannot read.
MAX_CHANNELS = 16


def check_image_shape(shape: Sequence[int]) -> None:
    """Raise ValueError (saying which limit) unless ``shape`` is an (H, W) or (H, W, C) image we serve.

    >>> check_image_shape((512, 512)); check_image_shape((64, 64, 3))
    >>> check_image_shape((1, 1))
    Traceback (most recent call last):
    ...
    ValueError: shape (1, 1): side 1 px is outside 16..16384 px
    """
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"shape {shape} must be (H, W) or (H, W, C)")
    if any(d <= 0 for d in shape):
        raise ValueError(f"shape {shape} has an empty dimension")
    for side in shape[:2]:
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise ValueError(f"shape {shape}: side {side} px is outside {MIN_SIDE}..{MAX_SIDE} px")
    if math.prod(shape[:2]) > MAX_PIXELS:
        raise ValueError(f"shape {shape} exceeds {MAX_PIXELS} pixels")
    if len(shape) == 3 and shape[2] > MAX_CHANNELS:
        raise ValueError(f"shape {shape}: {shape[2]} channels exceed {MAX_CHANNELS}")


def check_mask_shape(shape: Sequence[int]) -> None:
    """Raise ValueError unless ``shape`` is a 2-D mask no larger than the largest image."""
    shape = tuple(shape)
    if len(shape) != 2:
        raise ValueError(f"mask must be 2-D, got shape {shape}")
    if any(d <= 0 for d in shape):
        raise ValueError(f"mask shape {shape} has an empty dimension")
    if max(shape) > MAX_SIDE or math.prod(shape) > MAX_PIXELS:
        raise ValueError(f"mask shape {shape} exceeds {MAX_SIDE} px a side or {MAX_PIXELS} pixels")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; everything is stored in UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_aware)]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be finite (no NaN or Inf)")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
Id = Annotated[str, Field(min_length=1, max_length=256)]


class Event(BaseModel):
    """Base of every event: versioned, identified, strict about unknown fields and non-finite numbers."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        arbitrary_types_allowed=True,
        allow_inf_nan=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )
    #: fields that hold arrays/bytes framed outside the JSON metadata by the codec
    binary_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check_array_shape(cls, field: str, shape: Sequence[int]) -> None:
        """Raise ValueError if binary ``field`` may not have ``shape``.

        The codec asks before it decompresses the array, so a header that claims a huge array is
        refused without allocating it. Events with arrays override this with their limits.
        """

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)


class BlobRef(BaseModel):
    """A claim-check reference: where the bytes are and how to know they are the right ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: str = Field(min_length=1, max_length=2048)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


def _check_array(name: str, array: np.ndarray | None, dtypes: tuple[str, ...]) -> None:
    if array is None:
        return
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array")
    if array.dtype.name not in dtypes:
        raise ValueError(f"{name} dtype {array.dtype.name} not one of {dtypes}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")


class ImageEvent(Event):
    """An acquired image, inline (compressed by the codec) or by claim-check reference."""

    binary_fields: ClassVar[tuple[str, ...]] = ("pixels",)

    image_id: Id
    instrument_id: Id
    acquired_at: UtcDateTime
    experiment: str | None = None
    plate: str | None = None
    well: str | None = None
    pixel_size_um: Finite | None = Field(default=None, gt=0)
    shape: tuple[int, ...]
    dtype: PixelDType
    channels: list[str] = Field(default_factory=lambda: ["gray"])
    pixels: np.ndarray | None = None
    blob: BlobRef | None = None
    source: str | None = None

    @classmethod
    def check_array_shape(cls, field: str, shape: Sequence[int]) -> None:
        check_image_shape(shape)

    @model_validator(mode="after")
    def _consistent(self) -> ImageEvent:
        check_image_shape(self.shape)
        n_channels = self.shape[2] if len(self.shape) == 3 else 1
        if len(self.channels) != n_channels:
            raise ValueError(f"channels {self.channels} do not match shape {self.shape}")
        if (self.pixels is None) == (self.blob is None):
            raise ValueError("exactly one of pixels (inline) or blob (claim check) must be set")
        if self.pixels is not None:
            _check_array("pixels", self.pixels, ("uint8", "uint16", "float32"))
            if tuple(self.pixels.shape) != tuple(self.shape):
                raise ValueError(f"pixels shape {self.pixels.shape} != declared shape {self.shape}")
            if self.pixels.dtype.name != self.dtype:
                raise ValueError(f"pixels dtype {self.pixels.dtype.name} != declared dtype {self.dtype}")
            if self.pixels.dtype.kind == "f" and not np.isfinite(self.pixels).all():
                raise ValueError("pixels contain NaN or Inf")
        return self


class LabelEvent(Event):
    """An annotator's instance mask for an image (0 = background). Arrives late and rarely."""

    binary_fields: ClassVar[tuple[str, ...]] = ("mask",)

    image_id: Id
    instrument_id: Id
    annotator: str = Field(min_length=1)
    created_at: UtcDateTime = Field(default_factory=utcnow)
    mask: np.ndarray | None = None
    mask_blob: BlobRef | None = None

    @classmethod
    def check_array_shape(cls, field: str, shape: Sequence[int]) -> None:
        check_mask_shape(shape)

    @model_validator(mode="after")
    def _one_mask(self) -> LabelEvent:
        if (self.mask is None) == (self.mask_blob is None):
            raise ValueError("exactly one of mask (inline) or mask_blob (claim check) must be set")
        _check_array("mask", self.mask, ("uint8", "uint16", "int32"))
        if self.mask is not None:
            check_mask_shape(self.mask.shape)
        return self


class ImageStats(BaseModel):
    """Cheap statistics of the raw intensities, computed before any normalisation.

    ``focus`` is the variance of the Laplacian of the 4x4-binned image over that image's variance:
    on real fluorescence images the plain variance of the Laplacian is almost all camera noise and
    barely moves under defocus (see :mod:`models.imagestats`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    p01: float
    p50: float
    p99: float
    mean: float
    std: float
    focus: float
    noise: float
    saturation_fraction: float = Field(ge=0, le=1)


class FingerprintEvent(Event):
    """The image's place in the encoder's latent space, plus its raw statistics.

    ``image`` points at the archived pixels in the blob store: together with the latent it makes
    the image a row of the data database D that the trainer can later select by fingerprint.
    """

    image_id: Id
    instrument_id: Id
    acquired_at: UtcDateTime
    encoder_version: str
    image: BlobRef | None = None
    latent: list[float] = Field(min_length=1, max_length=4096)
    reconstruction_error: float = Field(ge=0)
    stats: ImageStats
    created_at: UtcDateTime = Field(default_factory=utcnow)


class ObjectMeasurement(BaseModel):
    """One segmented micro-object's quantitative characteristics."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    label: int = Field(ge=1)
    area: float = Field(ge=0)
    perimeter: float = Field(ge=0)
    eccentricity: float = Field(ge=0, le=1)
    mean_intensity: float
    centroid_y: float
    centroid_x: float


class PredictionEvent(Event):
    image_id: Id
    instrument_id: Id
    acquired_at: UtcDateTime
    model_version: str
    mask: BlobRef
    object_count: int = Field(ge=0)
    foreground_fraction: float = Field(ge=0, le=1)
    mean_confidence: float = Field(ge=0, le=1)
    entropy: float = Field(ge=0)
    latency_ms: float = Field(ge=0)
    objects: list[ObjectMeasurement] = Field(default_factory=list)
    created_at: UtcDateTime = Field(default_factory=utcnow)


class DriftEvent(Event):
    detector: str
    signal: str
    instrument_id: Id
    model_version: str
    statistic: float
    threshold: float
    window: int = Field(ge=0)
    first_seen_at: UtcDateTime
    detected_at: UtcDateTime = Field(default_factory=utcnow)
    evidence: list[str] = Field(default_factory=list)
    severity: Literal["low", "medium", "high"] = "medium"


class TrainingItem(BaseModel):
    """One labelled image as the trainer fetches it: pixels and mask from the blob store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_id: Id
    image: BlobRef
    mask: BlobRef
    role: Literal["drifted", "neighbour"] = "drifted"


class DataSelection(BaseModel):
    """What the trainer should train on; chosen by the retrain trigger, which can see the store.

    The trainer has no store connection: ``items`` carries the blob references it needs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_from: UtcDateTime | None = None
    time_to: UtcDateTime | None = None
    instrument_id: str | None = None
    labelled_image_ids: list[str] = Field(default_factory=list)
    neighbour_image_ids: list[str] = Field(default_factory=list)
    items: list[TrainingItem] = Field(default_factory=list)


class RetrainRequest(Event):
    idempotency_key: Id
    created_at: UtcDateTime = Field(default_factory=utcnow)
    reason: list[str] = Field(default_factory=list)
    instrument_id: str | None = None
    base_model_version: str
    selection: DataSelection = Field(default_factory=DataSelection)
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)


class TrainingRunEvent(Event):
    """One run of the training worker, whatever its outcome: the model database M records them all."""

    run_id: Id
    request_key: Id
    status: Literal["promoted", "rejected", "failed"]
    reason: str = ""
    started_at: UtcDateTime
    finished_at: UtcDateTime
    duration_s: float = Field(ge=0)
    device: str
    base_model_version: str
    candidate_version: str | None = None
    selection: DataSelection = Field(default_factory=DataSelection)
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelPublished(Event):
    kind: Literal["segmenter", "encoder"]
    version: Id
    artifact: BlobRef
    parent_version: str | None = None
    run_id: str | None = None
    holdout_metrics: dict[str, float] = Field(default_factory=dict)
    promoted: bool
    created_at: UtcDateTime = Field(default_factory=utcnow)


class DeadLetter(Event):
    """A message that could not be decoded or processed, kept whole with where it came from and why."""

    binary_fields: ClassVar[tuple[str, ...]] = ("original",)

    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    key: bytes | None = None
    original: bytes = b""
    error: str
    error_type: str
    failed_at: UtcDateTime = Field(default_factory=utcnow)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ImageEvent,
        LabelEvent,
        FingerprintEvent,
        PredictionEvent,
        DriftEvent,
        RetrainRequest,
        TrainingRunEvent,
        ModelPublished,
        DeadLetter,
    )
}
