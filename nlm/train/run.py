"""The one run recipe that language models, classifiers and autoencoders all train through.

    start   device -> learning rate -> every input read and checked -> run folder (locked, staged)
            -> seed -> task -> config.json -> announce -> fit
    resume  run folder (locked) -> last.pt -> the settings that may change -> inputs found again
            -> task with its weights and state -> metrics.jsonl cut back to last.pt -> fit on
    finetune a resume of an NT-ASGD run that takes best.pt's averaged weights and restarts averaged
            SGD from them (nlm.train.averaging), its limits granted again

An application hands the recipe a `Job` (what it reads, how it builds its task, what
config.json records); the recipe owns everything else, once: the lock, the transactional
`--force`, `--save-every`, divergence, signals, and what each failure leaves on disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from rich.console import Console

from nlm import __version__
from nlm.errors import ConfigError, Interrupted, TrainingDivergedError
from nlm.io.atomic import write_text_atomic
from nlm.io.checkpoint import load_checkpoint
from nlm.runtime import pick_device, seed_everything, set_rng_state
from nlm.train.averaging import AveragedCheckpoint, NonMonotoneSwitch, WeightAveraging, finetune_changes
from nlm.train.callbacks import CheckpointCallback, ProgressCallback
from nlm.train.config import RESUMABLE, TrainConfig
from nlm.train.control import DivergenceGuard, EarlyStopping, LRSchedule
from nlm.train.optim import LR_KIND
from nlm.train.progress import Progress
from nlm.train.rundir import RunFolder
from nlm.train.trainer import Task, Trainer


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    progress: Progress
    stop_reason: str  # finished | max-steps | max-time | early-stopping | non-monotone (a fine-tuning stalled)
    metrics: dict[str, Any]  # the last evaluation


class Job(Protocol):
    """What an application tells the recipe about one run."""

    kind: str  # "lm" | "vision" | "autoencoder", as checkpoints record it
    command: str  # "nlm train", for the messages that tell a user what to run next

    def default_lr(self, optimizer: str) -> float: ...
    def load(self, run_dir: Path, train: TrainConfig) -> None: ...  # read and check every input; nothing written yet
    def build_task(self, device: torch.device, train: TrainConfig) -> Task: ...  # after seeding: the model and its task
    def run_config(self) -> dict[str, Any]: ...  # what config.json records besides "train"
    def describe(self, task: Task) -> list[str]: ...  # the announcement, a line per part
    def fit(self, fit_task: Callable[..., RunResult], task: Task, train: TrainConfig) -> RunResult: ...


@dataclass
class Fitting:
    """One session of training in a run folder: what `Job.fit` calls, once or once per phase."""

    folder: RunFolder
    device: torch.device
    console: Console
    quiet: bool
    resume_from: dict | None = None  # the checkpoint a resumed run continues from, used once
    lr: float | None = None  # a learning rate given on resume, which replaces the saved one from now on
    finetune: bool = False  # restart averaged SGD from the weights in the model (best.pt's), used once

    def __call__(self, task: Task, train: TrainConfig, *, extra_config: dict | None = None) -> RunResult:
        switch = NonMonotoneSwitch(train, console=None if self.quiet else self.console) if train.optimizer == "ntasgd" else None
        callbacks = [WeightAveraging()] if switch else []  # first: the averages are out again before anyone reads the model
        callbacks += [DivergenceGuard(task.uniform_loss), LRSchedule(train), *([switch] if switch else [])]
        callbacks += [EarlyStopping(train.patience)] if train.patience else []
        callbacks.append((AveragedCheckpoint if switch else CheckpointCallback)(
            self.folder, extra_config=extra_config, every_steps=train.save_every, every_seconds=train.save_every_seconds))
        callbacks += [] if self.quiet else [ProgressCallback(self.console, describe=task.describe)]
        trainer = Trainer(task, train, device=self.device, callbacks=callbacks)
        saved, self.resume_from = self.resume_from, None
        if saved is not None:
            if switch:
                switch.resume(trainer, saved["trainer"])
            trainer.load_state_dict(saved["trainer"])
            trainer.last_metrics = dict(saved.get("metrics") or {})
            for group in trainer.optimizer.param_groups if self.lr is not None else ():
                group["lr"] = self.lr
            set_rng_state(saved["rng"])
        if switch and self.finetune:
            switch.start_finetuning(trainer)
            self.finetune = False
        progress = trainer.fit()
        return RunResult(self.folder.root, progress, trainer.stop_reason or "finished", trainer.last_metrics)


def start_run(job: Job, *, output: Path, force: bool, train: TrainConfig, console: Console, quiet: bool = False) -> RunResult:
    """Train a new model into `output` (replacing a run there only with `force`, and only once the new one has a checkpoint)."""
    device = pick_device(train.device)
    train = train if train.lr is not None else train.replace(lr=job.default_lr(LR_KIND.get(train.optimizer, train.optimizer)))
    if train.bf16 and device.type != "cuda":
        console.print(f"warning: --bf16 applies on CUDA only; training in float32 on {device.type}")
    job.load(Path(output), train)
    folder = RunFolder.create(Path(output), force=force)
    with folder:
        try:
            seed_everything(train.seed)
            task = job.build_task(device, train)
            write_run_config(folder.path, {"command": job.command, **job.run_config(), "train": train.to_dict()})
            if not quiet:
                _announce(console, job, task, train, device)
            return job.fit(Fitting(folder, device, console, quiet), task, train)
        except BaseException as error:
            raise _explained(error, job, folder) from None


def resume_run(job_type: Callable[..., Job], *, run_dir: Path, changes: dict[str, Any], console: Console,
               quiet: bool = False) -> RunResult:
    """Continue the run in `run_dir` from its last.pt, with the `changes` a resume allows (the rest is an error).
    `finetune=True` among the changes fine-tunes an NT-ASGD run instead (see the module docstring)."""
    changes = dict(changes)
    finetune = bool(changes.pop("finetune", False))
    with RunFolder.open(Path(run_dir)) as folder:
        checkpoint = load_checkpoint(folder.root / "last.pt", kind=getattr(job_type, "kind", None))
        run_config = json.loads((folder.root / "config.json").read_text()) if (folder.root / "config.json").exists() else {}
        job = job_type.resumed(run_config, checkpoint, changes, run_dir=folder.root)  # takes the data options it knows
        saved = checkpoint["config"].get("run_train", checkpoint["config"]["train"])  # a phase's run_train
        p = Progress.from_dict(checkpoint["trainer"]["progress"])
        if finetune:
            changes = finetune_changes(TrainConfig.from_dict(saved), p, changes, run_dir=folder.root)
            run_config["finetune"] = [*run_config.get("finetune", []), {"epoch": p.epoch, "step": p.global_step, "best_loss": p.best_loss}]
        train, changed = resumed_train_config(saved, changes)
        device = pick_device(train.device)
        job.load(folder.root, train)
        task = job.build_task(device, train)
        weights = load_checkpoint(folder.root / "best.pt", kind=getattr(job_type, "kind", None)) if finetune else checkpoint
        task.model.load_state_dict(weights["model"])
        task.load_state_dict(checkpoint["trainer"]["task"])  # before the trainer: what it trains can depend on it (a phase)
        dropped = folder.truncate_metrics(p.global_step)
        write_run_config(folder.root, {**run_config, **job.run_config(), "train": train.to_dict()})
        if not quiet:
            what = f"fine-tuning {folder.root} from best.pt (loss {p.best_loss:.4f}, epoch {p.best_epoch + 1}) with a fresh averaged " \
                   f"SGD at lr {train.lr:g}, from" if finetune else f"resuming {folder.root} at"
            console.print(f"{what} epoch {p.epoch + 1}, batch {p.batch} (step {p.global_step})"
                          + "".join(f"; {name} {value}" for name, value in changed.items())
                          + (f"; {dropped} metrics line(s) after last.pt dropped" if dropped else ""))
        try:
            fitting = Fitting(folder, device, console, quiet, resume_from=checkpoint, lr=changes.get("lr"), finetune=finetune)
            return job.fit(fitting, task, train)
        except BaseException as error:
            raise _explained(error, job, folder) from None


def resumed_train_config(saved: dict, changes: dict[str, Any]) -> tuple[TrainConfig, dict[str, str]]:
    """The saved TrainConfig with the changes a resume allows; a ConfigError names any other option given."""
    refused = sorted(name for name in changes if name not in RESUMABLE)
    if refused:
        names = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed = ", ".join("--" + n.replace("_", "-") for n in RESUMABLE if n not in ("save_every_seconds", "log_every"))
        raise ConfigError(f"{names} cannot change when resuming (part of the run's model, data or vocabulary); only {allowed} can")
    config = TrainConfig.from_dict(saved)
    changed = {"--" + k.replace("_", "-"): f"{getattr(config, k)} -> {v}" for k, v in changes.items() if getattr(config, k) != v}
    return config.replace(**changes), changed


def write_run_config(folder: Path, config: dict[str, Any]) -> None:
    write_text_atomic(folder / "config.json", json.dumps({"nlm_version": __version__, **config}, indent=2) + "\n")


def _announce(console: Console, job: Job, task: Task, train: TrainConfig, device: torch.device) -> None:
    """The full configuration, on stderr before training starts."""
    for line in job.describe(task):
        console.print(line)
    console.print(f"train: {train.to_dict()}")
    parameters = sum(p.numel() for p in task.model.parameters())
    console.print(f"{parameters:,} parameters on {device}; {task.batches_per_epoch():,} batches per epoch")


def _explained(error: BaseException, job: Job, folder: RunFolder) -> BaseException:
    """The error to report, saying what it left on disk; a run that wrote no checkpoint leaves nothing."""
    if not folder.published:
        folder.abandon()
    where = folder.root
    if isinstance(error, Interrupted):
        return Interrupted(f"{error}: training stopped and was saved in {where}/last.pt; "
                           f"`{job.command} --resume {where}` continues it", exit_code=error.exit_code)
    if isinstance(error, KeyboardInterrupt):  # before training began, or a second Ctrl-C: out at once, no save
        saved = f"{where}/last.pt is from the last save" if folder.published else "nothing of this run was kept"
        return Interrupted(f"interrupted: stopped at once; {saved}", exit_code=130)
    if isinstance(error, TrainingDivergedError):
        kept = (f"the checkpoints written before it in {where} were kept" if folder.published else
                "no checkpoint had been written, so nothing of this run was kept"
                + (f" (the run already in {where} is unchanged)" if where.exists() and any(where.iterdir()) else ""))
        return TrainingDivergedError(f"{error}; {kept}; try a lower --lr or a smaller --clip")
    return error
