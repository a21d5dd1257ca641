"""onnxruntime runners for the segmenter and the fingerprint encoder: what the streaming workers import.

Torch-free by design (onnxruntime + numpy + scikit-image): the serving workers run without the
train extra. Preprocessing comes from :mod:`models.preprocess` and :func:`encoder_input`, the
same functions the training loops call, so a served model sees exactly what it was trained on.

Threading is explicit: ``intra_op_threads`` sizes onnxruntime's pool and spinning is off by
default, because a spinning pool in a process that also runs torch (the trainer, the benchmark)
or several sessions starves the other pools of the two shared cores.

The device is explicit too: ``cpu``, ``cuda`` (onnxruntime's CUDA provider, which needs the
``onnxruntime-gpu`` build in place of ``onnxruntime`` and a visible GPU; refused with the reason
otherwise) or ``auto`` (CUDA when this onnxruntime can run on it, else the CPU). A runner says what
it got in :attr:`provider`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skimage.transform import resize

from models.devices import Device
from models.measure import label_instances
from models.preprocess import normalize, pad_to_multiple, unpad

__all__ = [
    "MIN_OBJECT_AREA",
    "THRESHOLD",
    "EncoderRunner",
    "SegmenterRunner",
    "encoder_input",
    "execution_providers",
    "instances_from_probability",
    "model_input",
    "session_options",
]

#: Foreground probability above which a pixel is an object pixel.
THRESHOLD = 0.5
#: Smallest object (pixels) kept when instances are cut from a prediction: below this it is a speck.
MIN_OBJECT_AREA = 16
_METADATA_PREFIX = "driftscope."


def session_options(intra_op_threads: int = 1, *, allow_spinning: bool = False) -> ort.SessionOptions:
    """Session options with explicit thread counts; spinning off when the process shares its cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, intra_op_threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    return options


_CUDA = "CUDAExecutionProvider"
_CPU = "CPUExecutionProvider"


def execution_providers(device: Device) -> list[str]:
    """onnxruntime providers for ``device``, in order of preference; ``cuda`` without CUDA raises ValueError."""
    has_cuda = _CUDA in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise ValueError(
            f"device 'cuda' needs onnxruntime's CUDA provider: install onnxruntime-gpu in place of onnxruntime "
            f"(this onnxruntime {ort.__version__} offers {', '.join(ort.get_available_providers())})"
        )
    return [_CUDA, _CPU] if device != "cpu" and has_cuda else [_CPU]


def model_input(image: np.ndarray, channels: int) -> np.ndarray:
    """Normalised (C, H, W) float32 from an (H, W) or (H, W, C) image; the shared preprocessing."""
    if image.ndim == 2 and channels == 1:
        return normalize(image)[None]
    if image.ndim == 3 and image.shape[2] == channels:
        return np.ascontiguousarray(np.moveaxis(normalize(image), -1, 0))
    raise ValueError(f"image of shape {image.shape} does not fit a model with {channels} input channel(s)")


def encoder_input(image: np.ndarray, channels: int, size: int) -> np.ndarray:
    """Normalised, anti-aliased resize to (C, size, size): the encoder's input and its reconstruction target."""
    x = model_input(image, channels)
    if x.shape[1:] == (size, size):
        return x
    out = resize(x, (x.shape[0], size, size), order=1, anti_aliasing=True, preserve_range=True)
    return np.asarray(out, dtype=np.float32)


