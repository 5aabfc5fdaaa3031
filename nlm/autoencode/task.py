"""The reconstruction task, with the phases of stacked pretraining: layer 1, ..., layer K, then fine-tuning.

Every kind but `stacked` has one phase, the whole network.  A stacked autoencoder has
K + 1: phase k < K trains only layer k's encoder and its mirror decoder (greedy
layer-wise denoising pretraining), phase K fine-tunes everything end to end.

Each phase is one `Trainer.fit` of the shared trainer, so there is no second loop:
`set_phase(k)` turns `requires_grad` off for every parameter outside the phase, and the
trainer, built after it, gives its optimizer exactly the phase's parameters.  The
phase, and the steps and seconds of the phases before it, are part of the task state
in every checkpoint, so `--resume` rebuilds the right phase and its optimizer and
continues it; `phase_train_config` turns the run's settings into one phase's
(pretraining phases run `pretrain_epochs`; --max-steps and --max-time cap the whole run).

Under torchrun each process trains on its block of every batch and evaluates its block of
the validation images (`Shard`).  The reconstruction error and the sparsity penalty are means
over the images, so the averaged gradient is a single process's (the corruption of denoising
kinds draws from each process's own generator).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from nlm.config import Config, check
from nlm.images.batches import batches_per_epoch, shuffled_batches
from nlm.images.data import ImageSet
from nlm.io.pixels import to_floats
from nlm.models.autoencoder import Autoencoder, reconstruction_error
from nlm.train.config import TrainConfig
from nlm.train.shard import SINGLE, Shard


@dataclass(frozen=True)
class ReconstructConfig(Config):
    batch_size: int = 64  # images per training step
    eval_batch_size: int = 500  # images per forward pass when evaluating
    pretrain_epochs: int = 2  # stacked: epochs of greedy pretraining for each layer, before fine-tuning

    def validate(self) -> None:
        check(self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}")
        check(self.eval_batch_size >= 1, f"the evaluation batch size must be at least 1, not {self.eval_batch_size}")
        check(self.pretrain_epochs >= 1, f"--pretrain-epochs must be at least 1, not {self.pretrain_epochs}")


class ReconstructTask:
    kind = "autoencoder"
    unit = "img"

    def __init__(
        self,
        *,
        model: Autoencoder,
        train: ImageSet,
        valid: ImageSet | None,
        data: ReconstructConfig,
        device: torch.device,
        seed: int,
        shard: Shard = SINGLE,
    ) -> None:
        self.model, self.data, self.device, self.seed, self.shard = model, data, device, seed, shard
        shard.check_batch(data.batch_size)
        self.image_shape = train.shape
        self.images = train.images.to(device)
        self.valid = valid
        self.phase = 0
        self.uniform_loss = None  # reconstruction errors have no uniform guess to compare with
        self.steps_before = 0  # optimizer steps of the finished phases
        self.seconds_before = 0.0  # training seconds of the finished phases
        self.set_phase(0)  # stacked: layer 1 first; every other kind: its one phase, the whole network

    # -- phases -----------------------------------------------------------------------------
    @property
    def num_phases(self) -> int:
        return self.model.num_layers + 1 if self.model.config.kind == "stacked" else 1

    @property
    def pretraining(self) -> bool:
        """Whether the current phase trains one layer (stacked phases 0..K-1) rather than the whole network."""
        return self.model.config.kind == "stacked" and self.phase < self.model.num_layers

    def phase_name(self, phase: int | None = None) -> str:
        phase = self.phase if phase is None else phase
        if self.model.config.kind != "stacked":
            return "train"
        return f"layer {phase + 1}/{self.model.num_layers}" if phase < self.model.num_layers else "fine-tune"

    def phase_metrics(self) -> str:
        """What the phase trains, and what its evaluations' `loss` and `mse` measure (they differ while pretraining)."""
        if self.pretraining:
            k = self.phase + 1
            source = "the images" if k == 1 else f"layer {k - 1}'s code"
            return (
                f"training layer {k} alone; loss: its error rebuilding its own input ({source}), "
                "mse: the whole network's error on the images"
            )
        if self.model.config.sparsity:
            return "training the whole network; loss: its error on the images plus the sparsity penalty, mse: the error"
        return "training the whole network; loss and mse: its error on the images"

    def set_phase(self, phase: int) -> None:
        """Train only layer `phase` (stacked pretraining) or the whole network; build the trainer after this."""
        check(0 <= phase < self.num_phases, f"phase {phase} does not exist; this run has {self.num_phases}")
        self.phase = phase
        trained = set(map(id, self.model.layer_parameters(phase))) if self.pretraining else None
        for p in self.model.parameters():
            p.requires_grad_(trained is None or id(p) in trained)

    def phase_train_config(self, run: TrainConfig) -> TrainConfig:
        """The run's TrainConfig for the current phase: pretraining phases run `pretrain_epochs`, and
        --max-steps / --max-time are what the finished phases left of them (at least one step / second)."""
        changes: dict = {"epochs": self.data.pretrain_epochs} if self.pretraining else {}
        if run.max_steps is not None:
            changes["max_steps"] = max(1, run.max_steps - self.steps_before)
        if run.max_time is not None:
            changes["max_time"] = max(1.0, run.max_time - self.seconds_before)
        return run.replace(**changes)

    def finish_phase(self, steps: int, seconds: float) -> None:
        """Move on to the next phase after one that ran `steps` steps in `seconds`."""
        self.steps_before += steps
        self.seconds_before += self.shard.max(seconds)  # the slowest process's: every one decides the same
        self.set_phase(self.phase + 1)

    # -- training ---------------------------------------------------------------------------
    def batches_per_epoch(self) -> int:
        return batches_per_epoch(len(self.images), self.data.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[torch.Tensor]:
        yield from shuffled_batches(
            len(self.images), self.data.batch_size, seed=self.seed + 7919 * self.phase, epoch=epoch, start=start
        )

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The phase's loss on images x [B, C, H, W]; the corruption draws from torch's RNG (saved in checkpoints)."""
        return self.model.layer_loss(x, self.phase) if self.pretraining else self.model.loss(x)

    def training_step(self, index: torch.Tensor) -> tuple[torch.Tensor, int]:
        if self.shard.world > 1:  # this process's block of the batch, its loss weighted by its share
            mine, count = self.shard.part(index)
            return self.shard.weight(self._loss_of(mine), count, len(index)), len(index)
        return self._loss_of(index), len(index)

    def _loss_of(self, index: torch.Tensor) -> torch.Tensor:
        return self.loss(to_floats(self.images[index.to(self.device)], self.device))[0]

    # -- evaluation: the phase's loss (no corruption in eval mode) and the whole network's error --
    def evaluate(self) -> dict[str, float] | None:
        if self.valid is None:
            return None
        loss = mse = 0.0
        for batch in self.valid.images[self.shard.block(len(self.valid))].split(self.data.eval_batch_size):
            x = to_floats(batch, self.device)
            loss += float(self.loss(x)[0]) * len(x)
            mse += float(reconstruction_error(self.model(x)[0], x)) * len(x)
        loss, mse = self.shard.sum([loss, mse])
        return {"loss": loss / len(self.valid), "mse": mse / len(self.valid), "phase": self.phase_name()}

    def describe(self, metrics: dict[str, float]) -> str:
        prefix = f"{self.phase_name()}: " if self.model.config.kind == "stacked" else ""
        return prefix + f"loss {metrics['loss']:.5f}" + (f" mse {metrics['mse']:.5f}" if "mse" in metrics else "")

    # -- state for checkpoints ----------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"phase": self.phase, "steps_before": self.steps_before, "seconds_before": self.seconds_before}

    def load_state_dict(self, state: dict) -> None:
        self.steps_before, self.seconds_before = state["steps_before"], state["seconds_before"]
        if state["phase"] != self.phase:
            self.set_phase(state["phase"])

    def checkpoint_extras(self) -> dict:
        config = {
            "model": self.model.config.to_dict(),
            "data": self.data.to_dict(),
            "image_shape": list(self.image_shape),
        }
        return {"config": config}
