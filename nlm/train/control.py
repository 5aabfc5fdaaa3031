"""Callbacks that steer training: the learning-rate schedule, early stopping and the divergence guard."""

from __future__ import annotations

import math
from typing import Any

import torch

from nlm.errors import TrainingDivergedError
from nlm.train.config import TrainConfig
from nlm.train.hooks import Callback


class LRSchedule(Callback):
    """Steps once per finished epoch.  plateau: lr x factor when the epoch's evaluation did not improve
    (the PyTorch example's /4); decay: lr x factor after every epoch from `decay_start` on (Zaremba et al.);
    steps: lr x factor after each epoch in `milestones` (AWD-LSTM's --when).  When a callback replaces
    the trainer's optimizer (NT-ASGD), the schedule goes on where it stood, on the new optimizer."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.scheduler = None
        self._saved: dict | None = None

    def on_fit_start(self, trainer) -> None:
        self._bind(trainer.optimizer, self._saved)

    def _bind(self, optimizer: torch.optim.Optimizer, state: dict | None) -> None:
        c, schedulers = self.config, torch.optim.lr_scheduler
        if c.schedule == "plateau":
            self.scheduler = schedulers.ReduceLROnPlateau(optimizer, mode="min", factor=c.lr_factor, patience=0)
        elif c.schedule == "decay":  # epoch e (0-based) runs at lr * factor ** max(0, e + 1 - decay_start)
            self.scheduler = schedulers.MultiplicativeLR(
                optimizer, lambda epoch: c.lr_factor if epoch >= c.decay_start else 1.0
            )
        elif c.schedule == "steps":
            self.scheduler = schedulers.MultiStepLR(optimizer, milestones=list(c.milestones), gamma=c.lr_factor)
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        if not trainer.epoch_ended or self.scheduler is None:
            return
        if self.scheduler.optimizer is not trainer.optimizer:  # replaced since the last epoch (NT-ASGD's switch)
            self._bind(trainer.optimizer, self.scheduler.state_dict())
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metrics["loss"])
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._saved = state


class EarlyStopping(Callback):
    """Stop after `patience` evaluations in a row without a better loss."""

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        if trainer.progress.bad_evals >= self.patience:
            trainer.stop("early-stopping")


class DivergenceGuard(Callback):
    """Stop a run whose loss is NaN or infinite, or sits far above a uniform guess over the classes
    (`uniform_loss`, log V for a vocabulary of V) for `streak` steps in a row or at an evaluation:
    a model doing far worse than guessing has diverged, whatever its loss still is in float32."""

    def __init__(self, uniform_loss: float | None, *, streak: int = 20) -> None:
        self.uniform = uniform_loss
        self.limit = max(3 * uniform_loss, uniform_loss + 5) if uniform_loss else math.inf
        self.streak, self._bad_steps = streak, 0

    def _diverged(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.limit

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        if self._diverged(metrics["loss"]):
            self._stop(f"the {metrics['split']} loss is {metrics['loss']:.4g}", metrics["step"], metrics["epoch"])

    def on_loss(self, trainer, loss: float, steps: int) -> None:
        self._bad_steps = self._bad_steps + steps if self._diverged(loss) else 0
        if not math.isfinite(loss) or self._bad_steps >= self.streak:
            p = trainer.progress
            self._stop(f"the training loss became {loss:.4g}", p.global_step, p.epoch + 1)

    def _stop(self, what: str, step: int, epoch: int) -> None:
        guess = f"; a uniform guess scores {self.uniform:.3g}" if self.uniform else ""
        raise TrainingDivergedError(f"{what} at step {step} (epoch {epoch}){guess}: training diverged")
