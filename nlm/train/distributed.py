"""Data-parallel training across the processes torchrun starts: ranks, devices, DDP, and what they must agree on.

    torchrun --nproc-per-node N -m nlm train ...   ->   N processes: RANK 0..N-1, WORLD_SIZE, LOCAL_RANK

Every process builds the same model from the same seed and reads the same data; each trains on
its block of every global batch (nlm/train/shard.py, which the recipe gives the task), and
DistributedDataParallel averages the gradients, so N processes take the steps one process would
take with the same --batch-size (up to the order of summation).  Rank 0 alone writes the run
folder and prints.  What depends on one process alone (a signal, its clock) is agreed after every
step by one all-reduce, so every rank stops at the same step; losses and evaluations are
all-reduced, so every rank takes the same best/plateau/early-stop/divergence decisions.
Without torchrun (WORLD_SIZE unset or 1) there is no process group and nothing here acts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from nlm.errors import ConfigError, DeviceError, Interrupted, NLMError, TrainingDivergedError
from nlm.runtime import pick_device
from nlm.train.hooks import Callback
from nlm.train.shard import Shard
from nlm.train.signals import StopSignals
from nlm.train.trainer import Trainer

STOP_REASONS = (None, "max-steps", "max-time", "interrupted")  # agreed by their largest index over the ranks
SHARED_ERRORS = (Interrupted, KeyboardInterrupt, TrainingDivergedError)  # every rank stops with them, at the same step
REPEAT_WINDOW = 1.0  # seconds in which a repeated signal is the same request (the terminal's and torchrun's copies)


@dataclass(frozen=True)
class Ranks:
    """The processes of one run, as this one sees them."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # this process's number on its node: its GPU

    @property
    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    @property
    def lead(self) -> bool:
        """Whether this process writes the run folder and prints (rank 0)."""
        return self.rank == 0

    def device(self, name: str) -> torch.device:
        """The device of this process: `pick_device` alone; under torchrun, cuda:LOCAL_RANK or the CPU."""
        if self.world == 1:
            return pick_device(name)
        if name == "mps" or name.startswith("cuda:"):
            raise ConfigError(
                f"--device {name} cannot be shared by {self.world} processes; use --device cuda "
                "(each process takes the GPU of its LOCAL_RANK) or --device cpu"
            )
        if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
            return torch.device("cpu")
        pick_device("cuda")  # a DeviceError without CUDA
        if self.local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"process {self.local_rank} of this node has no GPU of its own ({torch.cuda.device_count()} here); "
                "start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    @contextmanager
    def agreed(self) -> Iterator[None]:
        """Run a block on every rank; when it fails on any of them it ends on all, none left waiting for the others."""
        if self.world == 1:
            yield
            return
        try:
            yield
        except BaseException as error:
            if self.shard.sum([1.0])[0] == self.world:
                error.every_rank = True  # the same failure everywhere (a bad option, a missing file): rank 0 reports it
            raise
        if self.shard.sum([0.0])[0]:
            error = NLMError(
                f"process {self.rank}: another process of this run failed (its message says why), so this one stops too"
            )
            error.every_rank = not self.lead  # rank 0 says so; the others leave it to the one that failed
            raise error

    @contextmanager
    def quiet_followers(self, console: Console) -> Iterator[None]:
        """Ranks > 0 print nothing rank 0 prints too (announcements, progress, the final line, shared errors);
        only a failure of their own."""
        if self.lead:
            yield
            return
        console.quiet = True
        try:
            yield
        except BaseException as error:
            if not (getattr(error, "every_rank", False) or isinstance(error, SHARED_ERRORS)):
                console.quiet = False
            raise

    def describe(self, device: torch.device) -> str:
        backend = "NCCL" if device.type == "cuda" else "gloo"
        return f"{self.world} processes ({backend}), each training on its block of every batch"


