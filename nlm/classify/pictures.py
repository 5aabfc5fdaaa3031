"""Pictures of a trained classifier: FGSM examples (clean, perturbation, adversarial) and its first layer's filters.

The attack picture is the classic one of Goodfellow et al. (2015): one column per image,

    row 1  the clean image, with the prediction and its confidence (red, with the true label, when wrong)
    row 2  the perturbation epsilon x sign(gradient) that FGSM adds (white +epsilon, black -epsilon, grey 0
           where the gradient is 0), before the sum is clamped to [0, 1]
    row 3  the adversarial image, with the new prediction and its confidence (red when wrong)

The filters picture draws what the first layer looks for: a CNN's first conv kernels, or an
MLP's first dense layer (one image-sized weight vector per unit), each stretched to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nlm.classify.attack import input_gradient, perturb
from nlm.classify.evaluation import align_labels
from nlm.config import check
from nlm.errors import DataError
from nlm.images.data import ImageSet, check_shape
from nlm.io.figures import new_figure, save_figure
from nlm.io.pixels import to_floats
from nlm.io.png import save_filters


@dataclass(frozen=True, eq=False)
class AttackExamples:
    epsilon: float  # the FGSM step, in pixel units of [0, 1]
    classes: tuple[str, ...]  # the model's class names
    clean: torch.Tensor  # float [N, C, H, W] in [0, 1], on the CPU
    step: torch.Tensor  # float [N, C, H, W]: epsilon * sign(gradient of the loss), the perturbation added
    adversarial: torch.Tensor  # float [N, C, H, W]: clamp(clean + step, 0, 1)
    labels: torch.Tensor  # long [N]: true classes, as indices into `classes`
    clean_probs: torch.Tensor  # float [N, K]: the model's softmax on the clean images
    adversarial_probs: torch.Tensor  # float [N, K]: on the adversarial ones
    index: torch.Tensor  # long [N]: each image's position in the image set it came from

    def rows(self) -> list[dict]:
        """One dict per image: its index, true label, the clean and adversarial predictions with their probability."""
        clean_p, clean_i = self.clean_probs.max(1)
        adv_p, adv_i = self.adversarial_probs.max(1)
        return [
            {
                "index": int(n),
                "label": self.classes[int(y)],
                "clean": self.classes[int(c)],
                "clean_probability": float(cp),
                "adversarial": self.classes[int(a)],
                "adversarial_probability": float(ap),
            }
            for n, y, c, cp, a, ap in zip(self.index, self.labels, clean_i, clean_p, adv_i, adv_p)
        ]


def _chosen(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    correct_only: bool,
    device: torch.device,
    batch_size: int = 500,
) -> torch.Tensor:
    """Indices of the first `count` images, or of the first `count` the model classifies correctly."""
    if not correct_only:
        return torch.arange(min(count, len(images)))
    chosen: list[int] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            predicted = model(to_floats(images[start : start + batch_size], device)).argmax(1).cpu()
            right = (predicted == labels[start : start + batch_size]).nonzero().flatten() + start
            chosen += right.tolist()[: count - len(chosen)]
            if len(chosen) == count:
                break
    if not chosen:
        raise DataError("the model classifies none of these images correctly, so there is nothing to attack")
    return torch.tensor(chosen)


def attack_examples(
    model: nn.Module,
    classes: tuple[str, ...],
    images: ImageSet,
    *,
    count: int = 8,
    epsilon: float = 0.1,
    correct_only: bool = False,
    device: torch.device,
) -> AttackExamples:
    """FGSM at `epsilon` on the first `count` labelled images (with `correct_only`, the first `count` the model
    gets right), with the model's predictions before and after."""
    check(count >= 1, f"--count must be at least 1, not {count}")
    check(0 <= epsilon <= 1, f"epsilon must be in [0, 1] (pixels lie in [0, 1]), not {epsilon}")
    check_shape(images, tuple(model.config.input_shape))
    if len(images) == 0:
        raise DataError(f"{images.source} holds no images to attack")
    model.eval()
    labels = align_labels(images, classes)
    index = _chosen(model, images.images, labels, count, correct_only, device)
    x, labels = to_floats(images.images[index], device), labels[index].to(device)
    gradient = input_gradient(model, x, labels)
    adversarial = perturb(x, gradient, epsilon)
    with torch.no_grad():
        clean_probs, adversarial_probs = (model(v).float().softmax(1).cpu() for v in (x, adversarial))
    step = (epsilon * gradient.sign()).cpu()
    return AttackExamples(
        epsilon, tuple(classes), x.cpu(), step, adversarial.cpu(), labels.cpu(), clean_probs, adversarial_probs, index
    )


ROWS = ("clean", "sign(grad) x {epsilon:g}", "adversarial")  # the picture's rows, as their labels say


def perturbation_pixels(examples: AttackExamples) -> torch.Tensor:
    """The middle row's pixels: epsilon * sign(gradient) mapped to [0, 1], +epsilon white, -epsilon black, 0 grey."""
    scale = 2 * examples.epsilon if examples.epsilon > 0 else 1.0
    return (examples.step / scale + 0.5).clamp(0, 1)


def _show(ax, image: torch.Tensor, title: str, colour: str = "black") -> None:
    pixels = image.permute(1, 2, 0).numpy()
    ax.imshow(
        pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest"
    )
    ax.set_title(title, fontsize=8, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_attack_examples(examples: AttackExamples, path: str | Path) -> tuple[int, int]:
    """The three-row FGSM picture as a PNG; a wrong prediction is red.  Returns (width, height)."""
    count = len(examples.clean)
    figure, axes = new_figure(width=1.25 * count + 0.6, height=4.4, rows=3, columns=count)
    perturbation = perturbation_pixels(examples)
    for n, row in enumerate(examples.rows()):
        for r, kind in ((0, "clean"), (2, "adversarial")):
            wrong = row[kind] != row["label"]
            title = f"{row[kind]} {row[f'{kind}_probability']:.0%}" + (f" (is {row['label']})" if wrong else "")
            _show(
                axes[r][n], (examples.clean if r == 0 else examples.adversarial)[n], title, "red" if wrong else "black"
            )
        _show(axes[1][n], perturbation[n], "")
    for r, name in enumerate(ROWS):
        axes[r][0].set_ylabel(name.format(epsilon=examples.epsilon), fontsize=8)
    figure.suptitle(f"FGSM at epsilon {examples.epsilon:g}: prediction and confidence (red: wrong)", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def first_layer(model: nn.Module) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(weights [units, C*h*w], (C, h, w)) of the first conv or dense layer, each unit's weights as an image."""
    layer = next((m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)), None)
    if layer is None:
        raise DataError("this classifier has no conv or dense layer to draw")
    if isinstance(layer, nn.Conv2d):
        weight = layer.weight.detach()  # [out, in, k, k]
        return weight.flatten(1), tuple(weight.shape[1:])
    return layer.weight.detach(), tuple(model.config.input_shape)


def save_classifier_filters(
    model: nn.Module, path: str | Path, *, count: int | None = None, scale: int | None = None
) -> tuple[int, int, int]:
    """A PNG grid of the first layer's units (all, or the first `count`); returns (units drawn, width, height)."""
    check(count is None or count >= 1, f"--count must be at least 1, not {count}")
    weight, shape = first_layer(model)
    weight = weight[:count] if count else weight
    scale = scale or max(1, 64 // max(shape[1:]))  # a 5x5 kernel is drawn 60 pixels wide, a 28x28 image 56
    width, height = save_filters(weight.cpu(), shape, path, scale=scale)
    return len(weight), width, height
