"""The one run recipe that language models, classifiers and autoencoders all train through: its start.

    start   device -> learning rate -> every input read and checked -> run folder (locked, staged)
            -> seed -> model size checked -> task -> config.json -> announce -> fit
    resume  (nlm/train/resume.py) run folder (locked) -> last.pt -> the settings that may change
            -> inputs found again -> task with its weights and state -> metrics.jsonl cut back -> fit on

Under torchrun (nlm/train/distributed.py) every process runs the recipe: rank 0 reads the inputs
first and alone holds the run folder, the others follow; each gets its `Shard` of the batches,
and a failure while setting up on any rank ends every rank there.  The run records its world size;
a resume needs the same one.

An application describes one run as a `Job` (what it reads, how it builds its model and task,
what config.json records); the recipe owns everything else, once: the lock, the transactional
`--force`, `--save-every`, divergence, running out of memory, signals, and what each failure
leaves on disk.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch import nn

from nlm.runtime import check_model_fits, pick_precision, seed_everything
from nlm.train.config import TrainConfig
from nlm.train.distributed import Ranks, join_processes
from nlm.train.optim import LR_KIND
from nlm.train.resume import resume_run
from nlm.train.rundir import RunFolder
from nlm.train.session import RunResult, TrainingSession, explain_failure, write_run_config
from nlm.train.shard import SINGLE, Shard
from nlm.train.task import Task


class Job(ABC):
    """What an application tells the recipe about one run; `start` trains it, `resume` continues a saved one.

    A subclass (LMJob, ClassifierJob, AutoencoderJob) gives its `kind` and `command`, reads its inputs
    in `load`, builds its model and task, and says what config.json records and what the
    announcement shows; `from_saved_run` rebuilds it from a run folder."""

    kind: str  # "lm" | "vision" | "autoencoder", as checkpoints record it
    command: str  # "nlm train", for the messages that tell a user what to run next
    default_lrs: dict[str, float] = {}  # the learning rate of each optimizer, where --lr is not given

    def default_lr(self, optimizer: str) -> float:
        return self.default_lrs[optimizer]

    @abstractmethod
    def load(self, run_dir: Path, train: TrainConfig) -> None:
        """Read and check every input; nothing is written yet."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model, on the CPU (or on the device of a `with torch.device(...)` around the call)."""

    @abstractmethod
    def build_task(self, model: nn.Module, device: torch.device, train: TrainConfig, shard: Shard = SINGLE) -> Task:
        """After seeding: the task that trains `model`, already on `device`."""

    @abstractmethod
    def run_config(self) -> dict[str, Any]:
        """What config.json records besides "train"."""

    @abstractmethod
    def describe(self, task: Task) -> list[str]:
        """The announcement, a line per part."""

    def fit(self, session: TrainingSession, task: Task, train: TrainConfig) -> RunResult:
        """Train: one session (a stacked autoencoder runs one per phase)."""
        return session(task, train)

    @classmethod
    @abstractmethod
    def from_saved_run(cls, run_config: dict, checkpoint: dict, changes: dict[str, Any], *, run_dir: Path) -> Job:
        """The job of a saved run, taking from `changes` the options about its inputs that it knows."""

    def start(
        self, *, output: Path, train: TrainConfig, force: bool = False, console: Console, quiet: bool = False
    ) -> RunResult:
        """Train a new model into the run folder `output`."""
        return start_run(self, output=output, force=force, train=train, console=console, quiet=quiet)

    @classmethod
    def resume(cls, *, run_dir: Path, changes: dict[str, Any], console: Console, quiet: bool = False) -> RunResult:
        """Continue the run in `run_dir` exactly where its last.pt stopped, with the `changes` a resume allows."""
        return resume_run(cls, run_dir=run_dir, changes=dict(changes), console=console, quiet=quiet)

    def new_task(self, device: torch.device, train: TrainConfig, shard: Shard = SINGLE) -> Task:
        """The model, checked to fit in memory before it is built, and its task."""
        model = check_model_fits(self.build_model, device)
        return self.build_task(model.to(device), device, train, shard)


def start_run(
    job: Job, *, output: Path, force: bool, train: TrainConfig, console: Console, quiet: bool = False
) -> RunResult:
    """Train a new model into `output` (replacing a run there only with `force`, once the new one has a checkpoint)."""
    output = Path(output)
    with join_processes() as ranks, ranks.quiet_followers(console):
        device = ranks.device(train.device)
        if train.lr is None:
            train = train.replace(lr=job.default_lr(LR_KIND.get(train.optimizer, train.optimizer)))
        train = train.with_default_epochs(job.kind)
        quiet = quiet or not ranks.lead
        train = train.replace(precision=pick_precision(train.precision, device))  # config.json names fp32 or bf16
        folder = None
        with ranks.agreed():  # rank 0 first: it reads (and caches) every input, and takes the run folder
            if ranks.lead:
                RunFolder.check_free(output, force=force)  # before the inputs: a vocabulary can take minutes
                job.load(output, train)
                folder = RunFolder.create(output, force=force)
        try:
            with ranks.agreed():
                if not ranks.lead:
                    job.load(output, train)
                seed_everything(train.seed)
                task = job.new_task(device, train, ranks.shard)
            if ranks.lead:
                record = {
                    "command": job.command,
                    **job.run_config(),
                    "train": train.to_dict(),
                    "world_size": ranks.world,
                }
                write_run_config(folder.path, record)
            if not quiet:
                _announce(console, job, task, train, device, ranks)
            return job.fit(TrainingSession(folder, device, console, quiet, ranks=ranks, run_dir=output), task, train)
        except BaseException as error:
            raise explain_failure(error, job.command, folder, output, ranks) from None
        finally:
            if folder is not None:
                folder.close()


def _announce(console: Console, job: Job, task: Task, train: TrainConfig, device: torch.device, ranks: Ranks) -> None:
    """The full configuration, on stderr before training starts."""
    for line in job.describe(task):
        console.print(line)
    console.print(f"train: {train.describe()}")
    parameters = sum(p.numel() for p in task.model.parameters())
    console.print(
        f"{parameters:,} parameters on {device}; {task.batches_per_epoch():,} batches per epoch"
        + (f"; {ranks.describe(device)}" if ranks.world > 1 else "")
    )
