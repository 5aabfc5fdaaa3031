"""A model-agnostic training loop: zero_grad -> loss -> backward -> clip -> step, and named hooks.

A *task* (nlm/train/task.py) turns batches into a loss and evaluates; callbacks do the rest (progress, checkpoints,
the LR schedule, early stopping, the divergence guard).  The trainer owns the optimizer, the
progress counters, the limits of its config (epochs, steps, time) and signals: the first Ctrl-C
or SIGTERM finishes the current step, the callbacks save, and `fit` raises Interrupted.
"""

from __future__ import annotations

import math
import signal
import time
from typing import Any

import torch

from nlm.errors import Interrupted
from nlm.runtime import autocast
from nlm.train.config import TrainConfig
from nlm.train.hooks import Callback
from nlm.train.optim import build_optimizer, scaled_lr
from nlm.train.progress import Progress
from nlm.train.signals import StopSignals
from nlm.train.task import Task


class Trainer:
    def __init__(
        self,
        task: Task,
        config: TrainConfig,
        *,
        device: torch.device,
        callbacks: list[Callback],
        signals: StopSignals | None = None,
    ) -> None:
        self.task, self.config, self.device, self.callbacks = task, config, device, callbacks
        self.params = [p for p in task.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(config, self.params)
        self.progress = Progress()
        self.last_metrics: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.epoch_ended = False  # whether the last evaluation came at the end of an epoch
        self._signals = signals or StopSignals()  # a distributed run's: the signal all ranks agreed on
        self._started = 0.0
        self._pending = torch.zeros((), device=device)  # sum of loss * count not yet read back from the device
        self._pending_steps = self._pending_count = 0
        self._sync_every = 1 if device.type == "cpu" else 50  # reading a GPU value waits for the GPU
        self._lr_scale = getattr(task, "lr_scale", None)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def stop(self, reason: str) -> None:
        """Ask training to stop after this step or evaluation; the reason is reported."""
        self.stop_reason = self.stop_reason or reason

    def elapsed(self) -> float:
        return self.progress.elapsed + (time.monotonic() - self._started if self._started else 0.0)

    def emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    @property
    def signal(self) -> int:  # the signal that asked training to stop, or 0
        return self._signals.signum

    def fit(self) -> Progress:
        """Train until the epochs, steps or time run out, or a callback or a signal stops it (`stop_reason`)."""
        self._started = time.monotonic()
        try:
            with self._signals:
                self.emit("on_fit_start")
                limit = self.config.epoch_limit  # None: the budget (--max-steps, --max-time) ends the run
                while self.stop_reason is None and (limit is None or self.progress.epoch < limit):
                    self._end_span(self._run_epoch())
                self.stop("epochs")
                self.emit("on_fit_end")
        except BaseException as error:
            self.emit("on_exception", error)
            raise
        finally:
            self.progress.elapsed, self._started = self.elapsed(), 0.0
        if self.signal:
            raise Interrupted(signal.Signals(self.signal).name, exit_code=128 + self.signal)
        return self.progress

    def _run_epoch(self) -> bool:
        """Train on the rest of the current epoch; True when it ran to its end."""
        self.task.model.train()
        p, config = self.progress, self.config
        if self.signal:  # one came during the evaluation: stop before another step
            self.stop("interrupted")
            return False
        for batch in self.task.train_batches(p.epoch, p.batch):
            self._step(batch)
            if config.max_steps is not None and p.global_step >= config.max_steps:
                self.stop("max-steps")
            elif config.max_time is not None and self.elapsed() >= config.max_time:
                self.stop("max-time")
            self.emit("on_batch_end")  # after the limits, so that a callback can agree on them (several processes)
            if self.signal:  # one that came during the step or its callbacks
                self.stop_reason = "interrupted"
            if self.stop_reason:
                return p.batch == self.task.batches_per_epoch()
        return True

    def _step(self, batch: Any) -> None:
        with autocast(self.device, self.config.precision):
            loss, count = self.task.training_step(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.clip)
        with scaled_lr(self.optimizer, self._lr_scale(batch) if self._lr_scale else 1.0):
            self.optimizer.step()
        p = self.progress
        p.batch += 1
        p.global_step += 1
        p.units += count
        p.epoch_count += count
        self._pending += loss.detach().float() * count
        self._pending_steps += 1
        self._pending_count += count
        if self._pending_steps >= self._sync_every:
            self.sync_loss()

    def sync_loss(self) -> None:
        """Read the loss summed on the device into the progress counters, and tell the callbacks its mean."""
        if not self._pending_steps:
            return
        total, steps, count = float(self._pending), self._pending_steps, self._pending_count
        self._pending.zero_()
        self._pending_steps = self._pending_count = 0
        self.progress.epoch_loss += total
        self.emit("on_loss", total / max(count, 1), steps)

    def _end_span(self, epoch_finished: bool) -> None:
        """After an epoch or a stop: evaluate, advance the epoch, tell the callbacks (unless a signal stopped it)."""
        if self.signal:
            self.sync_loss()
            self.emit("on_interrupt")
            return
        metrics = self.evaluate()
        p = self.progress
        improved = metrics["loss"] < p.best_loss
        if improved:
            p.best_loss, p.best_epoch, p.bad_evals = metrics["loss"], p.epoch, 0
        else:
            p.bad_evals += 1
        self.epoch_ended = epoch_finished
        if epoch_finished:
            p.epoch, p.batch, p.epoch_loss, p.epoch_count = p.epoch + 1, 0, 0.0, 0
            if p.epoch == self.config.epoch_limit:  # said before the callbacks, so that metrics.jsonl names it
                self.stop("epochs")
        self.emit("on_eval_end", metrics, improved)

    def evaluate(self) -> dict[str, Any]:
        """The task's validation metrics (or the epoch's training loss), with where and when they were taken."""
        self.sync_loss()
        p = self.progress
        train_loss = p.epoch_loss / p.epoch_count if p.epoch_count else math.nan
        self.emit("on_eval_start")
        self.task.model.eval()
        with torch.inference_mode(), autocast(self.device, self.config.precision):
            metrics = self.task.evaluate()
        self.task.model.train()
        metrics = {
            "epoch": p.epoch + 1,
            "step": p.global_step,
            "train_loss": train_loss,
            **(metrics or {"loss": train_loss}),
            "split": "train" if metrics is None else "valid",
            "lr": self.lr,
            "elapsed": round(self.elapsed(), 2),
        }
        self.last_metrics = metrics
        return metrics

    def state_dict(self) -> dict:
        self.sync_loss()
        return {
            "optimizer": self.optimizer.state_dict(),
            "progress": {**self.progress.to_dict(), "elapsed": self.elapsed()},
            "task": self.task.state_dict(),
            "callbacks": {type(c).__name__: c.state_dict() for c in self.callbacks},
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved: optimizer, progress, the task's state and the callbacks'."""
        self.task.load_state_dict(state["task"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.progress = Progress.from_dict(state["progress"])
        saved = state.get("callbacks", {})
        for callback in self.callbacks:
            if type(callback).__name__ in saved:
                callback.load_state_dict(saved[type(callback).__name__])
