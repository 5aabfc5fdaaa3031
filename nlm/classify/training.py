"""`nlm vision train` as a library call: the classifier's part of the run recipe (images, network, task)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from nlm.autoencode.inference import load_autoencoder
from nlm.classify.task import ClassifyConfig, ClassifyTask
from nlm.config import check
from nlm.images.data import ImageSet, check_shape
from nlm.images.sources import ImageSources, describe_images
from nlm.io.checkpoint import load_checkpoint
from nlm.models.classifiers import CLASSIFIER_CONFIGS, CNNConfig, MLPConfig, build_classifier
from nlm.train.config import TrainConfig
from nlm.train.run import RunResult, resume_run, start_run
from nlm.train.shard import SINGLE, Shard

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}  # with --momentum 0.9 for SGD


def classifier_config(arch: str, *, init_from: str | None = None, **options) -> MLPConfig | CNNConfig:
    """The config of an `arch` classifier from the options given (None: the default, or the encoder's)."""
    check(arch in CLASSIFIER_CONFIGS, f"unknown classifier {arch!r}; choose one of {', '.join(CLASSIFIER_CONFIGS)}")
    options = {k: v for k, v in options.items() if v is not None}
    if init_from is not None:
        check(arch == "mlp", "--init-from copies an autoencoder's encoder into an MLP's hidden layers; use --arch mlp")
        saved = load_checkpoint(init_from, kind="autoencoder")["config"]["model"]
        options = {"hidden": tuple(saved["hidden"]), "activation": saved["code_activation"], **options}
    return CLASSIFIER_CONFIGS[arch](**options)


def initialise_from_encoder(network: nn.Module, path: str | Path) -> str:
    """Copy the encoder of the autoencoder checkpoint at `path` into an MLP's hidden layers; says what it did."""
    loaded = load_autoencoder(path)
    copied = network.init_from_encoder(loaded.model.encoder_state(), activation=loaded.model.config.code_activation)
    return f"initialised {copied} hidden layer(s) from the encoder in {loaded.path}"


@dataclass
class ClassifierJob:
    """One classifier run: its images, network and task configs; `load` fills in the rest."""

    arch: str  # "cnn" or "mlp"
    model: MLPConfig | CNNConfig
    data: ClassifyConfig
    sources: ImageSources = field(default_factory=ImageSources)
    init_from: str | None = None  # an autoencoder checkpoint whose encoder starts the MLP's hidden layers
    images: tuple[ImageSet, ImageSet | None] | None = None  # images handed over by a program instead of `sources`
    records: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what building the network did, for the announcement
    resuming: bool = False  # the network's shape is the saved run's: the images must fit it

    kind = "vision"
    command = "nlm vision train"

    def default_lr(self, optimizer: str) -> float:
        return DEFAULT_LR[optimizer]

    def load(self, run_dir: Path, train: TrainConfig) -> None:
        check(
            self.init_from is None or self.arch == "mlp",
            "--init-from copies an autoencoder's encoder into an MLP's hidden layers; use --arch mlp",
        )
        given = self.images is not None
        self.images = self.images or self.sources.load(seed=train.seed)
        self.images[0].require_labels()
        if self.resuming:
            check_shape(self.images[0], self.model.input_shape)
        elif self.model.input_shape != self.images[0].shape or self.model.num_classes != len(self.images[0].classes):
            self.model = self.model.replace(input_shape=self.images[0].shape, num_classes=len(self.images[0].classes))
        self.records = self.records or (
            {"train_data": None, "given_images": [s.source for s in self.images if s is not None]}
            if given
            else self.sources.records(run_dir)
        )

    def build_task(self, device: torch.device, train: TrainConfig, shard: Shard = SINGLE) -> ClassifyTask:
        network = build_classifier(self.arch, self.model)
        if self.init_from is not None:
            self.notes.append(initialise_from_encoder(network, self.init_from))
        train_set, valid_set = self.images
        return ClassifyTask(
            model=network.to(device),
            model_kind=self.arch,
            train=train_set,
            valid=valid_set,
            data=self.data,
            device=device,
            seed=train.seed,
            shard=shard,
        )

    def run_config(self) -> dict[str, Any]:
        return {
            **self.records,
            "init_from": self.init_from,
            "model_kind": self.arch,
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
        }

    def describe(self, task: ClassifyTask) -> list[str]:
        return [
            f"model: {self.arch} {self.model.describe()}",
            f"data: {self.data.describe()}; {describe_images(*self.images)}",
            *self.notes,
        ]

    def fit(self, fit_task, task: ClassifyTask, train: TrainConfig) -> RunResult:
        return fit_task(task, train)

    @classmethod
    def resumed(cls, run_config: dict, checkpoint: dict, changes: dict[str, Any], *, run_dir: Path) -> ClassifierJob:
        config = checkpoint["config"]
        arch = config["model_kind"]
        sources = ImageSources.resumed(run_config, changes, run_dir=run_dir)
        return cls(
            arch=arch,
            model=CLASSIFIER_CONFIGS[arch].from_dict(config["model"]),
            data=ClassifyConfig.from_dict(config["data"]),
            sources=sources,
            records=sources.records(run_dir),
            resuming=True,
        )


def train_classifier(
    *, job: ClassifierJob, output: Path, train: TrainConfig, force: bool = False, console: Console, quiet: bool = False
) -> RunResult:
    """Train a new classifier into the run folder `output`."""
    return start_run(job, output=output, force=force, train=train, console=console, quiet=quiet)


def resume_classifier(*, run_dir: Path, changes: dict[str, Any], console: Console, quiet: bool = False) -> RunResult:
    """Continue the run in `run_dir` exactly where its last.pt stopped (same images, same split)."""
    return resume_run(ClassifierJob, run_dir=run_dir, changes=dict(changes), console=console, quiet=quiet)
