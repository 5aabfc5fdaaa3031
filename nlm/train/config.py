"""The trainer's configuration: optimizer, schedule, stopping rules, saving, device, precision, seed.

`RESUMABLE` names the settings a resumed run may change; every other one is part of the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from nlm.config import DEVICES, PRECISIONS, Config, check

OPTIMIZERS = ("sgd", "adam", "adamw", "ntasgd")
RESUMABLE = (
    "epochs",
    "max_steps",
    "max_time",
    "patience",
    "lr",
    "save_every",
    "save_every_seconds",
    "device",
    "precision",
    "log_every",
)
SCHEDULES = ("plateau", "decay", "steps", "budget", "none")
ANNEALS = ("linear", "cosine")  # --schedule budget: how the rate falls with the fraction of the budget spent
# The epochs of a run given no --epochs and no budget, by the kind of model.  A run with --max-time or
# --max-steps and no --epochs has no limit on epochs: it trains until its budget runs out.
DEFAULT_EPOCHS = {"lm": 6, "vision": 5, "autoencoder": 10}


@dataclass(frozen=True)
class TrainConfig(Config):
    lr: float | None = None  # learning rate; None: the task's default for its model and optimizer
    optimizer: str = (
        "sgd"  # sgd | adam | adamw | ntasgd (SGD, then averaged SGD once validation stalls: nlm.train.averaging)
    )
    momentum: float = 0.0  # SGD momentum
    weight_decay: float = 0.0  # L2 (sgd, adam) or decoupled (adamw) weight decay
    clip: float = 0.25  # clip the gradient's global norm to this; 0 turns clipping off
    epochs: int | None = None  # passes over the training data; None: no limit (see epoch_limit)
    max_steps: int | None = None  # stop after this many optimizer steps in all
    max_time: float | None = None  # stop after this many seconds of training in all
    # plateau: lr *= factor when validation loss does not improve; decay: lr *= factor every epoch from decay_start;
    # steps: lr *= factor after each of the milestones' epochs; none.  None: plateau, or none with ntasgd
    schedule: str | None = None
    lr_factor: float = 0.25  # the multiplier of every schedule (the PyTorch example divides by 4)
    decay_start: int = 4  # decay: the number of epochs run at the full rate (Zaremba et al.: 4)
    milestones: tuple[int, ...] = ()  # steps: the epochs after which lr *= factor (AWD-LSTM's --when)
    # budget: lr follows the fraction of the budget spent (nlm.train.budget); None: linear, to 0, no warm-up
    anneal: str | None = None  # linear | cosine
    lr_floor: float | None = None  # the rate at the end of the budget, as a fraction of lr
    warmup: float | None = None  # the fraction of the budget over which the rate first rises from 0 to lr
    nonmono: int = 5  # ntasgd: average once a validation loss is worse than the best before the last `nonmono` ones
    patience: int | None = None  # stop after this many evaluations without a better validation loss
    save_every: int | None = None  # also write last.pt every this many optimizer steps, mid-epoch included
    save_every_seconds: float | None = None  # ... or every this many seconds of training
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: str = "fp32"  # fp32 | bf16 (autocast; weights, optimizer and loss stay fp32) | auto: the run resolves it
    seed: int = 1  # seeds init, dropout and batch order; CPU runs are deterministic
    log_every: float = 30.0  # seconds between plain log lines when stderr is not a terminal
    recipe: str | None = None  # the preset (`nlm train --recipe`) whose values filled the options not given; a record

    def __post_init__(self) -> None:
        if self.schedule is None:  # NT-ASGD answers a stalled validation loss by averaging, not by a lower rate
            object.__setattr__(self, "schedule", "none" if self.optimizer == "ntasgd" else "plateau")
        super().__post_init__()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """As Config's; a run saved before --precision says `bf16: true|false` (bf16 applied on CUDA only then)."""
        data = dict(data)
        if "bf16" in data:
            data.setdefault("precision", "bf16" if data.pop("bf16") else "fp32")
        return super().from_dict(data)

    @property
    def budgeted(self) -> bool:
        """Whether --max-steps or --max-time bounds the run."""
        return self.max_steps is not None or self.max_time is not None

    @property
    def epoch_limit(self) -> int | None:
        """The epochs to train: --epochs; without it none with a budget (it ends the run), else the language
        models' default.  `with_default_epochs` gives a run its own kind's default."""
        return self.epochs if self.epochs is not None or self.budgeted else DEFAULT_EPOCHS["lm"]

    def with_default_epochs(self, kind: str) -> TrainConfig:
        """This config with `kind`'s default --epochs filled in when it has neither --epochs nor a budget."""
        return self if self.epochs is not None or self.budgeted else self.replace(epochs=DEFAULT_EPOCHS[kind])

    def validate(self) -> None:
        check(
            self.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"
        )
        check(self.lr is None or self.lr > 0, f"--lr must be positive, not {self.lr}")
        check(
            self.optimizer in OPTIMIZERS, f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"
        )
        check(0 <= self.momentum < 1, f"--momentum must be in [0, 1), not {self.momentum}")
        check(self.weight_decay >= 0, f"--weight-decay must be >= 0, not {self.weight_decay}")
        check(self.clip >= 0, f"--clip must be >= 0 (0 turns clipping off), not {self.clip}")
        check(self.epochs is None or self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}")
        check(self.max_steps is None or self.max_steps >= 1, f"--max-steps must be at least 1, not {self.max_steps}")
        check(self.max_time is None or self.max_time > 0, f"--max-time must be positive, not {self.max_time}")
        check(self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        check(0 < self.lr_factor <= 1, f"--lr-factor must be in (0, 1], not {self.lr_factor}")
        check(self.decay_start >= 0, f"--decay-start must be >= 0, not {self.decay_start}")
        self._validate_averaging()
        self._validate_budget()
        check(self.patience is None or self.patience >= 1, f"--patience must be at least 1, not {self.patience}")
        check(
            self.save_every is None or self.save_every >= 1,
            f"--save-every must be at least 1 step, not {self.save_every}",
        )
        check(
            self.save_every_seconds is None or self.save_every_seconds > 0,
            f"--save-every must be a positive duration, not {self.save_every_seconds}",
        )
        check(
            self.device in DEVICES or self.device.startswith("cuda:"), f"--device must be one of {', '.join(DEVICES)}"
        )
        check(self.log_every > 0, "log_every must be positive")

    def _validate_averaging(self) -> None:
        """NT-ASGD and the schedules that make sense with it; --milestones with --schedule steps."""
        m = self.milestones
        check(
            self.schedule != "steps" or bool(m),
            "--schedule steps needs --milestones, the epochs after which to lower the rate (e.g. 300,400)",
        )
        check(not m or self.schedule == "steps", "--milestones applies to --schedule steps")
        check(
            all(a >= 1 for a in m) and all(a < b for a, b in zip(m, m[1:])),
            f"--milestones must be increasing epochs >= 1, not {','.join(map(str, m))}",
        )
        check(self.nonmono >= 1, f"--nonmono must be at least 1, not {self.nonmono}")
        if self.optimizer == "ntasgd":
            check(
                self.momentum == 0,
                "--optimizer ntasgd uses no momentum (neither its SGD nor its averaged SGD, as in AWD-LSTM)",
            )
            check(
                self.schedule != "plateau",
                "--optimizer ntasgd already answers a stalled validation loss (by averaging); "
                "--schedule plateau would also cut the rate then: use --schedule none (AWD-LSTM), decay or steps",
            )

    def _validate_budget(self) -> None:
        """The settings of --schedule budget, and only with it."""
        for name in ("anneal", "lr_floor", "warmup"):
            check(
                getattr(self, name) is None or self.schedule == "budget",
                f"--{name.replace('_', '-')} applies to --schedule budget",
            )
        check(self.anneal in (None, *ANNEALS), f"--anneal must be one of {', '.join(ANNEALS)}, not {self.anneal!r}")
        check(self.lr_floor is None or 0 <= self.lr_floor <= 1, f"--lr-floor must be in [0, 1], not {self.lr_floor}")
        check(self.warmup is None or 0 <= self.warmup < 1, f"--warmup must be in [0, 1), not {self.warmup}")


def stop_words(reason: str, config: TrainConfig) -> str:
    """Why a run stopped, for people: the reason and the limit behind it (`max-time: 300 s`)."""
    words = {
        "epochs": f"{config.epoch_limit} epochs",
        "max-steps": f"{config.max_steps} steps",
        "max-time": f"{config.max_time:g} s" if config.max_time is not None else "",
        "early-stopping": f"{config.patience} evaluations without a better validation loss",
        "non-monotone": f"validation stalled over the last {config.nonmono} evaluations",
    }.get(reason)
    return f"{reason}: {words}" if words else reason
