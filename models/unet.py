"""The segmentation network: a plain U-Net whose depth, width and channels are configuration.

Torch is imported here (training/export side only); serving uses the ONNX export through
:mod:`models.runners`. The network returns logits; :class:`ProbabilityUNet` adds the sigmoid that
the exported serving graph carries, so the runner receives probabilities directly.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ProbabilityUNet", "UNet", "UNetConfig", "load_unet", "save_unet"]


@dataclass(frozen=True)
class UNetConfig:
    """Shape of a U-Net. ``depth`` is the number of 2x poolings: inputs must be multiples of 2**depth."""

    in_channels: int = 1
    out_channels: int = 1
    base_width: int = 16
    depth: int = 4
    max_width: int = 256

    def widths(self) -> list[int]:
        """Channel width per level, from the full-resolution level to the bottleneck."""
        return [min(self.base_width * 2**level, self.max_width) for level in range(self.depth + 1)]

    @property
    def size_multiple(self) -> int:
        return int(2**self.depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        return cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})


class _DoubleConv(nn.Sequential):
    """Two 3x3 conv + batch-norm + ReLU: the unit every U-Net level is built from."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Encoder-decoder with skip connections (Ronneberger et al. 2015), returning per-pixel logits."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        widths = self.config.widths()
        self.down = nn.ModuleList()
        in_ch = self.config.in_channels
        for width in widths:
            self.down.append(_DoubleConv(in_ch, width))
            in_ch = width
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.upsample.append(nn.ConvTranspose2d(in_ch, width, kernel_size=2, stride=2))
            self.up.append(_DoubleConv(2 * width, width))
            in_ch = width
        self.head = nn.Conv2d(in_ch, self.config.out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips), strict=True):
            x = block(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


class ProbabilityUNet(nn.Module):
    """The serving form: U-Net followed by a sigmoid, so the exported graph outputs probabilities."""

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.unet(x))


def save_unet(model: UNet) -> bytes:
    """The checkpoint the registry stores next to the ONNX export: config + state_dict."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"kind": "segmenter", "config": model.config.to_dict(), "state_dict": state}, buffer)
    return buffer.getvalue()


def load_unet(data: bytes) -> UNet:
    """Rebuild a U-Net from :func:`save_unet` bytes (on CPU, in eval mode; training sets train mode itself)."""
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if checkpoint.get("kind") != "segmenter":
        raise ValueError(f"not a segmenter checkpoint (kind={checkpoint.get('kind')!r})")
    model = UNet(UNetConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
