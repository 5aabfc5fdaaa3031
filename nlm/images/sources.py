"""Where a vision or autoencoder run gets its images: --data, --valid or a held-out part of --data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from nlm.config import check
from nlm.errors import ConfigError
from nlm.images.data import ImageSet, check_shape, load_images

DEFAULT_DATA = "generated:6000"


@dataclass(frozen=True)
class ImageRun:
    """Where a vision or autoencoder run gets its images and writes its folder."""

    output: Path  # the run folder
    data: str = DEFAULT_DATA  # training images: generated:N[:SEED], a folder, a .npz or an IDX file
    valid: str | None = None  # validation images; None holds out part of `data`
    holdout: float = 0.1  # without `valid`: the fraction (< 1) or count (>= 1) of `data` held out; 0 holds out none
    force: bool = False  # replace a run already in `output`

    def to_dict(self, images: tuple[ImageSet, ImageSet | None] | None = None) -> dict:
        """What config.json records of the data; images handed over by a program are named but cannot be reloaded."""
        if images is not None:
            return {"train_data": None, "valid_data": None, "holdout": 0, "given_images": [s.source for s in images if s is not None]}
        return {"train_data": self.data, "valid_data": self.valid, "holdout": self.holdout}


def resumed_image_run(run_dir: Path, run_config: dict, *, data: str | None, valid: str | None) -> ImageRun:
    """The ImageRun of a run being resumed: its recorded data specs, or the ones given now."""
    if data is None and run_config.get("train_data") is None:
        raise ConfigError(f"{run_dir} was trained on images handed over by a program "
                          f"({', '.join(run_config.get('given_images', []))}); pass --data (and --valid) to resume it")
    return ImageRun(output=run_dir, data=data or run_config["train_data"], valid=valid or run_config.get("valid_data"),
                    holdout=run_config.get("holdout", 0.1) if run_config.get("train_data") is not None else 0.1)


def load_split(run: ImageRun, *, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """The training images and the validation images: `run.valid`, else a held-out part of `run.data`."""
    check(run.holdout >= 0, f"--holdout must be >= 0, not {run.holdout}")
    images = load_images(run.data)
    if run.valid is not None:
        valid = load_images(run.valid, channels=images.shape[0])
        check_shape(valid, images.shape)
        return images, valid
    if run.holdout == 0:
        return images, None
    return images.split(run.holdout if run.holdout < 1 else int(run.holdout), seed=seed)


def announce(console: Console, task, config: dict, device: torch.device, train_set: ImageSet, valid_set: ImageSet | None) -> None:
    """The full configuration and data sizes, on the console before training starts."""
    parameters = sum(p.numel() for p in task.model.parameters())
    shape = "x".join(map(str, train_set.shape))
    console.print(f"model: {config.get('model_kind', 'autoencoder')} {config['model']}")
    console.print(f"data: {config['data']}; train {len(train_set):,} images of {shape} from {train_set.source}"
                  + (f", valid {len(valid_set):,} from {valid_set.source}" if valid_set is not None else ", no validation"))
    console.print(f"train: {config['train']}")
    console.print(f"{parameters:,} parameters on {device}; {task.batches_per_epoch():,} batches per epoch")


