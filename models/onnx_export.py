"""ONNX export of the segmenter and the fingerprint autoencoder, with a parity check on every export.

Both graphs declare batch, height and width dynamic (torch 2.14's dynamo exporter, which needs
``onnxscript``). Every export is run in onnxruntime on inputs of several shapes and compared with
torch; a max abs difference above ``PARITY_ATOL`` raises :class:`ExportParityError`, so a broken
export never reaches the registry.

Model configuration travels inside the ONNX file (``metadata_props``), so a torch-free runner
knows the input channels, the size multiple and the encoder's input size without side files.

The ResNet18 encoder is ~45 MB in fp32. :func:`store_initializers_fp16` halves what is stored by
keeping large weights as fp16 initializers followed by a ``Cast`` to fp32; onnxruntime folds the
casts at session start, so compute stays fp32. This storage rounding is separate from the export
and measured on its own (``storage_max_abs_diff``).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from models.autoencoder import FingerprintAutoencoder
from models.unet import ProbabilityUNet, UNet

__all__ = [
    "METADATA_PREFIX",
    "PARITY_ATOL",
    "ExportParityError",
    "ExportResult",
    "check_parity",
    "export_autoencoder",
    "export_segmenter",
    "read_metadata",
    "store_initializers_fp16",
]

PARITY_ATOL = 1e-4
METADATA_PREFIX = "driftscope."
# A weight this small is not worth a Cast node.
_MIN_FP16_ELEMENTS = 1024


class ExportParityError(RuntimeError):
    """onnxruntime and torch disagree beyond tolerance on the same input: the export is unusable."""


@dataclass(frozen=True)
class ExportResult:
    """The exported bytes and how faithful they are."""

    onnx: bytes
    parity_max_abs_diff: float
    precision: str = "fp32"
    storage_max_abs_diff: float = 0.0


def export_segmenter(unet: UNet, *, seed: int = 0) -> ExportResult:
    """Export ``unet`` with a sigmoid head (probabilities out) and check parity at several shapes."""
    config = unet.config
    module = ProbabilityUNet(unet).eval()
    multiple = config.size_multiple
    example = torch.zeros(1, config.in_channels, 2 * multiple, 2 * multiple)
    metadata = {
        "kind": "segmenter",
        "config": json.dumps(config.to_dict()),
        "in_channels": str(config.in_channels),
        "size_multiple": str(multiple),
    }
    onnx_bytes = _export(module, example, ["image"], ["probability"], metadata)
    rng = np.random.default_rng(seed)
    shapes = [(1, 4 * multiple, 4 * multiple), (3, 2 * multiple, 5 * multiple)]
    inputs = [rng.random((n, config.in_channels, h, w), dtype=np.float32) for n, h, w in shapes]
    diff = check_parity(module, onnx_bytes, inputs)
    return ExportResult(onnx=onnx_bytes, parity_max_abs_diff=diff)


def export_autoencoder(model: FingerprintAutoencoder, *, fp16_storage: bool = True, seed: int = 0) -> ExportResult:
    """Export encoder + decoder as one graph: ``image -> (latent, reconstruction)``.

    The encoder accepts any height/width (adaptive pooling); the runner resizes to
    ``input_size`` so the reconstruction can be compared with its input.
    """
    config = model.config
    module = model.eval()
    side = config.input_size
    example = torch.zeros(2, config.in_channels, side, side)
    metadata = {
        "kind": "encoder",
        "config": json.dumps(config.to_dict()),
        "in_channels": str(config.in_channels),
        "input_size": str(side),
        "latent_dim": str(config.latent_dim),
    }
    onnx_bytes = _export(module, example, ["image"], ["latent", "reconstruction"], metadata)
    rng = np.random.default_rng(seed)
    inputs = [rng.random((n, config.in_channels, side, side), dtype=np.float32) for n in (1, 4)]
    diff = check_parity(module, onnx_bytes, inputs)
    if not fp16_storage:
        return ExportResult(onnx=onnx_bytes, parity_max_abs_diff=diff)
    compact = store_initializers_fp16(onnx_bytes)
    storage_diff = _max_output_diff(onnx_bytes, compact, inputs)
    return ExportResult(onnx=compact, parity_max_abs_diff=diff, precision="fp16", storage_max_abs_diff=storage_diff)


def check_parity(
    module: nn.Module, onnx_bytes: bytes, inputs: Sequence[np.ndarray], *, atol: float = PARITY_ATOL
) -> float:
    """Max abs difference between torch and onnxruntime over ``inputs``; raises above ``atol``."""
    session = _session(onnx_bytes)
    worst = 0.0
    module.eval()
    for x in inputs:
        with torch.no_grad():
            expected = module(torch.from_numpy(x))
        expected_list = list(expected) if isinstance(expected, tuple) else [expected]
        got = session.run(None, {session.get_inputs()[0].name: x})
        for e, g in zip(expected_list, got, strict=True):
            worst = max(worst, float(np.max(np.abs(e.detach().cpu().numpy() - g))))
    if not worst <= atol:
        raise ExportParityError(f"onnxruntime differs from torch by {worst:.3g} > {atol:g}; do not serve this export")
    return worst


def store_initializers_fp16(onnx_bytes: bytes, *, min_elements: int = _MIN_FP16_ELEMENTS) -> bytes:
    """Store large fp32 initializers as fp16 plus a ``Cast`` back to fp32 (half the bytes on disk)."""
    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    casts = []
    kept = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < min_elements:
            kept.append(init)
            continue
        half = numpy_helper.from_array(array.astype(np.float16), f"{init.name}.fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"{init.name}.cast"))
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def read_metadata(onnx_bytes: bytes) -> dict[str, str]:
    """The ``driftscope.*`` metadata of an exported model (prefix stripped)."""
    model = onnx.load_from_string(onnx_bytes)
    return {
        p.key[len(METADATA_PREFIX):]: p.value for p in model.metadata_props if p.key.startswith(METADATA_PREFIX)
    }


def _export(
    module: nn.Module,
    example: torch.Tensor,
    input_names: list[str],
    output_names: list[str],
    metadata: dict[str, str],
) -> bytes:
    """Dynamo export with batch, height and width dynamic, plus the ``driftscope.*`` metadata."""
    dims = {axis: torch.export.Dim.DYNAMIC for axis in (0, 2, 3)}
    # The exporter reports each stage at INFO through its own logger; keep training logs readable.
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    program = torch.onnx.export(
        module.eval(),
        (example,),
        dynamo=True,
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes={"x": dims},
        verbose=False,
    )
    assert program is not None
    model = program.model_proto
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = METADATA_PREFIX + key
        entry.value = value
    buffer = io.BytesIO()
    onnx.save_model(model, buffer)
    return buffer.getvalue()


def _session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def _max_output_diff(reference: bytes, candidate: bytes, inputs: Sequence[np.ndarray]) -> float:
    ref, cand = _session(reference), _session(candidate)
    name = ref.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        for a, b in zip(ref.run(None, {name: x}), cand.run(None, {name: x}), strict=True):
            worst = max(worst, float(np.max(np.abs(a - b))))
    return worst
