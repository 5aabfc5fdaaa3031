"""One session of training in a run folder, and how its failures are reported.

A `TrainingSession` is what a job's `fit` calls, once (or once per phase, for a stacked
autoencoder): it assembles the callbacks, builds the trainer, restores a resumed run's state
and fits.  `explain_failure` turns what stopped a session into the one line a user reads,
saying what was kept on disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from nlm import __version__
from nlm.errors import Interrupted, OutOfMemoryError, TrainingDivergedError
from nlm.io.atomic import write_text_atomic
from nlm.runtime import is_out_of_memory, out_of_memory, set_rng_state
from nlm.train.averaging import AveragedCheckpoint, NonMonotoneSwitch, WeightAveraging
from nlm.train.callbacks import CheckpointCallback, ProgressCallback
from nlm.train.config import TrainConfig, stop_words
from nlm.train.control import DivergenceGuard, EarlyStopping, LRSchedule
from nlm.train.distributed import Ranks, build_trainer
from nlm.train.progress import Progress
from nlm.train.rundir import RunFolder
from nlm.train.task import Task


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    progress: Progress
    # the limit that ended the run (epochs, max-steps, max-time) or what else did (early-stopping, non-monotone)
    stop_reason: str
    metrics: dict[str, Any]  # the last evaluation
    train: TrainConfig | None = None  # the limits it ran under

    def stop_line(self) -> str:
        """The line that ends a training command: what stopped the run, where, and its best loss."""
        p = self.progress
        why = self.stop_reason if self.train is None else stop_words(self.stop_reason, self.train)
        best = f"best loss {p.best_loss:.4f} (epoch {p.best_epoch + 1})" if p.best_epoch >= 0 else "no evaluation"
        return (
            f"stopped ({why}) after {p.global_step:,} steps, {p.elapsed:.1f} s of training; {best}; "
            f"run in {self.run_dir}"
        )


@dataclass
class TrainingSession:
    """One session of training in a run folder: what `Job.fit` calls, once or once per phase."""

    folder: RunFolder | None  # None in ranks > 0 of a distributed run: rank 0 alone writes the run
    device: torch.device
    console: Console
    quiet: bool
    resume_from: dict | None = None  # the checkpoint a resumed run continues from, used once
    lr: float | None = None  # a learning rate given on resume, which replaces the saved one from now on
    finetune: bool = False  # restart averaged SGD from the weights in the model (best.pt's), used once
    ranks: Ranks = Ranks()  # the processes training together (one without torchrun)
    run_dir: Path | None = None  # the run folder's path (ranks > 0 have no RunFolder)

    @property
    def root(self) -> Path:
        return self.run_dir if self.folder is None else self.folder.root

    def callbacks(self, task: Task, train: TrainConfig, switch: NonMonotoneSwitch | None, extra_config: dict) -> list:
        callbacks = []
        if switch is not None:
            callbacks.append(WeightAveraging())  # first: the averages are out again before anyone reads the model
        callbacks += [DivergenceGuard(task.uniform_loss), LRSchedule(train)]
        if switch is not None:
            callbacks.append(switch)
        if train.patience:
            callbacks.append(EarlyStopping(train.patience))
        if self.folder is not None:
            checkpoint = AveragedCheckpoint if switch is not None else CheckpointCallback
            callbacks.append(
                checkpoint(
                    self.folder,
                    extra_config={**extra_config, "world_size": self.ranks.world},
                    every_steps=train.save_every,
                    every_seconds=train.save_every_seconds,
                    console=None if self.quiet else self.console,
                )
            )
        if not self.quiet:
            callbacks.append(ProgressCallback(self.console, describe=task.describe))
        return callbacks

    def __call__(self, task: Task, train: TrainConfig, *, extra_config: dict | None = None) -> RunResult:
        switch = None
        if train.optimizer == "ntasgd":
            switch = NonMonotoneSwitch(train, console=None if self.quiet else self.console)
        callbacks = self.callbacks(task, train, switch, extra_config or {})
        trainer = build_trainer(task, train, device=self.device, callbacks=callbacks, ranks=self.ranks)
        saved, self.resume_from = self.resume_from, None
        if saved is not None:
            if switch:
                switch.resume(trainer, saved["trainer"])
            trainer.load_state_dict(saved["trainer"])
            trainer.last_metrics = dict(saved.get("metrics") or {})
            if self.lr is not None:
                for group in trainer.optimizer.param_groups:
                    group["lr"] = self.lr
            set_rng_state(saved["rng"])
        if switch and self.finetune:
            switch.start_finetuning(trainer)
            self.finetune = False
        progress = trainer.fit()
        return RunResult(self.root, progress, trainer.stop_reason or "epochs", trainer.last_metrics, train)


def write_run_config(folder: Path, config: dict[str, Any]) -> None:
    write_text_atomic(folder / "config.json", json.dumps({"nlm_version": __version__, **config}, indent=2) + "\n")


def explain_failure(
    error: BaseException, command: str, folder: RunFolder | None, where: Path, ranks: Ranks
) -> BaseException:
    """The error to report, saying what it left on disk; a run that wrote no checkpoint leaves nothing."""
    if folder is None:  # a rank > 0 of a distributed run: rank 0 says what is on disk
        if isinstance(error, Interrupted):
            return Interrupted(
                f"{error}: process {ranks.rank} stopped with the others, and rank 0 saved the run",
                exit_code=error.exit_code,
            )
        if isinstance(error, KeyboardInterrupt):
            return Interrupted("interrupted: stopped at once", exit_code=130)
        return error
    if not folder.published:
        folder.abandon()
    if isinstance(error, Interrupted):
        how = f" under torchrun with {ranks.world} processes" if ranks.world > 1 else ""
        return Interrupted(
            f"{error}: training stopped and was saved in {where}/last.pt; "
            f"`{command} --resume {where}`{how} continues it",
            exit_code=error.exit_code,
        )
    if isinstance(error, KeyboardInterrupt):  # before training began, or a second Ctrl-C: out at once, no save
        saved = f"{where}/last.pt is from the last save" if folder.published else "nothing of this run was kept"
        return Interrupted(f"interrupted: stopped at once; {saved}", exit_code=130)
    if isinstance(error, TrainingDivergedError):
        return TrainingDivergedError(f"{error}; {_kept(folder, where)}; try a lower --lr or a smaller --clip")
    if is_out_of_memory(error):
        oom = out_of_memory(error, f"while training in {where}")
        return OutOfMemoryError(f"{oom}; {_kept(folder, where)}; try a smaller --batch-size or a smaller model")
    return error


def _kept(folder: RunFolder, where: Path) -> str:
    """What a failed run left: its checkpoints, or nothing (and the run it would have replaced, unchanged)."""
    if folder.published:
        return f"the checkpoints written before it in {where} were kept"
    unchanged = f" (the run already in {where} is unchanged)" if where.exists() and any(where.iterdir()) else ""
    return "no checkpoint had been written, so nothing of this run was kept" + unchanged
