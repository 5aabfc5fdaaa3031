"""`nlm autoencoder` as library calls: train (phase by phase on the shared trainer), resume, load, encode, reconstruct, filters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from nlm.autoencode.task import ReconstructConfig, ReconstructTask
from nlm.images.data import ImageSet, check_shape
from nlm.images.sources import ImageRun, announce, load_split, resumed_image_run
from nlm.models.autoencoder import Autoencoder, AutoencoderConfig
from nlm.runtime import pick_device, seed_everything, set_rng_state
from nlm.train.config import TrainConfig
from nlm.train.run import (
    RunResult,
    load_resume_point,
    prepare_run_dir,
    resumed_train_config,
    run_training,
    write_run_config,
)
from nlm.train.trainer import Progress

DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}  # faster rates kill ReLU code units
DEFAULT_HIDDEN = {"stacked": (256, 64)}  # every other kind: one layer of 64
DEFAULT_SPARSITY = {"sparse": 1e-3}  # every other kind: no penalty


def autoencoder_config(kind: str, *, hidden: tuple[int, ...] | None = None, sparsity: float | None = None,
                       **options) -> AutoencoderConfig:
    """The config of a `kind` autoencoder; a None hidden or sparsity takes the kind's default."""
    hidden = hidden or DEFAULT_HIDDEN.get(kind, (64,))
    sparsity = DEFAULT_SPARSITY.get(kind, 0.0) if sparsity is None else sparsity
    return AutoencoderConfig(kind=kind, hidden=tuple(hidden), sparsity=sparsity, **options)


NEXT_PHASE = ("finished", "early-stopping")  # how a phase ends that hands over to the next one


def _phase_done(progress: Progress, config: TrainConfig) -> bool:
    """Whether a phase saved with `progress` has nothing left to train (its epochs, or its patience, ran out)."""
    return progress.epoch >= config.epochs or (config.patience is not None and progress.bad_evals >= config.patience)


def _budget_spent(task: ReconstructTask, run_train: TrainConfig) -> str | None:
    """"max-steps" or "max-time" when the finished phases used up the run's budget, else None."""
    if run_train.max_steps is not None and task.steps_before >= run_train.max_steps:
        return "max-steps"
    if run_train.max_time is not None and task.seconds_before >= run_train.max_time:
        return "max-time"
    return None


def fit_phases(task: ReconstructTask, run_train: TrainConfig, *, run_dir: Path, device: torch.device, console: Console,
               quiet: bool, resume_from: dict | None = None) -> RunResult:
    """Run the task's phases from its current one to the last, one `Trainer.fit` each, into one run folder.

    A phase that finishes or stops early hands over to the next; one stopped by --max-steps or
    --max-time ends the run, and `--resume` continues that phase."""
    while True:
        config = task.phase_train_config(run_train)
        saved = Progress.from_dict(resume_from["trainer"]["progress"]) if resume_from else None
        if saved is not None and _phase_done(saved, config):  # saved at the end of a phase: go straight on
            set_rng_state(resume_from["rng"])
            result = RunResult(run_dir, saved, "finished", dict(resume_from.get("metrics") or {}))
        else:
            if not quiet and task.num_phases > 1:
                console.print(f"[bold]{task.phase_name()}[/]: training {'one layer' if task.pretraining else 'the whole network'}", markup=True)
            result = run_training(task, config, run_dir=run_dir, device=device, console=console, quiet=quiet,
                                  resume_from=resume_from, extra_config={"run_train": run_train.to_dict()})
        resume_from = None
        if task.phase == task.num_phases - 1 or result.stop_reason not in NEXT_PHASE:
            return result
        task.finish_phase(result.progress.global_step, result.progress.elapsed)
        spent = _budget_spent(task, run_train)
        if spent is not None:
            return replace(result, stop_reason=spent)


def train_autoencoder(*, run: ImageRun, model: AutoencoderConfig, data: ReconstructConfig, train: TrainConfig,
                      console: Console, quiet: bool = False, images: tuple[ImageSet, ImageSet | None] | None = None) -> RunResult:
    """Train a new autoencoder into `run.output`; `images` (train, valid) replaces loading `run`'s specs."""
    device = pick_device(train.device)
    train = train.replace(lr=train.lr or DEFAULT_LR[train.optimizer])
    train_set, valid_set = images or load_split(run, seed=train.seed)
    model = model.replace(input_size=int(np.prod(train_set.shape)))
    run_dir = prepare_run_dir(run.output, force=run.force)  # after every check: --force keeps the old run until then
    seed_everything(train.seed)
    task = ReconstructTask(model=Autoencoder(model).to(device), train=train_set, valid=valid_set, data=data,
                           device=device, seed=train.seed)
    config = {**run.to_dict(images), "model": model.to_dict(), "data": data.to_dict(), "train": train.to_dict()}
    write_run_config(run_dir, config)
    if not quiet:
        announce(console, task, config, device, train_set, valid_set)
    return fit_phases(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet)


def resume_autoencoder(*, run_dir: Path, overrides: dict, console: Console, quiet: bool = False,
                       data: str | None = None, valid: str | None = None) -> RunResult:
    """Continue the run in `run_dir` exactly where its last.pt stopped, in the phase it stopped in."""
    run_config, checkpoint = load_resume_point(run_dir, kind="autoencoder")
    config = checkpoint["config"]
    train = resumed_train_config(config.get("run_train", config["train"]), overrides)
    run = resumed_image_run(run_dir, run_config, data=data, valid=valid)
    device = pick_device(train.device)
    train_set, valid_set = load_split(run, seed=train.seed)
    check_shape(train_set, tuple(config["image_shape"]))
    network = Autoencoder(AutoencoderConfig.from_dict(config["model"]))
    network.load_state_dict(checkpoint["model"])
    task = ReconstructTask(model=network.to(device), train=train_set, valid=valid_set,
                           data=ReconstructConfig.from_dict(config["data"]), device=device, seed=train.seed)
    task.load_state_dict(checkpoint["trainer"]["task"])  # the phase first: the trainer's optimizer depends on it
    write_run_config(run_dir, {**run_config, **run.to_dict(), "train": train.to_dict()})
    if not quiet:
        p = checkpoint["trainer"]["progress"]
        console.print(f"resuming {run_dir} in phase {task.phase_name()} at epoch {p['epoch'] + 1}, batch {p['batch']}")
    return fit_phases(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet, resume_from=checkpoint)
