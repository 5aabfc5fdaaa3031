"""`nlm vision train` as a library call: images, classifier and task, handed to the shared trainer; and loading one back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from nlm.autoencode.inference import load_autoencoder
from nlm.classify.task import ClassifyConfig, ClassifyTask
from nlm.config import check
from nlm.errors import ConfigError
from nlm.images.data import ImageSet, check_shape
from nlm.images.sources import ImageRun, announce, load_split, resumed_image_run
from nlm.io.checkpoint import (
    inconsistent_checkpoint,
    load_checkpoint,
    resolve_checkpoint,
)
from nlm.models.classifiers import CNNConfig, MLPConfig, build_classifier
from nlm.runtime import pick_device, seed_everything
from nlm.train.config import TrainConfig
from nlm.train.run import (
    RunResult,
    load_resume_point,
    prepare_run_dir,
    resumed_train_config,
    run_training,
    write_run_config,
)

DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}  # with --momentum 0.9 for SGD
MODEL_CONFIGS: dict[str, type[MLPConfig] | type[CNNConfig]] = {"mlp": MLPConfig, "cnn": CNNConfig}


def classifier_config(arch: str, *, init_from: str | None = None, **options) -> MLPConfig | CNNConfig:
    """The config of an `arch` classifier from the options given (None: the default, or the encoder's)."""
    check(arch in MODEL_CONFIGS, f"unknown classifier {arch!r}; choose one of {', '.join(MODEL_CONFIGS)}")
    options = {k: v for k, v in options.items() if v is not None}
    if init_from is not None:
        check(arch == "mlp", "--init-from copies an autoencoder's encoder into an MLP's hidden layers; use --arch mlp")
        saved = load_checkpoint(init_from, kind="autoencoder")["config"]["model"]
        options = {"hidden": tuple(saved["hidden"]), "activation": saved["code_activation"], **options}
    return MODEL_CONFIGS[arch](**options)


def initialise_from_encoder(network: nn.Module, path: str | Path) -> str:
    """Copy the encoder of the autoencoder checkpoint at `path` into an MLP's hidden layers; says what it did."""
    loaded = load_autoencoder(path)
    copied = network.init_from_encoder(loaded.model.encoder_state(), activation=loaded.model.config.code_activation)
    return f"initialised {copied} hidden layer(s) from the encoder in {loaded.path}"


def train_classifier(*, run: ImageRun, arch: str, model: MLPConfig | CNNConfig, data: ClassifyConfig, train: TrainConfig,
                     console: Console, quiet: bool = False, init_from: str | None = None,
                     images: tuple[ImageSet, ImageSet | None] | None = None) -> RunResult:
    """Train a new classifier into `run.output`; `images` (train, valid) replaces loading `run`'s specs."""
    device = pick_device(train.device)
    train = train.replace(lr=train.lr or DEFAULT_LR[train.optimizer])
    check(init_from is None or arch == "mlp", "--init-from copies an autoencoder's encoder into an MLP's hidden layers; use --arch mlp")
    train_set, valid_set = images or load_split(run, seed=train.seed)
    train_set.require_labels()
    model = model.replace(input_shape=train_set.shape, num_classes=len(train_set.classes))
    run_dir = prepare_run_dir(run.output, force=run.force)  # after every check: --force keeps the old run until then
    seed_everything(train.seed)
    network = build_classifier(arch, model)
    if init_from is not None:
        message = initialise_from_encoder(network, init_from)
        if not quiet:
            console.print(message)
    task = ClassifyTask(model=network.to(device), model_kind=arch, train=train_set, valid=valid_set, data=data,
                        device=device, seed=train.seed)
    config = {**run.to_dict(images), "init_from": init_from, "model_kind": arch, "model": model.to_dict(),
              "data": data.to_dict(), "train": train.to_dict()}
    write_run_config(run_dir, config)
    if not quiet:
        announce(console, task, config, device, train_set, valid_set)
    return run_training(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet)


def resume_classifier(*, run_dir: Path, overrides: dict, console: Console, quiet: bool = False,
                      data: str | None = None, valid: str | None = None) -> RunResult:
    """Continue the run in `run_dir` exactly where its last.pt stopped (same images, same split)."""
    run_config, checkpoint = load_resume_point(run_dir, kind="vision")
    config = checkpoint["config"]
    train = resumed_train_config(config["train"], overrides)
    run = resumed_image_run(run_dir, run_config, data=data, valid=valid)
    device = pick_device(train.device)
    train_set, valid_set = load_split(run, seed=train.seed)
    arch = config["model_kind"]
    network = build_classifier(arch, MODEL_CONFIGS[arch].from_dict(config["model"]))
    check_shape(train_set, network.input_shape)
    network.load_state_dict(checkpoint["model"])
    task = ClassifyTask(model=network.to(device), model_kind=arch, train=train_set, valid=valid_set,
                        data=ClassifyConfig.from_dict(config["data"]), device=device, seed=train.seed)
    write_run_config(run_dir, {**run_config, **run.to_dict(), "train": train.to_dict()})
    if not quiet:
        p = checkpoint["trainer"]["progress"]
        console.print(f"resuming {run_dir} at epoch {p['epoch'] + 1}, batch {p['batch']} (step {p['global_step']})")
    return run_training(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet, resume_from=checkpoint)


@dataclass(frozen=True, eq=False)
class LoadedClassifier:
    """A classifier ready for inference: `model` is in eval mode on `device`."""

    model: nn.Module
    arch: str  # "mlp" or "cnn"
    classes: tuple[str, ...]  # class names; the model's output i is classes[i]
    path: Path  # the checkpoint file
    device: torch.device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.config.input_shape)


def load_classifier(path: str | Path, *, device: torch.device | None = None) -> LoadedClassifier:
    """A trained classifier from its checkpoint (or run folder) alone."""
    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path, kind="vision")
    try:
        arch = checkpoint["config"]["model_kind"]
        network = build_classifier(arch, MODEL_CONFIGS[arch].from_dict(checkpoint["config"]["model"]))
        network.load_state_dict(checkpoint["model"])
        classes = tuple(checkpoint["classes"])
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as e:
        raise inconsistent_checkpoint(path, e) from None
    device = device or torch.device("cpu")
    return LoadedClassifier(network.to(device).eval(), arch, classes, path, device)
