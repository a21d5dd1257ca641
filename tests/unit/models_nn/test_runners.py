"""The onnxruntime runners on tiny hand-built graphs: preprocessing, padding, batching and order."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from models.preprocess import normalize
from models.runners import (
    EncoderRunner,
    SegmenterRunner,
    encoder_input,
    execution_providers,
    instances_from_probability,
)


def _model(nodes: list[onnx.NodeProto], outputs: list[onnx.ValueInfoProto], metadata: dict[str, str]) -> bytes:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])
    graph = helper.make_graph(nodes, "g", [image], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    for key, value in metadata.items():
        model.metadata_props.add(key=f"driftscope.{key}", value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def sigmoid_segmenter() -> bytes:
    """probability = sigmoid(image): the output is a known function of the preprocessed input."""
    out = helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1, "H", "W"])
    return _model([helper.make_node("Sigmoid", ["image"], ["probability"])], [out],
                  {"kind": "segmenter", "in_channels": "1", "size_multiple": "16"})


def mean_encoder(size: int) -> bytes:
    """latent = spatial mean; reconstruction = 0.5 everywhere: both predictable from the input."""
    latent = helper.make_tensor_value_info("latent", TensorProto.FLOAT, ["N", 1])
    recon = helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, ["N", 1, "H", "W"])
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    nodes = [
        helper.make_node("ReduceMean", ["image", "axes"], ["pooled"], keepdims=0),
        helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [2], [2, 3])),
        helper.make_node("Mul", ["image", "zero"], ["zeros"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
        helper.make_node("Add", ["zeros", "half_c"], ["reconstruction"]),
        helper.make_node("Constant", [], ["half_c"], value=half),
        helper.make_node("Identity", ["pooled"], ["latent"]),
    ]
    # topological order: constants first
    nodes = [nodes[1], nodes[3], nodes[5], nodes[0], nodes[2], nodes[4], nodes[6]]
    return _model(nodes, [latent, recon], {"kind": "encoder", "in_channels": "1", "input_size": str(size),
                                           "latent_dim": "1"})


def test_segmenter_runner_returns_maps_of_each_input_size_in_order() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 4000, size=shape, dtype=np.uint16) for shape in [(40, 50), (64, 64), (40, 50), (17, 90)]]
    runner = SegmenterRunner(sigmoid_segmenter(), batch_size=2)
    maps = runner.predict(images)
    assert [m.shape for m in maps] == [i.shape for i in images]
    for image, probability in zip(images, maps, strict=True):
        np.testing.assert_allclose(probability, 1 / (1 + np.exp(-normalize(image))), rtol=1e-6)
        assert probability.dtype == np.float32


def test_segmenter_runner_refuses_a_wrong_kind_and_channel_count() -> None:
    with pytest.raises(ValueError, match="not a driftscope segmenter"):
        SegmenterRunner(mean_encoder(32))
    runner = SegmenterRunner(sigmoid_segmenter())
    with pytest.raises(ValueError, match="input channel"):
        runner.predict([np.zeros((32, 32, 3), np.uint16)])


def test_encoder_runner_resizes_and_measures_reconstruction_error() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, size=shape).astype(np.uint8) for shape in [(64, 64), (100, 80), (32, 32)]]
    runner = EncoderRunner(mean_encoder(32), batch_size=2)
    latents, errors = runner.encode(images)
    assert latents.shape == (3, 1) and errors.shape == (3,)
    for image, latent, error in zip(images, latents, errors, strict=True):
        x = encoder_input(image, 1, 32)
        assert x.shape == (1, 32, 32)
        assert latent[0] == pytest.approx(float(x.mean()), rel=1e-5)
        assert error == pytest.approx(float(np.mean((x - 0.5) ** 2)), rel=1e-5)
    empty_latents, empty_errors = runner.encode([])
    assert empty_latents.shape == (0, 1) and empty_errors.shape == (0,)


def test_instances_split_touching_discs_and_drop_specks() -> None:
    yy, xx = np.mgrid[:64, :64]
    probability = np.zeros((64, 64), np.float32)
    probability[(yy - 32) ** 2 + (xx - 20) ** 2 < 100] = 0.9
    probability[(yy - 32) ** 2 + (xx - 38) ** 2 < 100] = 0.9
    probability[2, 2] = 0.9
    labels = instances_from_probability(probability)
    assert labels.max() == 2


_HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_is_always_the_cpu_and_auto_takes_cuda_only_when_onnxruntime_has_it() -> None:
    assert execution_providers("cpu") == ["CPUExecutionProvider"]
    expected = ["CUDAExecutionProvider", "CPUExecutionProvider"] if _HAS_CUDA else ["CPUExecutionProvider"]
    assert execution_providers("auto") == expected
    assert SegmenterRunner(sigmoid_segmenter()).provider == "CPUExecutionProvider"


@pytest.mark.skipif(_HAS_CUDA, reason="this onnxruntime has the CUDA provider")
def test_cuda_without_the_cuda_provider_is_refused_with_what_to_install() -> None:
    with pytest.raises(ValueError, match="install onnxruntime-gpu in place of onnxruntime"):
        execution_providers("cuda")
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        SegmenterRunner(sigmoid_segmenter(), device="cuda")


def _offer_cuda(monkeypatch: pytest.MonkeyPatch, *, starts: bool) -> None:
    """Make this CPU onnxruntime claim the CUDA provider; a session asking for it raises unless ``starts``.

    With ``starts`` the real CPU build is asked for CUDA and runs on the CPU, which is what
    onnxruntime-gpu does on a machine without a visible GPU.
    """
    real_session = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])

    def session(source: bytes | str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        if "CUDAExecutionProvider" in providers and not starts:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real_session(source, options, providers=[p for p in providers if p != "CUDAExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)


@pytest.mark.parametrize("starts", [True, False])
def test_auto_ends_on_the_cpu_and_cuda_is_refused_when_the_cuda_provider_cannot_run(
    monkeypatch: pytest.MonkeyPatch, starts: bool
) -> None:
    _offer_cuda(monkeypatch, starts=starts)
    assert execution_providers("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    runner = SegmenterRunner(sigmoid_segmenter(), device="auto")
    assert runner.provider == "CPUExecutionProvider"
    assert runner.predict([np.zeros((16, 16), np.float32)])[0].shape == (16, 16)
    with pytest.raises(ValueError, match="could not start its CUDA provider"):
        SegmenterRunner(sigmoid_segmenter(), device="cuda")


def test_a_bad_model_is_a_model_error_not_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _offer_cuda(monkeypatch, starts=False)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidProtobuf):
        SegmenterRunner(b"not an onnx model", device="cuda")
