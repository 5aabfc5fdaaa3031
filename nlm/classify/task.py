"""The image-classification task: cross-entropy on shuffled mini-batches, optionally mixed with FGSM examples.

With `epsilon > 0` every training step also attacks its own batch: the gradient of the
clean loss with respect to the pixels gives the fast-gradient-sign examples, and the
step's loss is (1 - w) * clean + w * adversarial (Goodfellow et al. 2015, w = 0.5).

Under torchrun each process trains on its block of every batch and evaluates its block of
the validation images (`Shard`); losses and confusion matrices are summed over the processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlm.classify.attack import perturb
from nlm.classify.evaluation import align_labels, evaluate_classifier
from nlm.config import Config, check
from nlm.images.batches import batches_per_epoch, shuffled_batches
from nlm.images.data import ImageSet
from nlm.io.pixels import to_floats
from nlm.train.shard import SINGLE, Shard


@dataclass(frozen=True)
class ClassifyConfig(Config):
    batch_size: int = 64  # images per training step
    eval_batch_size: int = 500  # images per forward pass when evaluating
    epsilon: float = 0.0  # FGSM step for adversarial training, in pixel units of [0, 1]; 0 trains on clean images only
    adversarial_weight: float = 0.5  # share of the loss from the FGSM examples when epsilon > 0

    def validate(self) -> None:
        check(self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}")
        check(self.eval_batch_size >= 1, f"the evaluation batch size must be at least 1, not {self.eval_batch_size}")
        check(0 <= self.epsilon <= 1, f"--epsilon must be in [0, 1] (pixels lie in [0, 1]), not {self.epsilon}")
        check(
            0 <= self.adversarial_weight <= 1, f"--adversarial-weight must be in [0, 1], not {self.adversarial_weight}"
        )


class ClassifyTask:
    kind = "vision"
    unit = "img"

    def __init__(
        self,
        *,
        model: nn.Module,
        model_kind: str,
        train: ImageSet,
        valid: ImageSet | None,
        data: ClassifyConfig,
        device: torch.device,
        seed: int,
        shard: Shard = SINGLE,
    ) -> None:
        self.model, self.model_kind, self.data, self.device, self.seed, self.shard = (
            model,
            model_kind,
            data,
            device,
            seed,
            shard,
        )
        shard.check_batch(data.batch_size)
        self.classes = train.classes
        self.uniform_loss = math.log(len(self.classes))  # a uniform guess over the classes, for the divergence guard
        self.images, self.labels = train.images.to(device), train.require_labels().to(device)
        self.valid = valid
        self.valid_labels = None if valid is None else align_labels(valid, self.classes)

    # -- training ---------------------------------------------------------------------------
    def batches_per_epoch(self) -> int:
        return batches_per_epoch(len(self.images), self.data.batch_size)

    def train_batches(self, epoch: int, start: int) -> Iterator[torch.Tensor]:
        yield from shuffled_batches(len(self.images), self.data.batch_size, seed=self.seed, epoch=epoch, start=start)

    def training_step(self, index: torch.Tensor) -> tuple[torch.Tensor, int]:
        if self.shard.world > 1:  # this process's block of the batch, its loss weighted by its share
            mine, count = self.shard.part(index)
            return self.shard.weight(self._loss(mine)[0], count, len(index)), len(index)
        return self._loss(index)

    def _loss(self, index: torch.Tensor) -> tuple[torch.Tensor, int]:
        index = index.to(self.device)
        x, y = to_floats(self.images[index], self.device), self.labels[index]
        if self.data.epsilon == 0:
            return F.cross_entropy(self.model(x).float(), y), len(y)
        # 1. the clean loss, keeping its graph: the step back-propagates through it too
        x.requires_grad_(True)
        clean = F.cross_entropy(self.model(x).float(), y)
        # 2. its gradient with respect to the pixels (the parameters' .grad is left alone)
        (grad,) = torch.autograd.grad(clean, x, retain_graph=True)
        # 3. the FGSM examples, constants for this step, and the mixed loss
        adversarial = F.cross_entropy(self.model(perturb(x.detach(), grad, self.data.epsilon)).float(), y)
        w = self.data.adversarial_weight
        return (1 - w) * clean + w * adversarial, len(y)

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float] | None:
        if self.valid is None:
            return None
        if self.shard.world > 1:
            return self._evaluate_shards()
        result = evaluate_classifier(
            self.model,
            self.valid.images,
            self.valid_labels,
            self.classes,
            device=self.device,
            batch_size=self.data.eval_batch_size,
        )
        return {"loss": result.loss, "accuracy": result.accuracy, "images": result.count}

    def _evaluate_shards(self) -> dict[str, float]:
        """Each process evaluates its block of the validation images; loss sums and correct counts are summed."""
        block = self.shard.block(len(self.valid))
        images, labels = self.valid.images[block], self.valid_labels[block]
        loss = correct = 0.0
        if len(images):
            result = evaluate_classifier(
                self.model, images, labels, self.classes, device=self.device, batch_size=self.data.eval_batch_size
            )
            loss, correct = result.loss * result.count, float(result.confusion.diagonal().sum())
        loss, correct = self.shard.sum([loss, correct])
        return {"loss": loss / len(self.valid), "accuracy": correct / len(self.valid), "images": len(self.valid)}

    def describe(self, metrics: dict[str, float]) -> str:
        text = f"loss {metrics['loss']:.4f}"
        return text + (f" acc {metrics['accuracy']:.2%}" if "accuracy" in metrics else "")

    # -- state for checkpoints: the data position is the trainer's, the shuffle is (seed, epoch) --
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def checkpoint_extras(self) -> dict:
        config = {"model": self.model.config.to_dict(), "model_kind": self.model_kind, "data": self.data.to_dict()}
        return {"config": config, "classes": list(self.classes)}
