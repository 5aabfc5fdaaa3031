"""Optimizers by name, and a learning rate scaled for one step (variable-length BPTT scales it by window length).

`ntasgd` starts as plain SGD; nlm.train.averaging replaces it with `averaged_sgd` once validation stalls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nlm.train.config import TrainConfig

OPTIMIZER_BUILDERS = {  # keyed by nlm.train.config.OPTIMIZERS
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
    "ntasgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, weight_decay=c.weight_decay),  # until the switch
}
LR_KIND = {"ntasgd": "sgd"}  # whose default learning rate an optimizer takes, where not its own


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    return OPTIMIZER_BUILDERS[config.optimizer](params, config)


def averaged_sgd(params, *, lr: float, weight_decay: float) -> torch.optim.ASGD:
    """SGD that also keeps `ax`, the running mean of the weights from its second step on (t0=0, lambd=0:
    no decay of the rate, averaging at once), as salesforce/awd-lstm-lm builds it."""
    return torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=weight_decay)


@contextmanager
def scaled_lr(optimizer: torch.optim.Optimizer, scale: float) -> Iterator[None]:
    """Every group's learning rate times `scale` inside the block, and back after it."""
    if scale == 1.0:
        yield
        return
    rates = [group["lr"] for group in optimizer.param_groups]
    for group in optimizer.param_groups:
        group["lr"] *= scale
    try:
        yield
    finally:
        for group, rate in zip(optimizer.param_groups, rates):
            group["lr"] = rate
