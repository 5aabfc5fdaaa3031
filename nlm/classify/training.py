"""`nlm vision train` as a library call: the classifier's part of the run recipe (images, network, task)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlm.autoencode.inference import load_autoencoder
from nlm.classify.task import ClassifyConfig, ClassifyTask
from nlm.config import check
from nlm.images.data import ImageSet, check_shape
from nlm.images.sources import ImageSources, describe_images
from nlm.io.checkpoint import load_checkpoint
from nlm.models.choices import ARCHITECTURES
from nlm.models.classifiers import CLASSIFIER_CONFIGS, CNNConfig, MLPConfig, build_classifier
from nlm.train.config import TrainConfig
from nlm.train.run import Job
from nlm.train.shard import SINGLE, Shard

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}  # with --momentum 0.9 for SGD


def classifier_config(arch: str, *, init_from: str | None = None, **options) -> MLPConfig | CNNConfig:
    """The config of an `arch` classifier from the options given (None: the default, or the encoder's)."""
    check(arch in ARCHITECTURES, f"unknown classifier {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
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
class ClassifierJob(Job):
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
    default_lrs = DEFAULT_LR

    def load(self, run_dir: Path, train: TrainConfig) -> None:
        check(
            self.init_from is None or self.arch == "mlp",
            "--init-from copies an autoencoder's encoder into an MLP's hidden layers; use --arch mlp",
        )
        self.images, self.records = self.sources.load_for_run(
            self.images, self.records, run_dir=run_dir, seed=train.seed
        )
        self.images[0].require_labels()
        if self.resuming:
            check_shape(self.images[0], self.model.input_shape)
        elif self.model.input_shape != self.images[0].shape or self.model.num_classes != len(self.images[0].classes):
            self.model = self.model.replace(input_shape=self.images[0].shape, num_classes=len(self.images[0].classes))

    def build_model(self) -> nn.Module:
        return build_classifier(self.arch, self.model)

    def build_task(
        self, model: nn.Module, device: torch.device, train: TrainConfig, shard: Shard = SINGLE
    ) -> ClassifyTask:
        if self.init_from is not None:
            self.notes.append(initialise_from_encoder(model, self.init_from))
        train_set, valid_set = self.images
        return ClassifyTask(
            model=model,
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

    @classmethod
    def from_saved_run(
        cls, run_config: dict, checkpoint: dict, changes: dict[str, Any], *, run_dir: Path
    ) -> ClassifierJob:
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
