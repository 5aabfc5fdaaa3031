"""Optimizers by name, and a learning rate scaled for one step (variable-length BPTT scales it by window length)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nlm.train.config import TrainConfig

OPTIMIZERS = {
    "sgd": lambda params, c: torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda params, c: torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay),
    "adamw": lambda params, c: torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay),
}


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    return OPTIMIZERS[config.optimizer](params, config)


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
