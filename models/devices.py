"""Where the networks run: one vocabulary for the runners, the worker's options and the benchmarks.

Kept apart from :mod:`models.runners` so that configuration can name a device without importing
onnxruntime (the CLI starts without it).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["DEVICES", "Device"]

#: ``cpu``; ``cuda`` (onnxruntime's CUDA provider, or an error saying why not); ``auto`` (CUDA when
#: onnxruntime can run on it, else the CPU).
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = get_args(Device)
