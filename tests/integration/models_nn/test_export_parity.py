"""ONNX export of both models: parity with torch at several shapes, dynamic axes, runner agreement."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.autoencoder import AutoencoderConfig, FingerprintAutoencoder  # noqa: E402
from models.onnx_export import (  # noqa: E402
    PARITY_ATOL,
    ExportParityError,
    check_parity,
    export_autoencoder,
    export_segmenter,
    read_metadata,
)
from models.runners import EncoderRunner, SegmenterRunner, encoder_input  # noqa: E402
from models.train_segmenter import TorchSegmenter  # noqa: E402
from models.unet import ProbabilityUNet, UNet, UNetConfig  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _randomised_unet(config: UNetConfig) -> UNet:
    """A U-Net with non-trivial batch-norm statistics, so folding them in the export is exercised."""
    torch.manual_seed(0)
    model = UNet(config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    return model.eval()


def test_segmenter_export_matches_torch_and_the_runner_serves_any_size() -> None:
    unet = _randomised_unet(UNetConfig(base_width=4, depth=3))
    result = export_segmenter(unet)
    assert result.parity_max_abs_diff <= PARITY_ATOL
    assert read_metadata(result.onnx)["size_multiple"] == "8"

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 60000, size=shape, dtype=np.uint16) for shape in [(50, 70), (64, 64), (50, 70)]]
    served = SegmenterRunner(result.onnx, batch_size=2).predict(images)
    eager = TorchSegmenter(unet)(images)
    for s, e, image in zip(served, eager, images, strict=True):
        assert s.shape == image.shape
        assert float(np.max(np.abs(s - e))) <= PARITY_ATOL


def test_autoencoder_export_parity_and_fp16_storage_halves_the_file() -> None:
    torch.manual_seed(0)
    model = FingerprintAutoencoder(AutoencoderConfig(latent_dim=8, input_size=32, decoder_width=32)).eval()
    result = export_autoencoder(model, fp16_storage=True)
    fp32_bytes = 4 * sum(p.numel() for p in model.parameters())
    assert result.parity_max_abs_diff <= PARITY_ATOL
    assert len(result.onnx) < 0.55 * fp32_bytes
    assert result.precision == "fp16" and 0 < result.storage_max_abs_diff < 1e-2

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 4000, size=(48, 40), dtype=np.uint16) for _ in range(3)]
    latents, errors = EncoderRunner(result.onnx).encode(images)
    x = torch.from_numpy(np.stack([encoder_input(i, 1, 32) for i in images]))
    with torch.no_grad():
        z, reconstruction = model(x)
    tolerance = 1e-2  # fp16-stored weights: the same order as storage_max_abs_diff, on other inputs
    np.testing.assert_allclose(latents, z.numpy(), atol=tolerance)
    np.testing.assert_allclose(errors, ((reconstruction - x) ** 2).mean(dim=(1, 2, 3)).numpy(), atol=tolerance)


def test_parity_check_rejects_a_graph_that_disagrees() -> None:
    unet = _randomised_unet(UNetConfig(base_width=4, depth=2))
    result = export_segmenter(unet)
    other = ProbabilityUNet(_randomised_unet(UNetConfig(base_width=4, depth=2)))
    with torch.no_grad():
        other.unet.head.weight.add_(1.0)
    x = np.random.default_rng(0).random((1, 1, 16, 16), dtype=np.float32)
    with pytest.raises(ExportParityError):
        check_parity(other, result.onnx, [x])
