"""A model-agnostic training loop: zero_grad -> loss -> backward -> clip -> step, plus named hooks.

The trainer knows nothing about language models or images.  A *task* turns batches into
a loss and evaluates; callbacks report progress, write checkpoints, stop early.  The
trainer owns the optimizer, the LR scheduler, the progress counters and Ctrl-C: the first
Ctrl-C finishes the current step, saves through the callbacks and raises Interrupted.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch
from torch import nn

from nlm.errors import Interrupted, TrainingDivergedError
from nlm.train.config import TrainConfig


class Task(Protocol):
    """What the trainer needs from a task (LMTask, ClassifyTask, ReconstructTask...)."""

    kind: str  # recorded in checkpoints: "lm", "vision", "autoencoder"
    unit: str  # what `count` counts, for throughput: "tok", "img"
    model: nn.Module

    def batches_per_epoch(self) -> int: ...
    def train_batches(self, epoch: int, start: int) -> Iterator[Any]: ...
    def training_step(self, batch: Any) -> tuple[torch.Tensor, int]: ...
    def evaluate(self) -> dict[str, float] | None: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def checkpoint_extras(self) -> dict: ...


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint so a resume continues exactly."""

    epoch: int = 0  # the current epoch, 0-based
    batch: int = 0  # batches done in the current epoch
    global_step: int = 0  # optimizer steps in all
    units: int = 0  # tokens or images trained on in all
    elapsed: float = 0.0  # seconds of training in all, earlier sessions included
    epoch_loss: float = 0.0  # sum of loss * count over the current epoch
    epoch_count: int = 0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad_evals: int = 0  # evaluations since the last improvement

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Progress:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    kinds = {
        "sgd": lambda: torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay),
        "adam": lambda: torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay),
    }
    return kinds[config.optimizer]()


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    """Stepped once per epoch: with the validation loss (plateau) or without (decay, none)."""
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.lr_factor, patience=0)
    if config.schedule == "decay":
        # Epoch e (0-based) runs at lr * factor ** max(0, e + 1 - decay_start), as in Zaremba et al.
        return torch.optim.lr_scheduler.MultiplicativeLR(
            optimizer, lambda epoch: config.lr_factor if epoch >= config.decay_start else 1.0
        )
    return None


