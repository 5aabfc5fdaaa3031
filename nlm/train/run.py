"""The one run recipe that language models, classifiers and autoencoders all train through.

    start   device -> learning rate -> every input read and checked -> run folder (locked, staged)
            -> seed -> task -> config.json -> announce -> fit
    resume  run folder (locked) -> last.pt -> the settings that may change -> inputs found again
            -> task with its weights and state -> metrics.jsonl cut back to last.pt -> fit on
    finetune a resume of an NT-ASGD run that takes best.pt's averaged weights and restarts averaged
            SGD from them (nlm.train.averaging), its limits granted again

Under torchrun (nlm/train/distributed.py) every process runs the recipe: rank 0 reads the inputs
first and alone holds the run folder, the others follow; each gets its `Shard` of the batches,
and a failure while setting up on any rank ends every rank there.  The run records its world size;
a resume needs the same one.

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
from nlm.runtime import pick_precision, seed_everything, set_rng_state
from nlm.train.averaging import AveragedCheckpoint, NonMonotoneSwitch, WeightAveraging, finetune_changes
from nlm.train.callbacks import CheckpointCallback, ProgressCallback
from nlm.train.config import RESUMABLE, TrainConfig
from nlm.train.control import DivergenceGuard, EarlyStopping, LRSchedule
from nlm.train.distributed import Ranks, build_trainer, join_processes
from nlm.train.optim import LR_KIND
from nlm.train.progress import Progress
from nlm.train.rundir import RunFolder
from nlm.train.shard import Shard
from nlm.train.trainer import Task


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
    def build_task(
        self, device: torch.device, train: TrainConfig, shard: Shard
    ) -> Task: ...  # after seeding: the model, its task
    def run_config(self) -> dict[str, Any]: ...  # what config.json records besides "train"
    def describe(self, task: Task) -> list[str]: ...  # the announcement, a line per part
    def fit(self, fit_task: Callable[..., RunResult], task: Task, train: TrainConfig) -> RunResult: ...


@dataclass
class Fitting:
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

    def __call__(self, task: Task, train: TrainConfig, *, extra_config: dict | None = None) -> RunResult:
        switch = (
            NonMonotoneSwitch(train, console=None if self.quiet else self.console)
            if train.optimizer == "ntasgd"
            else None
        )
        callbacks = (
            [WeightAveraging()] if switch else []
        )  # first: the averages are out again before anyone reads the model
        callbacks += [DivergenceGuard(task.uniform_loss), LRSchedule(train), *([switch] if switch else [])]
        callbacks += [EarlyStopping(train.patience)] if train.patience else []
        if self.folder is not None:
            callbacks.append(
                (AveragedCheckpoint if switch else CheckpointCallback)(
                    self.folder,
                    extra_config={**(extra_config or {}), "world_size": self.ranks.world},
                    every_steps=train.save_every,
                    every_seconds=train.save_every_seconds,
                )
            )
        callbacks += [] if self.quiet else [ProgressCallback(self.console, describe=task.describe)]
        trainer = build_trainer(task, train, device=self.device, callbacks=callbacks, ranks=self.ranks)
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
        return RunResult(self.root, progress, trainer.stop_reason or "finished", trainer.last_metrics)


def start_run(
    job: Job, *, output: Path, force: bool, train: TrainConfig, console: Console, quiet: bool = False
) -> RunResult:
    """Train a new model into `output` (replacing a run there only with `force`, and only once the new one has a checkpoint)."""
    output = Path(output)
    with join_processes() as ranks, ranks.quiet_followers(console):
        device = ranks.device(train.device)
        train = (
            train
            if train.lr is not None
            else train.replace(lr=job.default_lr(LR_KIND.get(train.optimizer, train.optimizer)))
        )
        quiet = quiet or not ranks.lead
        train = train.replace(precision=pick_precision(train.precision, device))  # config.json names fp32 or bf16
        folder = None
        with ranks.agreed():  # rank 0 first: it reads (and caches) every input, and takes the run folder
            if ranks.lead:
                job.load(output, train)
                folder = RunFolder.create(output, force=force)
        try:
            with ranks.agreed():
                if not ranks.lead:
                    job.load(output, train)
                seed_everything(train.seed)
                task = job.build_task(device, train, ranks.shard)
            if ranks.lead:
                write_run_config(
                    folder.path,
                    {"command": job.command, **job.run_config(), "train": train.to_dict(), "world_size": ranks.world},
                )
            if not quiet:
                _announce(console, job, task, train, device, ranks)
            return job.fit(Fitting(folder, device, console, quiet, ranks=ranks, run_dir=output), task, train)
        except BaseException as error:
            raise _explained(error, job, folder, output, ranks) from None
        finally:
            if folder is not None:
                folder.close()


def resume_run(
    job_type: Callable[..., Job], *, run_dir: Path, changes: dict[str, Any], console: Console, quiet: bool = False
) -> RunResult:
    """Continue the run in `run_dir` from its last.pt, with the `changes` a resume allows (the rest is an error).
    `finetune=True` among the changes fine-tunes an NT-ASGD run instead (see the module docstring)."""
    run_dir, changes = Path(run_dir), dict(changes)
    finetune = bool(changes.pop("finetune", False))
    with join_processes() as ranks, ranks.quiet_followers(console):
        quiet = quiet or not ranks.lead
        folder = None
        with ranks.agreed():  # rank 0 takes the folder (and finishes what a killed run left) before anyone reads it
            folder = RunFolder.open(run_dir) if ranks.lead else None
        try:
            with ranks.agreed():
                r = _resumed_task(job_type, run_dir, changes, ranks, finetune=finetune)
            if ranks.lead:
                _record_resume(folder, r, ranks, console=None if quiet else console)
            fitting = Fitting(
                folder,
                r.device,
                console,
                quiet,
                resume_from=r.checkpoint,
                lr=r.changes.get("lr"),
                finetune=finetune,
                ranks=ranks,
                run_dir=run_dir,
            )
            try:
                return r.job.fit(fitting, r.task, r.train)
            except BaseException as error:
                raise _explained(error, r.job, folder, run_dir, ranks) from None
        finally:
            if folder is not None:
                folder.close()


@dataclass
class _Resumed:
    job: Job
    task: Task  # with the saved weights and state
    train: TrainConfig  # the saved one with the changes
    changed: dict[str, str]  # "--lr": "20 -> 5", for the message
    checkpoint: dict
    run_config: dict  # config.json as the run left it
    device: torch.device
    changes: dict[str, Any]  # what was asked for (with a fine-tuning's limits granted again)
    finetune: bool


def _resumed_task(
    job_type: Callable[..., Job], run_dir: Path, changes: dict[str, Any], ranks: Ranks, *, finetune: bool
) -> _Resumed:
    """The job and the task of a resumed run, from its last.pt (best.pt's weights to fine-tune) and config.json."""
    checkpoint = load_checkpoint(run_dir / "last.pt", kind=getattr(job_type, "kind", None))
    check_world_size(checkpoint["config"].get("world_size", 1), ranks.world, run_dir)
    run_config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    job = job_type.resumed(run_config, checkpoint, changes, run_dir=run_dir)  # takes the data options it knows
    saved = checkpoint["config"].get("run_train", checkpoint["config"]["train"])  # a phase's run_train
    if finetune:
        p = Progress.from_dict(checkpoint["trainer"]["progress"])
        changes = finetune_changes(TrainConfig.from_dict(saved), p, changes, run_dir=run_dir)
        run_config["finetune"] = [
            *run_config.get("finetune", []),
            {"epoch": p.epoch, "step": p.global_step, "best_loss": p.best_loss},
        ]
    train, changed = resumed_train_config(saved, changes)
    device = ranks.device(train.device)
    train = train.replace(precision=pick_precision(train.precision, device))
    job.load(run_dir, train)
    task = job.build_task(device, train, ranks.shard)
    weights = load_checkpoint(run_dir / "best.pt", kind=getattr(job_type, "kind", None)) if finetune else checkpoint
    task.model.load_state_dict(weights["model"])
    task.load_state_dict(checkpoint["trainer"]["task"])  # before the trainer: what it trains can depend on it (a phase)
    return _Resumed(job, task, train, changed, checkpoint, run_config, device, changes, finetune)


def _record_resume(folder: RunFolder, r: _Resumed, ranks: Ranks, *, console: Console | None) -> None:
    """Rank 0's part of a resume: metrics.jsonl cut back to last.pt, config.json rewritten, a line saying where it resumes."""
    p = Progress.from_dict(r.checkpoint["trainer"]["progress"])
    dropped = folder.truncate_metrics(p.global_step)
    write_run_config(
        folder.root, {**r.run_config, **r.job.run_config(), "train": r.train.to_dict(), "world_size": ranks.world}
    )
    if console is not None:
        what = (
            f"fine-tuning {folder.root} from best.pt (loss {p.best_loss:.4f}, epoch {p.best_epoch + 1}) with a fresh averaged "
            f"SGD at lr {r.train.lr:g}, from"
            if r.finetune
            else f"resuming {folder.root} at"
        )
        console.print(
            f"{what} epoch {p.epoch + 1}, batch {p.batch} (step {p.global_step})"
            + "".join(f"; {name} {value}" for name, value in r.changed.items())
            + (f"; {dropped} metrics line(s) after last.pt dropped" if dropped else "")
        )


def check_world_size(saved: int, world: int, run_dir: Path) -> None:
    """A run resumes on as many processes as trained it: its batch position and hidden states are split that way."""
    if saved == world:
        return
    trained = "one process" if saved == 1 else f"{saved} processes"
    how = (
        "without torchrun"
        if saved == 1
        else f"under torchrun with {saved} processes in all (--nnodes x --nproc-per-node)"
    )
    raise ConfigError(f"{run_dir} was trained by {trained}, not {world}; resume it {how}")


def resumed_train_config(saved: dict, changes: dict[str, Any]) -> tuple[TrainConfig, dict[str, str]]:
    """The saved TrainConfig with the changes a resume allows; a ConfigError names any other option given."""
    refused = sorted(name for name in changes if name not in RESUMABLE)
    if refused:
        names = ", ".join("--" + name.replace("_", "-") for name in refused)
        allowed = ", ".join(
            "--" + n.replace("_", "-") for n in RESUMABLE if n not in ("save_every_seconds", "log_every")
        )
        raise ConfigError(
            f"{names} cannot change when resuming (part of the run's model, data or vocabulary); only {allowed} can"
        )
    config = TrainConfig.from_dict(saved)
    changed = {
        "--" + k.replace("_", "-"): f"{getattr(config, k)} -> {v}"
        for k, v in changes.items()
        if getattr(config, k) != v
    }
    return config.replace(**changes), changed


def write_run_config(folder: Path, config: dict[str, Any]) -> None:
    write_text_atomic(folder / "config.json", json.dumps({"nlm_version": __version__, **config}, indent=2) + "\n")


def _announce(console: Console, job: Job, task: Task, train: TrainConfig, device: torch.device, ranks: Ranks) -> None:
    """The full configuration, on stderr before training starts."""
    for line in job.describe(task):
        console.print(line)
    console.print(f"train: {train.to_dict()}")
    parameters = sum(p.numel() for p in task.model.parameters())
    console.print(
        f"{parameters:,} parameters on {device}; {task.batches_per_epoch():,} batches per epoch"
        + (f"; {ranks.describe(device)}" if ranks.world > 1 else "")
    )


def _explained(error: BaseException, job: Job, folder: RunFolder | None, where: Path, ranks: Ranks) -> BaseException:
    """The error to report, saying what it left on disk; a run that wrote no checkpoint leaves nothing."""
    if folder is None:  # a rank > 0 of a distributed run: rank 0 says what is on disk
        if isinstance(error, Interrupted):
            return Interrupted(
                f"{error}: process {ranks.rank} stopped with the others, and rank 0 saved the run",
                exit_code=error.exit_code,
            )
        return (
            Interrupted("interrupted: stopped at once", exit_code=130)
            if isinstance(error, KeyboardInterrupt)
            else error
        )
    if not folder.published:
        folder.abandon()
    if isinstance(error, Interrupted):
        how = f" under torchrun with {ranks.world} processes" if ranks.world > 1 else ""
        return Interrupted(
            f"{error}: training stopped and was saved in {where}/last.pt; "
            f"`{job.command} --resume {where}`{how} continues it",
            exit_code=error.exit_code,
        )
    if isinstance(error, KeyboardInterrupt):  # before training began, or a second Ctrl-C: out at once, no save
        saved = f"{where}/last.pt is from the last save" if folder.published else "nothing of this run was kept"
        return Interrupted(f"interrupted: stopped at once; {saved}", exit_code=130)
    if isinstance(error, TrainingDivergedError):
        kept = (
            f"the checkpoints written before it in {where} were kept"
            if folder.published
            else "no checkpoint had been written, so nothing of this run was kept"
            + (f" (the run already in {where} is unchanged)" if where.exists() and any(where.iterdir()) else "")
        )
        return TrainingDivergedError(f"{error}; {kept}; try a lower --lr or a smaller --clip")
    return error