@contextmanager
def join_processes() -> Iterator[Ranks]:
    """The ranks torchrun started, in one process group for the block; without torchrun, this process alone."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ConfigError(
            "WORLD_SIZE, RANK and LOCAL_RANK must be numbers; start nlm with torchrun to train on several processes"
        ) from None
    if world <= 1 or dist.is_initialized():
        yield Ranks(rank, world, local_rank) if world > 1 else Ranks()
        return
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield Ranks(rank, world, local_rank)
    finally:
        dist.destroy_process_group()


class _Step(nn.Module):
    """The task's whole training step as one module, so DDP sees every parameter of the loss in its forward
    (an output head applied outside the model's forward included)."""

    def __init__(self, task) -> None:
        super().__init__()
        self.model = task.model
        self.step = task.training_step

    def forward(self, batch):
        return self.step(batch)


class DistributedTask:
    """A task whose training step runs through DistributedDataParallel; the rest is the task's own.

    The task returns its share of the loss (`Shard.weight`) and the global batch's count; the value
    handed on is the global mean (all-reduced), its gradient that of the share, which DDP averages."""

    def __init__(self, task, world: int) -> None:
        self.task, self.world = task, world
        self.ddp = DistributedDataParallel(
            _Step(task), find_unused_parameters=getattr(task, "partial_gradients", False)
        )

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def training_step(self, batch) -> tuple[torch.Tensor, int]:
        loss, count = self.ddp(batch)
        mean = loss.detach().clone()
        dist.all_reduce(mean)
        return loss - loss.detach() + mean / self.world, count


class AgreedSignals(StopSignals):
    """StopSignals whose `signum`, what the trainer acts on, is the signal every rank agreed on at the last
    step (`agreed`), not the one this process received; a repeat within REPEAT_WINDOW is the same request."""

    def __init__(self) -> None:
        self.received = self.agreed = 0
        self._since = 0.0
        super().__init__()

    @property
    def signum(self) -> int:
        return self.agreed

    @signum.setter
    def signum(self, value: int) -> None:
        self.received = value

    def _handler(self, signum, frame) -> None:
        now = time.monotonic()
        if self.received and now - self._since > REPEAT_WINDOW:
            raise KeyboardInterrupt
        if not self.received:
            self.received, self._since = signum, now


class ReadLossEveryStep(Callback):
    """First of the callbacks: every rank reads its (all-reduced) loss after every step, so the losses the
    divergence guard and the epoch's training loss see come in the same groups everywhere."""

    def on_batch_end(self, trainer) -> None:
        trainer.sync_loss()


class StopAgreement(Callback):
    """Last of the callbacks: after every step the ranks agree on stopping (a signal any of them received, the
    clock of any of them) with one all-reduce; and each rank's random draws (dropout, corruption) come from
    (seed, rank, step), so ranks draw differently and a resumed run draws what the uninterrupted one would."""

    def __init__(self, rank: int, seed: int) -> None:
        self.rank, self.seed = rank, seed
        self.signals = AgreedSignals()

    def _reseed(self, trainer) -> None:
        words = np.random.SeedSequence([self.seed, self.rank, trainer.progress.global_step]).generate_state(
            2, np.uint32
        )
        torch.manual_seed(int(words[0]) << 32 | int(words[1]))

    def on_fit_start(self, trainer) -> None:
        self._reseed(trainer)

    def on_batch_end(self, trainer) -> None:
        reason = trainer.stop_reason
        code = STOP_REASONS.index(reason) if reason in STOP_REASONS else len(STOP_REASONS)
        flags = torch.tensor([self.signals.received, code], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        signum, code = flags.tolist()
        self.signals.agreed = signum
        if signum:
            trainer.stop_reason = "interrupted"
        elif code < len(STOP_REASONS):
            trainer.stop_reason = STOP_REASONS[code]
        else:  # another callback's reason, on some rank: every rank stops, each saying what it knows
            trainer.stop_reason = reason or "stopped"
        self._reseed(trainer)

    def on_eval_end(self, trainer, metrics, improved: bool) -> None:
        self._reseed(trainer)


def build_trainer(task, train, *, device: torch.device, callbacks: list[Callback], ranks: Ranks) -> Trainer:
    """The trainer of one process: as it is alone; under torchrun, with DDP and the agreements around `callbacks`."""
    if ranks.world == 1:
        return Trainer(task, train, device=device, callbacks=callbacks)
    agreement = StopAgreement(ranks.rank, train.seed)
    return Trainer(
        DistributedTask(task, ranks.world),
        train,
        device=device,
        callbacks=[ReadLossEveryStep(), *callbacks, agreement],
        signals=agreement.signals,
    )
