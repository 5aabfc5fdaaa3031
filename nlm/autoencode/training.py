"""`nlm autoencoder train` as a library call: the autoencoder's part of the run recipe, phase by phase.

A stacked autoencoder trains in phases (layer 1 .. layer K, then fine-tuning), each one
fit of the shared trainer into the same run folder: a phase that finishes or stops early
hands over to the next; one stopped by --max-steps or --max-time ends the run, and
`--resume` continues that phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlm.autoencode.task import ReconstructConfig, ReconstructTask
from nlm.images.data import ImageSet, check_shape
from nlm.images.sources import ImageSources, describe_images
from nlm.models.autoencoder import Autoencoder, AutoencoderConfig
from nlm.runtime import set_rng_state
from nlm.train.config import TrainConfig
from nlm.train.progress import Progress
from nlm.train.run import Job
from nlm.train.session import RunResult, TrainingSession
from nlm.train.shard import SINGLE, Shard

DEFAULT_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3}  # faster rates kill ReLU code units
DEFAULT_HIDDEN = {"stacked": (256, 64)}  # every other kind: one layer of 64
DEFAULT_SPARSITY = {"sparse": 1e-3}  # every other kind: no penalty
NEXT_PHASE = ("epochs", "early-stopping")  # how a phase ends that hands over to the next one


def autoencoder_config(
    kind: str, *, hidden: tuple[int, ...] | None = None, sparsity: float | None = None, **options
) -> AutoencoderConfig:
    """The config of a `kind` autoencoder; a None hidden or sparsity takes the kind's default."""
    hidden = hidden or DEFAULT_HIDDEN.get(kind, (64,))
    sparsity = DEFAULT_SPARSITY.get(kind, 0.0) if sparsity is None else sparsity
    return AutoencoderConfig(kind=kind, hidden=tuple(hidden), sparsity=sparsity, **options)


def _phase_done(progress: Progress, config: TrainConfig) -> bool:
    """Whether a phase saved with `progress` has nothing left to train (its epochs, or its patience, ran out)."""
    limit = config.epoch_limit
    return (limit is not None and progress.epoch >= limit) or (
        config.patience is not None and progress.bad_evals >= config.patience
    )


def _budget_spent(task: ReconstructTask, run_train: TrainConfig) -> str | None:
    """ "max-steps" or "max-time" when the finished phases used up the run's budget, else None."""
    if run_train.max_steps is not None and task.steps_before >= run_train.max_steps:
        return "max-steps"
    if run_train.max_time is not None and task.seconds_before >= run_train.max_time:
        return "max-time"
    return None


def _whole_run(result: RunResult, task: ReconstructTask, train: TrainConfig, *, finished: bool = False) -> RunResult:
    """A phase's result as the run's: the steps and seconds of every phase (`finished`: the phase's are in them)."""
    p = result.progress
    steps, seconds = (0, 0.0) if finished else (p.global_step, p.elapsed)
    progress = replace(p, global_step=task.steps_before + steps, elapsed=task.seconds_before + seconds)
    return replace(result, progress=progress, train=train)


@dataclass
class AutoencoderJob(Job):
    """One autoencoder run: its images and configs; `load` fills in the rest."""

    model: AutoencoderConfig
    data: ReconstructConfig
    sources: ImageSources = field(default_factory=ImageSources)
    images: tuple[ImageSet, ImageSet | None] | None = None  # images handed over by a program instead of `sources`
    records: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int, int] | None = None  # a resumed run's: the images must have it

    kind = "autoencoder"
    command = "nlm autoencoder train"
    default_lrs = DEFAULT_LR

    def load(self, run_dir: Path, train: TrainConfig) -> None:
        self.images, self.records = self.sources.load_for_run(
            self.images, self.records, run_dir=run_dir, seed=train.seed
        )
        if self.image_shape is not None:
            check_shape(self.images[0], self.image_shape)
        if self.model.input_size != int(np.prod(self.images[0].shape)):
            self.model = self.model.replace(input_size=int(np.prod(self.images[0].shape)))

    def build_model(self) -> Autoencoder:
        return Autoencoder(self.model)

    def build_task(
        self, model: Autoencoder, device: torch.device, train: TrainConfig, shard: Shard = SINGLE
    ) -> ReconstructTask:
        train_set, valid_set = self.images
        return ReconstructTask(
            model=model,
            train=train_set,
            valid=valid_set,
            data=self.data,
            device=device,
            seed=train.seed,
            shard=shard,
        )

    def run_config(self) -> dict[str, Any]:
        return {**self.records, "model": self.model.to_dict(), "data": self.data.to_dict()}

    def describe(self, task: ReconstructTask) -> list[str]:
        return [
            f"model: autoencoder {self.model.describe()}",
            f"data: {self.data.describe()}; {describe_images(*self.images)}",
        ]

    def fit(self, session: TrainingSession, task: ReconstructTask, train: TrainConfig) -> RunResult:
        """Run the phases from the task's current one to the last, one fit of the trainer each."""
        while True:
            config = task.phase_train_config(train)
            saved = session.resume_from
            if saved is not None and _phase_done(Progress.from_dict(saved["trainer"]["progress"]), config):
                set_rng_state(saved["rng"])  # saved at the end of a phase: go straight on to the next
                session.resume_from = None
                result = RunResult(
                    session.root,
                    Progress.from_dict(saved["trainer"]["progress"]),
                    "epochs",
                    dict(saved.get("metrics") or {}),
                    config,
                )
            else:
                if not session.quiet and (task.num_phases > 1 or task.model.config.sparsity):  # loss is not mse
                    session.console.print(f"{task.phase_name()}: {task.phase_metrics()}")
                result = session(task, config, extra_config={"run_train": train.to_dict()})
            if task.phase == task.num_phases - 1 or result.stop_reason not in NEXT_PHASE:
                return _whole_run(result, task, train)
            task.finish_phase(result.progress.global_step, result.progress.elapsed)
            spent = _budget_spent(task, train)
            if spent is not None:
                return _whole_run(replace(result, stop_reason=spent), task, train, finished=True)

    @classmethod
    def from_saved_run(
        cls, run_config: dict, checkpoint: dict, changes: dict[str, Any], *, run_dir: Path
    ) -> AutoencoderJob:
        config = checkpoint["config"]
        sources = ImageSources.resumed(run_config, changes, run_dir=run_dir)
        return cls(
            model=AutoencoderConfig.from_dict(config["model"]),
            data=ReconstructConfig.from_dict(config["data"]),
            sources=sources,
            records=sources.records(run_dir),
            image_shape=tuple(config["image_shape"]),
        )
