"""Where a vision or autoencoder run gets its images: --data, and --valid or a held-out part of --data."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlm.config import check
from nlm.errors import ConfigError
from nlm.images.data import GENERATED_PREFIX, ImageSet, check_shape, load_images
from nlm.train.inputs import locate_file, record_file

DEFAULT_DATA = "generated:6000"


@dataclass(frozen=True)
class ImageSources:
    data: str = DEFAULT_DATA  # training images: generated:N[:SEED], a folder, a .npz or an IDX file
    valid: str | None = None  # validation images; None holds out part of `data`
    holdout: float = 0.1  # without `valid`: the fraction (< 1) or count (>= 1) of `data` held out; 0 holds out none

    def __post_init__(self) -> None:
        check(self.holdout >= 0, f"--holdout must be >= 0, not {self.holdout}")

    def load(self, *, seed: int) -> tuple[ImageSet, ImageSet | None]:
        """The training and the validation images: `valid`, else a held-out part of `data` (the same for a seed)."""
        images = load_images(self.data)
        if self.valid is not None:
            valid = load_images(self.valid, channels=images.shape[0])
            check_shape(valid, images.shape)
            return images, valid
        if self.holdout == 0:
            return images, None
        return images.split(self.holdout if self.holdout < 1 else int(self.holdout), seed=seed)

    def load_for_run(
        self, given: tuple[ImageSet, ImageSet | None] | None, records: dict[str, Any], *, run_dir: Path, seed: int
    ) -> tuple[tuple[ImageSet, ImageSet | None], dict[str, Any]]:
        """A run's images (`given` by a program, else these sources read) and what config.json records of them
        (`records` when a resumed run already has them)."""
        if given is not None:
            return given, records or {"train_data": None, "given_images": [s.source for s in given if s is not None]}
        return self.load(seed=seed), records or self.records(run_dir)

    def records(self, run_dir: Path) -> dict[str, Any]:
        """What config.json keeps, so that a resume finds the same images."""
        return {
            "train_data": _record(self.data, run_dir),
            "valid_data": _record(self.valid, run_dir),
            "holdout": self.holdout,
        }

    @classmethod
    def resumed(cls, run_config: dict, changes: dict[str, Any], *, run_dir: Path) -> ImageSources:
        """The sources of a saved run; `changes` loses the --data/--valid it relocates (the same images, moved)."""
        if run_config.get("train_data") is None:
            given = ", ".join(run_config.get("given_images", [])) or "images handed over by a program"
            if "data" not in changes:
                raise ConfigError(f"{run_dir} was trained on {given}; pass --data (and --valid) to resume it")
            return cls(
                data=changes.pop("data"), valid=changes.pop("valid", None), holdout=0.0 if "valid" in changes else 0.1
            )
        data = _locate(run_config["train_data"], changes.pop("data", None), run_dir, "--data")
        valid = _locate(run_config.get("valid_data"), changes.pop("valid", None), run_dir, "--valid")
        return cls(data=data, valid=valid, holdout=run_config.get("holdout", 0.1))


def _record(spec: str | None, run_dir: Path) -> dict | None:
    """Generated sets are their spec; files are checksummed; an image folder is recorded by its path alone."""
    if spec is None:
        return None
    if spec.startswith(GENERATED_PREFIX):
        return {"generated": spec}
    path = Path(spec)
    if path.is_dir():
        absolute = path.resolve()
        return {"path": str(absolute), "from_run": os.path.relpath(absolute, Path(run_dir).resolve()), "sha256": None}
    return record_file(spec, run_dir)


def _locate(record: dict | None, given: str | None, run_dir: Path, option: str) -> str | None:
    if record is not None and "generated" in record:
        if given is not None and given != record["generated"]:
            raise ConfigError(
                f"{run_dir} was trained on {record['generated']}; a run cannot change its data when resuming"
            )
        return record["generated"]
    return locate_file(record, given=given, run_dir=run_dir, option=option)


def describe_images(train: ImageSet, valid: ImageSet | None) -> str:
    """`train 5,400 images of 1x28x28 from generated:6000:0, valid 600 from ...`, for announcements."""
    shape = "x".join(map(str, train.shape))
    return f"train {len(train):,} images of {shape} from {train.source}" + (
        f", valid {len(valid):,} from {valid.source}" if valid is not None else ", no validation images"
    )
