"""The fast gradient sign method (FGSM) and a classifier's accuracy under it.

    x_adv = clamp(x + epsilon * sign(d loss(model(x), y) / d x), 0, 1)

One gradient per image serves every epsilon: FGSM moves each pixel by exactly epsilon
in the direction that raises the loss, so only the step length changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlm.classify.evaluation import align_labels
from nlm.config import check
from nlm.errors import ConfigError, DataError
from nlm.images.data import ImageSet, check_shape
from nlm.io.pixels import to_floats


def perturb(x: torch.Tensor, grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """x + epsilon * sign(grad), kept in the pixel range [0, 1]."""
    return (x + epsilon * grad.sign()).clamp_(0, 1)


def input_gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d cross-entropy / d x for a batch x [B, C, H, W]; the parameters' .grad is left alone."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x).float(), labels)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The FGSM examples of x [B, C, H, W] in [0, 1] against `model` at `epsilon`."""
    return perturb(x.detach(), input_gradient(model, x, labels), epsilon)


@dataclass(frozen=True)
class AttackResult:
    epsilon: float  # the FGSM step, in pixel units of [0, 1]
    accuracy: float  # share of images still classified correctly after the attack
    count: int  # images attacked

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "accuracy": self.accuracy, "images": self.count}


def parse_epsilons(text: str) -> tuple[float, ...]:
    """`"0,0.05,0.1"` -> (0.0, 0.05, 0.1), each in [0, 1]."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--epsilons must be numbers separated by commas, e.g. 0,0.05,0.1, not {text!r}") from None
    check(all(0 <= v <= 1 for v in values), f"every epsilon must be in [0, 1] (pixels lie in [0, 1]), not {text!r}")
    return values


def accuracy_under_attack(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    epsilons: Sequence[float],
    *,
    device: torch.device,
    batch_size: int = 500,
) -> list[AttackResult]:
    """Accuracy of `model` (put in eval mode) on uint8 images [N, C, H, W] attacked at each epsilon."""
    check(len(epsilons) >= 1, "give at least one epsilon")
    if len(labels) == 0:
        raise DataError("there are no images to attack")
    model.eval()
    correct = torch.zeros(len(epsilons), dtype=torch.long)
    for batch, y in zip(images.split(batch_size), labels.split(batch_size)):
        x, y = to_floats(batch, device), y.to(device)
        grad = input_gradient(model, x, y)
        with torch.no_grad():
            for i, epsilon in enumerate(epsilons):
                correct[i] += int((model(perturb(x, grad, epsilon)).argmax(1) == y).sum())
    return [AttackResult(float(e), int(c) / len(labels), len(labels)) for e, c in zip(epsilons, correct)]


def attack_images(
    model: nn.Module,
    classes: tuple[str, ...],
    images: ImageSet,
    epsilons: Sequence[float],
    *,
    device: torch.device,
    batch_size: int = 500,
) -> list[AttackResult]:
    """`accuracy_under_attack` on a labelled ImageSet, after checking its image size and matching its class names."""
    check_shape(images, tuple(model.config.input_shape))
    return accuracy_under_attack(
        model, images.images, align_labels(images, classes), epsilons, device=device, batch_size=batch_size
    )
