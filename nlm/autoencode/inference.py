"""A trained autoencoder at work: load it, encode images, reconstruct them, draw its first layer's filters."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from nlm.errors import ConfigError, DataError
from nlm.images.data import ImageSet, check_shape
from nlm.io.atomic import check_distinct, write_bytes_atomic
from nlm.io.checkpoint import inconsistent_checkpoint, load_checkpoint, resolve_checkpoint
from nlm.io.pixels import to_floats
from nlm.io.png import save_filters, save_pairs
from nlm.models.autoencoder import CORRUPTERS, Autoencoder, AutoencoderConfig
from nlm.models.choices import CORRUPTIONS
from nlm.runtime import check_model_fits


@dataclass(frozen=True, eq=False)
class LoadedAutoencoder:
    """An autoencoder ready for inference: `model` is in eval mode on `device`."""

    model: Autoencoder
    image_shape: tuple[int, int, int]  # (C, H, W) of the images it was trained on
    path: Path  # the checkpoint file
    device: torch.device


def load_autoencoder(path: str | Path, *, device: torch.device | None = None) -> LoadedAutoencoder:
    """A trained autoencoder from its checkpoint (or run folder) alone."""
    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path, kind="autoencoder")
    try:
        config = AutoencoderConfig.from_dict(checkpoint["config"]["model"])
        network = check_model_fits(partial(Autoencoder, config))
        network.load_state_dict(checkpoint["model"])
        image_shape = tuple(int(v) for v in checkpoint["config"]["image_shape"])
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as e:
        raise inconsistent_checkpoint(path, e) from None
    device = device or torch.device("cpu")
    return LoadedAutoencoder(network.to(device).eval(), image_shape, path, device)


def _check_images(images: ImageSet, loaded: LoadedAutoencoder) -> None:
    check_shape(images, loaded.image_shape)
    if len(images) == 0:
        raise DataError(f"{images.source} holds no images")


def encode_images(loaded: LoadedAutoencoder, images: ImageSet, *, batch_size: int = 500) -> torch.Tensor:
    """The codes float32 [N, code size] of `images`, on the CPU."""
    _check_images(images, loaded)
    with torch.no_grad():
        return torch.cat(
            [loaded.model.encode(to_floats(b, loaded.device)).cpu() for b in images.images.split(batch_size)]
        )


def write_codes(codes: torch.Tensor, path: str | Path, *, sources: Iterable[str | Path] = ()) -> None:
    """Save codes [N, K] as a float32 .npy file, never over one of `sources` (the images, the model)."""
    check_distinct(path, sources)
    buffer = io.BytesIO()  # np.save(path) would add .npy to any other name; a failed np.save(file) loses the errno
    np.save(buffer, codes.float().numpy(), allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())


def reconstruct(
    loaded: LoadedAutoencoder,
    images: ImageSet,
    *,
    count: int = 16,
    corruption: str | None = None,
    noise: float = 0.0,
    seed: int = 0,
    batch_size: int = 500,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(the first `count` inputs, their reconstructions, the mean squared error over all images).

    Inputs and reconstructions are flat [count, D] floats on the CPU.  With a `corruption`
    the inputs are corrupted copies (a denoising test), and the error is still measured
    against the clean images."""
    _check_images(images, loaded)
    if corruption is not None and corruption not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {corruption!r}; choose one of {', '.join(CORRUPTIONS)}")
    generator = torch.Generator().manual_seed(seed)
    shown_inputs, shown_outputs, total = [], [], 0.0
    with torch.no_grad():
        for batch in images.images.split(batch_size):
            clean = to_floats(batch).flatten(1)
            inputs = clean if corruption is None else CORRUPTERS[corruption](clean, noise, generator)
            outputs = loaded.model(inputs.to(loaded.device))[0].cpu()
            total += float((outputs - clean).pow(2).sum())
            shown_inputs.append(inputs[: max(0, count - sum(map(len, shown_inputs)))])
            shown_outputs.append(outputs[: len(shown_inputs[-1])])
    return torch.cat(shown_inputs), torch.cat(shown_outputs), total / images.images[0].numel() / len(images)


def save_reconstructions(
    inputs: torch.Tensor,
    outputs: torch.Tensor,
    image_shape,
    path: str | Path,
    *,
    nrow: int = 8,
    scale: int = 2,
    sources: Iterable[str | Path] = (),
) -> tuple[int, int]:
    """A PNG grid of each input beside its reconstruction, never over one of `sources` (the images,
    the model); returns (width, height)."""
    check_distinct(path, sources)
    return save_pairs(inputs, outputs.clamp(0, 1), path, image_shape=image_shape, nrow=nrow, scale=scale)


def save_first_layer_filters(
    loaded: LoadedAutoencoder, path: str | Path, *, count: int | None = None, scale: int = 2
) -> tuple[int, int]:
    """A PNG grid of the first `count` (default all) hidden units' input weights as images."""
    weight = loaded.model.encoder[0].weight
    return save_filters(weight[:count] if count else weight, loaded.image_shape, path, scale=scale)


def first_layer_units(loaded: LoadedAutoencoder) -> int:
    return loaded.model.encoder[0].out_features
