"""Pixels as stored (uint8, 0..255) and as models see them (float32 in [0, 1]): the one conversion each way."""

from __future__ import annotations

import torch

PIXEL_MAX = 255


def to_floats(images: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 pixels (any shape) -> float32 in [0, 1], moved to `device` first (the copy is 4x smaller as uint8)."""
    if device is not None:
        images = images.to(device, non_blocking=True)
    return images.float().div_(PIXEL_MAX)


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] (clamped) -> uint8 pixels, rounded to the nearest level."""
    return (values.float().clamp(0, 1) * PIXEL_MAX).round_().to(torch.uint8)