class Callback:
    """Hooks the trainer calls; each receives the trainer.  Override what you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_batch_end(self, trainer: Trainer) -> None: ...
    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float], improved: bool) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_exception(self, trainer: Trainer, error: BaseException) -> None: ...


class Trainer:
    def __init__(self, task: Task, config: TrainConfig, *, device: torch.device, callbacks: list[Callback]) -> None:
        self.task, self.config, self.device, self.callbacks = task, config, device, callbacks
        self.params = [p for p in task.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, self.params)
        self.scheduler = build_scheduler(config, self.optimizer)
        self.progress = Progress()
        self.last_loss: torch.Tensor | None = None  # the latest step's loss, on the device (no sync)
        self.last_metrics: dict[str, float] = {}
        self.stop_reason: str | None = None
        self._interrupted: int = 0  # the signal that asked training to stop, if any
        self._started = 0.0
        self._pending_loss = torch.zeros((), device=device)  # loss * count not yet added to progress
        self._sync_every = 1 if device.type == "cpu" else 50  # reading a GPU value waits for the GPU

    def sync_loss(self) -> None:
        """Fold the device-side loss sum into the progress counters; stop on NaN or infinity."""
        value = float(self._pending_loss)
        self._pending_loss.zero_()
        if not math.isfinite(value):
            p = self.progress
            raise TrainingDivergedError(
                f"the training loss became {value} at step {p.global_step} (epoch {p.epoch + 1}); training stopped "
                "and the checkpoints from before it were kept; try a lower --lr or a smaller --clip"
            )
        self.progress.epoch_loss += value

    @property
    def interrupted(self) -> bool:
        """A signal asked training to stop; the callbacks save instead of evaluating."""
        return bool(self._interrupted)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        self.sync_loss()
        progress = self.progress.to_dict()
        progress["elapsed"] = self.elapsed()  # this session's time included, so --max-time holds across resumes
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "progress": progress,
            "task": self.task.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.progress = Progress.from_dict(state["progress"])
        self.task.load_state_dict(state["task"])

    def elapsed(self) -> float:
        return self.progress.elapsed + (time.monotonic() - self._started if self._started else 0.0)

    def _emit(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _autocast(self):
        if self.config.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def fit(self) -> Progress:
        """Train until the epochs, steps or time run out, or a callback stops it."""
        previous_handlers = self._install_signal_handlers()
        self._started = time.monotonic()
        try:
            self._emit("on_fit_start")
            while self.progress.epoch < self.config.epochs and self.stop_reason is None and not self._interrupted:
                finished = self._run_epoch()
                self._end_of_training_span(finished)
            if self.stop_reason is None:
                self.stop_reason = "interrupted" if self._interrupted else "finished"
            self._emit("on_fit_end")
        except BaseException as error:
            self._emit("on_exception", error)
            raise
        finally:
            self.progress.elapsed = self.elapsed()
            self._started = 0.0
            for signum, previous in previous_handlers.items():
                signal.signal(signum, previous)
        if self._interrupted:
            name = signal.Signals(self._interrupted).name
            error = Interrupted(f"{name}: training stopped and was saved; `nlm train --resume RUN_DIR` continues it")
            error.exit_code = 128 + self._interrupted  # 130 for Ctrl-C, 143 for SIGTERM, as shells report them
            raise error
        return self.progress

    def _run_epoch(self) -> bool:
        """Train on the rest of the current epoch; True when it ran to its end."""
        self.task.model.train()
        p, config = self.progress, self.config
        for batch in self.task.train_batches(p.epoch, p.batch):
            with self._autocast():
                loss, count = self.task.training_step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.params, config.clip)
            self.optimizer.step()
            self.last_loss = loss.detach()
            p.batch += 1
            p.global_step += 1
            p.units += count
            self._pending_loss += self.last_loss.float() * count
            p.epoch_count += count
            if p.global_step % self._sync_every == 0:
                self.sync_loss()
            self._emit("on_batch_end")
            if self._interrupted:
                self.stop_reason = "interrupted"
            elif config.max_steps is not None and p.global_step >= config.max_steps:
                self.stop_reason = "max-steps"
            elif config.max_time is not None and self.elapsed() >= config.max_time:
                self.stop_reason = "max-time"
            if self.stop_reason:
                return False
        return True

    def _end_of_training_span(self, epoch_finished: bool) -> None:
        """Evaluate, update the best loss and the LR schedule, then tell the callbacks."""
        p = self.progress
        if self._interrupted:
            # No evaluation on Ctrl-C: save the exact position and leave quickly.
            self._emit("on_eval_end", dict(self.last_metrics), False)
            return
        metrics = self.evaluate()
        loss = metrics["loss"]
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the validation loss is {loss} after epoch {p.epoch + 1}; try a lower --lr or a smaller --clip"
            )
        improved = loss < p.best_loss
        if improved:
            p.best_loss, p.best_epoch, p.bad_evals = loss, p.epoch, 0
        else:
            p.bad_evals += 1
        if epoch_finished:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(loss)
            elif self.scheduler is not None:
                self.scheduler.step()
            p.epoch, p.batch, p.epoch_loss, p.epoch_count = p.epoch + 1, 0, 0.0, 0
        if self.config.patience is not None and p.bad_evals >= self.config.patience:
            self.stop_reason = "early-stopping"
        self._emit("on_eval_end", metrics, improved)

    def evaluate(self) -> dict[str, float]:
        self.sync_loss()
        p = self.progress
        train_loss = p.epoch_loss / p.epoch_count if p.epoch_count else float("nan")
        self.task.model.eval()
        with torch.inference_mode(), self._autocast():
            metrics = self.task.evaluate()
        self.task.model.train()
        if metrics is None:  # no validation data: judge by the training loss
            metrics = {"loss": train_loss}
        metrics = {"epoch": p.epoch + 1, "step": p.global_step, "train_loss": train_loss, **metrics,
                   "lr": self.lr, "elapsed": round(self.elapsed(), 2)}
        self.last_metrics = metrics
        return metrics

    def _install_signal_handlers(self) -> dict:
        """Ctrl-C (SIGINT) or a batch system's SIGTERM: stop after the current step and save.
        A second one stops at once.  Signals someone set to be ignored (a background job) stay ignored."""

        def handler(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = signum

        previous = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) not in (signal.default_int_handler, signal.SIG_DFL):
                continue  # ignored, or handled by someone else (a test harness, say): leave it
            try:
                previous[signum] = signal.signal(signum, handler)
            except ValueError:  # not in the main thread
                break
        return previous
