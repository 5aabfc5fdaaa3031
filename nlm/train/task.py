"""What the trainer and its callbacks ask of a task: the contract LMTask, ClassifyTask and ReconstructTask keep."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from torch import nn


class Task(Protocol):
    """Everything the trainer and its callbacks ask of a task (LMTask, ClassifyTask, ReconstructTask)."""

    kind: str  # recorded in checkpoints: "lm", "vision", "autoencoder"
    unit: str  # what a step's count counts, for throughput: "tok", "img"
    model: nn.Module
    uniform_loss: float | None  # the loss of a uniform guess (log V, log K), for the divergence guard

    def batches_per_epoch(self) -> int: ...
    def train_batches(self, epoch: int, start: int) -> Iterator[Any]: ...  # from batch `start` of `epoch`
    def training_step(self, batch: Any) -> tuple[torch.Tensor, int]: ...  # (mean loss, units it covers)
    def lr_scale(self, batch: Any) -> float: ...  # this step's learning rate, as a multiple of the current one
    def evaluate(self) -> dict[str, float] | None: ...  # validation metrics with "loss"; None without validation data
    def describe(self, metrics: dict[str, float]) -> str: ...  # "loss 4.61 ppl 100.3"
    def state_dict(self) -> dict: ...  # what a resume needs besides the weights (a carried hidden state)
    def load_state_dict(self, state: dict) -> None: ...
    def checkpoint_extras(self) -> dict: ...  # {"config": {...}, ...}: what using the model later needs
