"""The trainer on a fake task: the order of its hooks, every way a run stops, both LR schedules, signals.

The fake task fits y = 3x with one weight; its "validation loss" is a script the test writes,
so plateaus, improvements and divergence happen exactly when the test says.
"""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from torch import nn

from nlm.errors import Interrupted, TrainingDivergedError
from nlm.train.config import DEFAULT_EPOCHS, TrainConfig, stop_words
from nlm.train.control import DivergenceGuard, EarlyStopping, LRSchedule
from nlm.train.hooks import Callback
from nlm.train.trainer import Trainer

CPU = torch.device("cpu")
BATCHES = 3


class FakeTask:
    kind, unit = "fake", "x"

    def __init__(
        self,
        valid_losses: list[float] | None = None,
        train_loss: float | None = None,
        batches: int = BATCHES,
        uniform_loss: float | None = None,
    ) -> None:
        self.batches, self.uniform_loss = batches, uniform_loss  # a loss to compare with, for the divergence guard
        self.model = nn.Linear(1, 1, bias=False)
        nn.init.zeros_(self.model.weight)
        self.valid_losses = list(valid_losses or [])
        self.train_loss = train_loss  # a fixed training loss (to diverge on purpose), else the real one
        self.epochs_started: list[tuple[int, int]] = []

    def batches_per_epoch(self) -> int:
        return self.batches

    def train_batches(self, epoch: int, start: int):
        self.epochs_started.append((epoch, start))
        for b in range(start, self.batches):
            yield torch.full((4, 1), float(b + 1))

    def training_step(self, x: torch.Tensor):
        loss = (self.model(x) - 3 * x).pow(2).mean()
        if self.train_loss is not None:
            loss = loss * 0 + self.train_loss
        return loss, len(x)

    def evaluate(self):
        return {"loss": self.valid_losses.pop(0)} if self.valid_losses else None

    def describe(self, metrics):
        return f"loss {metrics['loss']:.3f}"

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def checkpoint_extras(self):
        return {"config": {}}


class Recorder(Callback):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.lrs: list[float] = []  # the learning rate of every step

    def on_fit_start(self, trainer):
        self.calls.append("fit_start")  # noqa: E704

    def on_loss(self, trainer, loss, steps):
        self.calls.append("loss")  # noqa: E704

    def on_eval_end(self, trainer, metrics, improved):
        self.calls.append(f"eval_end:{metrics['epoch']}:{improved}")  # noqa: E704

    def on_interrupt(self, trainer):
        self.calls.append("interrupt")  # noqa: E704

    def on_fit_end(self, trainer):
        self.calls.append("fit_end")  # noqa: E704

    def on_exception(self, trainer, error):
        self.calls.append(f"exception:{type(error).__name__}")  # noqa: E704

    def on_batch_end(self, trainer):
        self.calls.append("batch_end")
        self.lrs.append(trainer.lr)


def fit(task: FakeTask, *, extra: list[Callback] = (), **options) -> tuple[Trainer, Recorder]:
    config = TrainConfig(**{"lr": 0.01, "clip": 0.0, "epochs": 2, "schedule": "none", "device": "cpu", **options})
    recorder = Recorder()
    callbacks = [DivergenceGuard(task.uniform_loss), LRSchedule(config), *extra, recorder]
    if config.patience:
        callbacks.insert(2, EarlyStopping(config.patience))
    trainer = Trainer(task, config, device=CPU, callbacks=callbacks)
    return trainer, recorder


def test_hooks_run_in_order_and_every_epoch_starts_from_its_first_batch():
    trainer, recorder = fit(FakeTask(valid_losses=[0.5, 0.4]))
    trainer.fit()
    epoch = ["loss", "batch_end"] * BATCHES  # on the CPU the loss is read after every step
    assert recorder.calls == ["fit_start", *epoch, "eval_end:1:True", *epoch, "eval_end:2:True", "fit_end"]
    assert trainer.stop_reason == "epochs" and trainer.progress.global_step == 2 * BATCHES
    assert trainer.task.epochs_started == [(0, 0), (1, 0)]
    assert trainer.task.model.weight.item() > 0  # it learned something: y = 3x pulls the weight up from 0


@pytest.mark.parametrize(
    "options, reason, steps",
    [
        ({}, "epochs", 2 * BATCHES),
        ({"max_steps": 4}, "max-steps", 4),
        ({"max_time": 1e-9}, "max-time", 1),
        ({"patience": 2, "epochs": 10}, "early-stopping", 3 * BATCHES),
    ],
)
def test_every_limit_stops_the_run_with_its_reason(options, reason, steps):
    trainer, recorder = fit(FakeTask(valid_losses=[0.5, 0.6, 0.7, 0.3]), **options)
    trainer.fit()
    assert (trainer.stop_reason, trainer.progress.global_step) == (reason, steps)
    assert recorder.calls[-1] == "fit_end"