def instances_from_probability(probability: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Instance labels from a probability map: threshold, then split touching nuclei by watershed."""
    return label_instances(probability > threshold, watershed=True, min_area=MIN_OBJECT_AREA)


def _session(source: bytes | str, options: ort.SessionOptions, device: Device) -> ort.InferenceSession:
    """A session on ``device``; ``auto`` falls back to the CPU, ``cuda`` raises ValueError saying why."""
    providers = execution_providers(device)
    try:
        session = ort.InferenceSession(source, options, providers=providers)
    except (RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as exc:
        if _CUDA not in providers:
            raise
        # A bad model fails on the CPU too and raises here, as it would without CUDA.
        on_cpu = ort.InferenceSession(source, options, providers=[_CPU])
        if device == "cuda":
            raise ValueError(f"device 'cuda': onnxruntime could not start its CUDA provider: {exc}") from exc
        return on_cpu  # auto: no usable GPU here
    if device == "cuda" and session.get_providers()[0] != _CUDA:
        raise ValueError(f"device 'cuda': onnxruntime could not start its CUDA provider (no GPU visible?); "
                         f"it runs on {session.get_providers()[0]}")
    return session


class _Runner:
    """An onnxruntime session on a driftscope export, with its metadata."""

    def __init__(
        self, model: bytes | str | Path, *, intra_op_threads: int = 1, allow_spinning: bool = False,
        batch_size: int = 8, device: Device = "cpu",
    ) -> None:
        self.session = _session(model if isinstance(model, bytes) else str(model),
                                session_options(intra_op_threads, allow_spinning=allow_spinning), device)
        #: The provider that runs the model (``auto`` ends on the CPU when CUDA cannot start).
        self.provider: str = self.session.get_providers()[0]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {k[len(_METADATA_PREFIX):]: v for k, v in meta.items() if k.startswith(_METADATA_PREFIX)}
        self.in_channels = int(self.metadata.get("in_channels", "1"))
        self.input_name = self.session.get_inputs()[0].name
        self.batch_size = max(1, batch_size)


class SegmenterRunner(_Runner):
    """Foreground probability maps from the exported U-Net, batching images of equal padded size."""

    def __init__(
        self, model: bytes | str | Path, *, intra_op_threads: int = 1, allow_spinning: bool = False,
        batch_size: int = 8, device: Device = "cpu",
    ) -> None:
        super().__init__(model, intra_op_threads=intra_op_threads, allow_spinning=allow_spinning,
                         batch_size=batch_size, device=device)
        if self.metadata.get("kind") != "segmenter":
            raise ValueError(f"not a driftscope segmenter export (kind={self.metadata.get('kind')!r})")
        self.size_multiple = int(self.metadata["size_multiple"])

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One float32 (H, W) probability map per image, in input order."""
        prepared = [pad_to_multiple(model_input(image, self.in_channels), self.size_multiple) for image in images]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, (x, _) in enumerate(prepared):
            groups[x.shape].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        for indices in groups.values():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                batch = np.stack([prepared[i][0] for i in chunk])
                (probability,) = self.session.run(None, {self.input_name: batch})
                for i, p in zip(chunk, probability, strict=True):
                    out[i] = np.ascontiguousarray(unpad(p[0], prepared[i][1]))
        return [p for p in out if p is not None]

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Raw forward pass on an already prepared (N, C, H, W) float32 batch (benchmarks, evaluation)."""
        (probability,) = self.session.run(None, {self.input_name: batch})
        return np.asarray(probability)


class EncoderRunner(_Runner):
    """Latent fingerprints and autoencoder reconstruction errors from the exported autoencoder."""

    def __init__(
        self, model: bytes | str | Path, *, intra_op_threads: int = 1, allow_spinning: bool = False,
        batch_size: int = 8, device: Device = "cpu",
    ) -> None:
        super().__init__(model, intra_op_threads=intra_op_threads, allow_spinning=allow_spinning,
                         batch_size=batch_size, device=device)
        if self.metadata.get("kind") != "encoder":
            raise ValueError(f"not a driftscope encoder export (kind={self.metadata.get('kind')!r})")
        self.input_size = int(self.metadata["input_size"])
        self.latent_dim = int(self.metadata["latent_dim"])

    def encode(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(latents [N, L] float32, reconstruction errors [N] float32: MSE on the normalised, resized input)."""
        if not images:
            return np.zeros((0, self.latent_dim), np.float32), np.zeros(0, np.float32)
        x = np.stack([encoder_input(image, self.in_channels, self.input_size) for image in images])
        latents, errors = [], []
        for start in range(0, len(x), self.batch_size):
            batch = x[start:start + self.batch_size]
            latent, reconstruction = self.session.run(None, {self.input_name: batch})
            latents.append(latent)
            errors.append(np.mean((reconstruction - batch) ** 2, axis=(1, 2, 3)))
        return np.concatenate(latents).astype(np.float32), np.concatenate(errors).astype(np.float32)
