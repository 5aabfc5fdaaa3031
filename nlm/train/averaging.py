"""NT-ASGD (Merity et al. 2017, §3): SGD that turns into averaged SGD once validation stalls, and fine-tuning.

    switch     after each epoch's evaluation, a loss worse than the best of the evaluations before
               the last `nonmono` (the non-monotone trigger of salesforce/awd-lstm-lm main.py)
               replaces the trainer's SGD by ASGD (t0=0, lambd=0), which keeps `ax`, the running
               mean of the weights, from then on
    evaluate   while the optimizer is ASGD, every evaluation runs on the averages, swapped into the
               model for it and swapped back (bit for bit) before the next step; best.pt holds the
               averages, last.pt the raw weights and the optimizer with `ax`: what a resume needs
    finetune   AWD's finetune.py: a fresh ASGD from best.pt's averaged weights, stopped by the same
               trigger on the averaged validation losses (or the run's limits, granted again)

As in the reference, ASGD takes a step's rate from the state its previous step left (`eta`), so a
rate scaled for one window (variable BPTT) or changed on resume applies from the step after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch

from nlm.errors import ConfigError, InputMissingError
from nlm.train.callbacks import CheckpointCallback
from nlm.train.config import TrainConfig
from nlm.train.hooks import Callback
from nlm.train.optim import averaged_sgd
from nlm.train.progress import Progress


@contextmanager
def averaged_weights(optimizer: torch.optim.Optimizer) -> Iterator[bool]:
    """Inside the block, every parameter ASGD has stepped holds its average; after it, its own value again.
    Yields whether anything was swapped (nothing for another optimizer, or before ASGD's first step)."""
    pairs = []
    if isinstance(optimizer, torch.optim.ASGD):
        pairs = [
            (p, optimizer.state[p]["ax"])
            for group in optimizer.param_groups
            for p in group["params"]
            if "ax" in optimizer.state[p]
        ]
    with torch.no_grad():
        raw = [p.detach().clone() for p, _ in pairs]
        for p, average in pairs:
            p.copy_(average)  # in place: the storage a fused RNN's flat weights point to stays the same
    try:
        yield bool(pairs)
    finally:
        with torch.no_grad():
            for (p, _), value in zip(pairs, raw):
                p.copy_(value)


class WeightAveraging(Callback):
    """Evaluate on ASGD's averages: swapped in before an evaluation, back out first thing after it.
    The metrics of such an evaluation say `"weights": "averaged"`.  First in the callback list."""

    def __init__(self) -> None:
        self._swap = ExitStack()
        self._averaged = False

    def on_eval_start(self, trainer) -> None:
        self._averaged = self._swap.enter_context(averaged_weights(trainer.optimizer))

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        self._swap.close()
        if (
            self._averaged and metrics["split"] == "valid"
        ):  # without validation data the loss is training's, of the raw weights
            metrics["weights"] = "averaged"

    def on_exception(self, trainer, error: BaseException) -> None:
        self._swap.close()


class AveragedCheckpoint(CheckpointCallback):
    """best.pt with the averaged weights its evaluation used; last.pt, as always, with the raw ones."""

    def save(self, trainer, name: str) -> None:
        with averaged_weights(trainer.optimizer) if name == "best" else nullcontext():
            super().save(trainer, name)


class NonMonotoneSwitch(Callback):
    """NT-ASGD's trigger on the losses of epoch-end evaluations (validation; without it, the epoch's training loss):
    before the switch it replaces SGD by ASGD; in a fine-tuning it ends training ("non-monotone")."""

    def __init__(self, config: TrainConfig, *, console=None) -> None:
        self.nonmono, self.weight_decay, self.console = config.nonmono, config.weight_decay, console
        self.losses: list[
            float
        ] = []  # what the trigger compares: the epoch-end losses before the switch, or of the fine-tuning
        self.averaging_since: int | None = None  # the epoch (1-based) whose evaluation switched to ASGD
        self.finetuning = False

    @property
    def averaging(self) -> bool:
        return self.averaging_since is not None or self.finetuning

    def stalled(self, loss: float) -> bool:
        """AWD-LSTM's condition: worse than the best of the losses before the last `nonmono`."""
        return len(self.losses) > self.nonmono and loss > min(self.losses[: -self.nonmono])

    def on_eval_end(self, trainer, metrics: dict[str, Any], improved: bool) -> None:
        if not trainer.epoch_ended or (self.averaging and not self.finetuning):
            return
        loss = metrics["loss"]
        if self.stalled(loss) and self.finetuning:
            trainer.stop("non-monotone")
        elif self.stalled(loss):
            trainer.optimizer = averaged_sgd(trainer.params, lr=trainer.lr, weight_decay=self.weight_decay)
            self.averaging_since = metrics["epoch"]
            metrics["switch"] = "asgd"
            self._say(
                f"epoch {metrics['epoch']}: loss {loss:.4f} is worse than {min(self.losses[: -self.nonmono]):.4f}, "
                f"the best before the last {self.nonmono}: switching to averaged SGD (NT-ASGD); "
                "evaluations and best.pt use the averages"
            )
        self.losses.append(loss)

    def resume(self, trainer, state: dict) -> None:
        """Before the trainer loads a checkpoint's `state`: a run saved while averaging needs its ASGD back first,
        for the saved averages to load into."""
        self.load_state_dict(state.get("callbacks", {}).get(type(self).__name__, {}))
        if self.averaging:
            trainer.optimizer = averaged_sgd(trainer.params, lr=trainer.lr, weight_decay=self.weight_decay)

    def start_finetuning(self, trainer) -> None:
        """AWD's finetune.py: a fresh ASGD at the run's --lr from the weights now in the model (best.pt's)."""
        trainer.optimizer = averaged_sgd(trainer.params, lr=trainer.config.lr, weight_decay=self.weight_decay)
        self.losses, self.finetuning = [], True
        trainer.progress.bad_evals = 0

    def _say(self, line: str) -> None:
        if self.console is not None:
            self.console.print(line)

    def state_dict(self) -> dict:
        return {"losses": list(self.losses), "averaging_since": self.averaging_since, "finetuning": self.finetuning}

    def load_state_dict(self, state: dict) -> None:
        self.losses = list(state.get("losses", []))
        self.averaging_since, self.finetuning = state.get("averaging_since"), bool(state.get("finetuning", False))


def finetune_changes(
    saved: TrainConfig, progress: Progress, changes: dict[str, Any], *, run_dir: Path
) -> dict[str, Any]:
    """The changes of a `--finetune` resume: each limit of the run not given anew is granted again from
    where the run stands (its --epochs more epochs, its --max-steps more steps, its --max-time more time)."""
    if saved.optimizer != "ntasgd":
        raise ConfigError(
            f"--finetune restarts the averaging of an NT-ASGD run (--optimizer ntasgd); this run used {saved.optimizer}"
        )
    if not (run_dir / "best.pt").exists():
        raise InputMissingError(
            f"{run_dir} has no best.pt, the weights --finetune starts from; a run saves it at its first evaluation"
        )
    granted = {
        "epochs": None if saved.epochs is None else progress.epoch + saved.epochs,
        "max_steps": None if saved.max_steps is None else progress.global_step + saved.max_steps,
        "max_time": None if saved.max_time is None else progress.elapsed + saved.max_time,
    }
    return {**{k: v for k, v in granted.items() if v is not None}, **changes}