@pytest.mark.parametrize("budget", [{"max_steps": 9 * BATCHES + 1}, {"max_time": 3600.0}])
def test_a_budget_without_epochs_trains_past_the_default_epochs_until_it_runs_out(budget):
    """--max-steps or --max-time without --epochs: no limit on epochs (here the schedule or the budget ends it)."""
    config = TrainConfig(**budget)
    assert config.epochs is None and config.epoch_limit is None and TrainConfig().epoch_limit == DEFAULT_EPOCHS["lm"]
    assert config.with_default_epochs("vision") == config
    assert TrainConfig().with_default_epochs("vision").epochs == DEFAULT_EPOCHS["vision"]
    losses = [1.0 - 0.01 * epoch for epoch in range(9)] + [2.0] * 5  # nine better evaluations, then worse ones
    trainer, _ = fit(FakeTask(valid_losses=losses), epochs=None, patience=2, **budget)
    trainer.fit()
    reason = "max-steps" if "max_steps" in budget else "early-stopping"
    assert trainer.stop_reason == reason and trainer.progress.epoch > DEFAULT_EPOCHS["lm"]


def test_the_last_evaluation_says_which_limit_stopped_the_run():
    trainer, _ = fit(FakeTask(), epochs=3)
    trainer.fit()
    assert trainer.stop_reason == "epochs" and trainer.progress.epoch == 3
    assert stop_words("epochs", trainer.config) == "epochs: 3 epochs"
    assert stop_words("max-time", TrainConfig(max_time=300)) == "max-time: 300 s"


def test_a_stop_at_an_epochs_end_advances_the_epoch_and_one_within_it_does_not():
    trainer, _ = fit(FakeTask(), max_steps=BATCHES)
    trainer.fit()
    assert (trainer.progress.epoch, trainer.progress.batch) == (1, 0)
    trainer, _ = fit(FakeTask(), max_steps=BATCHES + 1)
    trainer.fit()
    assert (trainer.progress.epoch, trainer.progress.batch) == (1, 1)


def test_without_validation_the_training_loss_is_what_is_judged():
    trainer, recorder = fit(FakeTask(), epochs=1)
    trainer.fit()
    metrics = trainer.last_metrics
    assert metrics["split"] == "train" and metrics["loss"] == metrics["train_loss"] > 0


@pytest.mark.parametrize(
    "task, phrase",
    [
        (FakeTask(train_loss=math.nan), "the training loss became nan at step 1 (epoch 1)"),
        # finite, but 50 times a uniform guess for 20 steps in a row, within an epoch of 30
        (FakeTask(train_loss=50.0, uniform_loss=1.0, batches=30), "the training loss became 50 at step 20 (epoch 1)"),
        (
            FakeTask(train_loss=50.0, uniform_loss=1.0),
            "the train loss is 50 at step 3 (epoch 1)",
        ),  # an epoch too short for 20
        (FakeTask(valid_losses=[math.inf]), "the valid loss is inf at step 3 (epoch 1)"),
    ],
)
def test_divergence_stops_the_run(task, phrase):
    trainer, recorder = fit(task, epochs=100)
    with pytest.raises(TrainingDivergedError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        trainer.fit()
    assert recorder.calls[-1] == "exception:TrainingDivergedError"


@pytest.mark.parametrize(
    "schedule, valid_losses, epoch_lrs",
    [
        # plateau: x 0.25 after each epoch that does not beat the best so far
        ("plateau", [1.0, 1.0, 0.5, 0.6, 0.4], [0.01, 0.01, 0.0025, 0.0025, 0.000625]),
        # decay: x 0.25 after every epoch from decay_start (2) on, whatever the validation says
        ("decay", [1.0, 0.9, 0.8, 0.7, 0.6], [0.01, 0.01, 0.0025, 0.000625, 0.00015625]),
    ],
)
def test_learning_rates_under_both_schedules(schedule, valid_losses, epoch_lrs):
    trainer, recorder = fit(
        FakeTask(valid_losses=valid_losses), epochs=5, schedule=schedule, lr_factor=0.25, decay_start=2
    )
    trainer.fit()
    assert recorder.lrs[::BATCHES] == pytest.approx(epoch_lrs)


class SignalAt(Callback):
    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_batch_end(self, trainer):
        if trainer.progress.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_tells_the_callbacks_and_raises_with_128_plus_it(signum, code):
    previous = signal.signal(signum, signal.SIG_DFL)  # as a shell starts a job, whatever the test runner did
    try:
        trainer, recorder = fit(FakeTask(valid_losses=[0.5, 0.4]), extra=[SignalAt(4, signum)], epochs=5)
        with pytest.raises(Interrupted) as stopped:
            trainer.fit()
    finally:
        signal.signal(signum, previous)
    assert stopped.value.exit_code == code and trainer.progress.global_step == 4  # the step in flight finished, no more
    assert recorder.calls[-2:] == ["interrupt", "fit_end"] and trainer.stop_reason == "interrupted"
    assert signal.getsignal(signum) is previous  # the trainer's handler is gone again
