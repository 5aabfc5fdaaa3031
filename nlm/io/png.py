"""PNG pictures of images, reconstructions and learned filters, written atomically with Pillow.

A grid holds `nrow` images per row with `padding` pixels of `pad_value` grey around each,
then every pixel is scaled up `scale` times (nearest neighbour, so pixels stay sharp):

    width  = (columns * (W + padding) + padding) * scale,   columns = min(nrow, N)
    height = (rows * (H + padding) + padding) * scale,      rows = ceil(N / nrow)
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from nlm.errors import DataError
from nlm.io.atomic import atomic_write
from nlm.io.pixels import to_floats, to_uint8


def _as_images(images: torch.Tensor, image_shape: tuple[int, int, int] | None = None) -> torch.Tensor:
    """float [N, C, H, W] in [0, 1] from uint8 or float [N, C, H, W], [N, H, W] or flat [N, D] + image_shape."""
    images = images.detach().cpu()
    images = to_floats(images) if images.dtype == torch.uint8 else images.float().clamp(0, 1)
    if image_shape is not None:
        images = images.reshape(-1, *image_shape)
    elif images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise DataError(
            f"cannot draw images of shape {list(images.shape)}; expected one or more [C, H, W] with C 1 or 3"
        )
    return images


def _write_png(pixels: torch.Tensor, path: Path, scale: int) -> tuple[int, int]:
    """Write float [C, H, W] in [0, 1] as a PNG, atomically; returns (width, height)."""
    from PIL import Image

    array = to_uint8(pixels).permute(1, 2, 0).numpy()
    image = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    with atomic_write(path) as stream:
        image.save(stream, format="PNG")
    return image.size


def save_grid(
    images: torch.Tensor,
    path: str | Path,
    *,
    nrow: int = 8,
    padding: int = 2,
    scale: int = 1,
    pad_value: float = 0.5,
    image_shape: tuple[int, int, int] | None = None,
) -> tuple[int, int]:
    """Draw images (uint8 or floats in [0, 1], [N, C, H, W]) in a grid PNG; returns (width, height)."""
    images = _as_images(images, image_shape)
    n, c, h, w = images.shape
    columns, rows = min(nrow, n), math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), pad_value)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        grid[:, top : top + h, left : left + w] = image
    return _write_png(grid, Path(path), scale)


def save_pairs(
    inputs: torch.Tensor,
    reconstructions: torch.Tensor,
    path: str | Path,
    *,
    image_shape: tuple[int, int, int] | None = None,
    nrow: int = 8,
    padding: int = 2,
    scale: int = 1,
) -> tuple[int, int]:
    """Each input beside its reconstruction, `nrow` pairs per row; flat inputs need image_shape."""
    inputs, reconstructions = _as_images(inputs, image_shape), _as_images(reconstructions, image_shape)
    if inputs.shape != reconstructions.shape:
        raise DataError(
            f"{len(inputs)} inputs of {list(inputs.shape[1:])} do not pair with "
            f"{len(reconstructions)} reconstructions of {list(reconstructions.shape[1:])}"
        )
    interleaved = torch.stack([inputs, reconstructions], dim=1).flatten(0, 1)  # in0, rec0, in1, rec1, ...
    return save_grid(interleaved, path, nrow=2 * nrow, padding=padding, scale=scale)


def save_filters(
    weight: torch.Tensor,
    image_shape: tuple[int, int, int],
    path: str | Path,
    *,
    nrow: int | None = None,
    padding: int = 1,
    scale: int = 2,
) -> tuple[int, int]:
    """Each hidden unit's incoming weights (a row of weight [units, C*H*W]) as an image,
    stretched to [0, 1] per unit (a constant unit is mid grey); about square by default."""
    weight = weight.detach().cpu().float()
    if weight.dim() != 2 or weight.shape[1] != math.prod(image_shape):
        raise DataError(
            f"weights of shape {list(weight.shape)} are not [units, {math.prod(image_shape)}] "
            f"for images of {image_shape}"
        )
    low, high = weight.min(1, keepdim=True).values, weight.max(1, keepdim=True).values
    span = high - low
    scaled = torch.where(span > 0, (weight - low) / span.clamp_min(1e-12), torch.full_like(weight, 0.5))
    nrow = nrow or math.ceil(math.sqrt(len(weight)))
    return save_grid(scaled, path, nrow=nrow, padding=padding, scale=scale, image_shape=image_shape)
