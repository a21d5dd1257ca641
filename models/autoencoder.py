"""The fingerprint autoencoder (seed: MLOps for Scarce Image Data, Yamachui Sitcheu et al.).

A torchvision ResNet18 (``weights=None``: nothing is downloaded) is the encoder; its first
convolution takes the configured number of channels and its fc becomes a projection to the
latent. A decoder of five stride-2 transposed convolutions rebuilds the (resized) input from the
latent, and the pair is trained with MSE and Adam. Serving exports the encoder and the decoder as
two graphs so a torch-free runner gets both the latent and the reconstruction error.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet18

__all__ = [
    "AutoencoderConfig",
    "FingerprintAutoencoder",
    "FingerprintDecoder",
    "FingerprintEncoder",
    "load_autoencoder",
    "save_autoencoder",
]

_DECODER_STAGES = 5  # five transposed convolutions, each doubling the side length
_NORM_GROUPS = 32  # divides every ResNet18 width (64..512)


@dataclass(frozen=True)
class AutoencoderConfig:
    """``latent_dim`` 2 gives the seed's dataset maps; a wider latent (e.g. 32) serves drift detection.

    ``input_size`` is the side the input is resized to; it must be a multiple of 32 (ResNet18's
    stride) so the decoder's five doublings land exactly back on it.
    """

    in_channels: int = 1
    latent_dim: int = 32
    input_size: int = 64
    decoder_width: int = 256

    def __post_init__(self) -> None:
        if self.input_size % 2**_DECODER_STAGES:
            raise ValueError(f"input_size must be a multiple of {2**_DECODER_STAGES}, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AutoencoderConfig:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(_NORM_GROUPS, channels)


class FingerprintEncoder(nn.Module):
    """ResNet18 body with an adapted stem and a linear projection to the latent.

    Group norm replaces batch norm: trained on a few hundred reference images, batch-norm running
    statistics let an input slightly darker than the training set blow the latent up by 100x
    (measured on the first baseline), which wrecks mean-latent fingerprints. Group norm behaves
    the same in training and serving and normalises each image on its own.
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        body = resnet18(weights=None, norm_layer=_group_norm)
        body.conv1 = nn.Conv2d(config.in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        body.fc = nn.Linear(body.fc.in_features, config.latent_dim)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FingerprintDecoder(nn.Module):
    """Latent -> (input_size / 32)^2 seed map -> five transposed convolutions -> image in [0, 1]."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.seed_side = config.input_size // 2**_DECODER_STAGES
        self.seed_width = config.decoder_width
        self.project = nn.Linear(config.latent_dim, config.decoder_width * self.seed_side**2)
        layers: list[nn.Module] = []
        width = config.decoder_width
        for stage in range(_DECODER_STAGES):
            last = stage == _DECODER_STAGES - 1
            out = config.in_channels if last else max(width // 2, 16)
            layers.append(nn.ConvTranspose2d(width, out, kernel_size=4, stride=2, padding=1))
            layers.append(nn.Sigmoid() if last else nn.ReLU(inplace=True))
            width = out
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.seed_width, self.seed_side, self.seed_side)
        return self.deconv(torch.relu(x))


class FingerprintAutoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns (latent, reconstruction) for the MSE objective."""

    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = FingerprintEncoder(self.config)
        self.decoder = FingerprintDecoder(self.config)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.decoder(z)


def save_autoencoder(model: FingerprintAutoencoder, *, half: bool = True) -> bytes:
    """Config + state_dict; ``half`` stores floats as fp16 (ResNet18 is ~45 MB in fp32).

    The fp16 checkpoint is what fine-tuning starts from; the fingerprint needs no more precision.
    """
    buffer = io.BytesIO()
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in model.state_dict().items()
    }
    torch.save({"kind": "encoder", "config": model.config.to_dict(), "state_dict": state}, buffer)
    return buffer.getvalue()


def load_autoencoder(data: bytes) -> FingerprintAutoencoder:
    """Rebuild the autoencoder (fp32, on CPU) from :func:`save_autoencoder` bytes, in eval mode."""
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if checkpoint.get("kind") != "encoder":
        raise ValueError(f"not an encoder checkpoint (kind={checkpoint.get('kind')!r})")
    model = FingerprintAutoencoder(AutoencoderConfig.from_dict(checkpoint["config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    model.load_state_dict(state)
    return model.eval()
