"""`--schedule budget`: the learning rate falls with the fraction of the training budget spent, so that a run
uses all of its budget and ends annealed, however fast the machine (Li, Yumer & Ramanan 2020, Budgeted Training).

The fraction spent is that of the limit the run is closest to: seconds of training out of --max-time,
optimizer steps out of --max-steps, epochs (with the current one's batches) out of --epochs, whichever ends
the run first.  The rate is lr x m(f):

    warm-up   f < w        m = f / w                                      (--warmup w, default 0: none)
    anneal    g = (f - w) / (1 - w)
              linear       m = floor + (1 - floor) (1 - g)                (--lr-floor, default 0)
              cosine       m = floor + (1 - floor) (1 + cos(pi g)) / 2

It is set before every step from the progress counters, which every checkpoint saves (the seconds of
training included), so a resumed run continues the schedule where it stood; a resume given a longer budget
stretches what is left of it.  A --max-time budget makes the schedule follow the machine's speed (a slower
machine takes fewer steps at each rate); a --max-steps budget is deterministic and resumes bit for bit.
"""

from __future__ import annotations

import math

from nlm.train.config import TrainConfig
from nlm.train.hooks import Callback


def budget_multiplier(fraction: float, *, anneal: str = "linear", floor: float = 0.0, warmup: float = 0.0) -> float:
    """m(f): the learning rate's multiple when a fraction `fraction` of the budget is spent."""
    fraction = min(max(fraction, 0.0), 1.0)
    if fraction < warmup:
        return fraction / warmup
    annealed = (fraction - warmup) / (1.0 - warmup)
    shape = 1.0 - annealed if anneal == "linear" else (1.0 + math.cos(math.pi * annealed)) / 2
    return floor + (1.0 - floor) * shape


def budget_spent(config: TrainConfig, *, seconds: float, steps: int, epochs: float) -> float:
    """The fraction of the budget spent: of the limit the run is closest to (see the module docstring)."""
    limit = config.epoch_limit  # None: no limit on epochs, the budget ends the run
    spent = [] if limit is None else [epochs / limit]
    if config.max_steps is not None:
        spent.append(steps / config.max_steps)
    if config.max_time is not None:
        spent.append(seconds / config.max_time)
    return max(spent)


class BudgetSchedule(Callback):
    """Sets the rate before every step (at the start of a session and after each step) from the budget spent."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def on_fit_start(self, trainer) -> None:
        self._set(trainer)

    def on_batch_end(self, trainer) -> None:
        self._set(trainer)

    def _set(self, trainer) -> None:
        c, p = self.config, trainer.progress
        epochs = p.epoch + p.batch / max(trainer.task.batches_per_epoch(), 1)
        fraction = budget_spent(c, seconds=trainer.elapsed(), steps=p.global_step, epochs=epochs)
        rate = c.lr * budget_multiplier(
            fraction, anneal=c.anneal or "linear", floor=c.lr_floor or 0.0, warmup=c.warmup or 0.0
        )
        for group in trainer.optimizer.param_groups:
            group["lr"] = rate
