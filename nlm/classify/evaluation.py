"""Classifier evaluation: loss, accuracy, per-class accuracy and the confusion matrix; and predictions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlm.errors import DataError
from nlm.images.data import ImageSet, check_shape
from nlm.io.pixels import to_floats


def align_labels(images: ImageSet, classes: tuple[str, ...]) -> torch.Tensor:
    """The labels of `images` as indices into `classes`, matched by class name.

    A folder holding only some of the classes numbers its sub-folders from 0, so its
    label 0 may be the model's class 3; matching names keeps them straight."""
    labels = images.require_labels()
    if tuple(images.classes) == tuple(classes):
        return labels
    unknown = [name for name in images.classes if name not in classes]
    if unknown:
        raise DataError(
            f"{images.source} has classes {', '.join(map(repr, unknown[:5]))} that the model does not know "
            f"(it knows {', '.join(classes[:12])}{', ...' if len(classes) > 12 else ''})"
        )
    mapping = torch.tensor([classes.index(name) for name in images.classes], dtype=torch.long)
    return mapping[labels]


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [K, K]: entry (t, p) counts images of true class t predicted as p."""
    flat = labels.long() * num_classes + predicted.long()
    return torch.bincount(flat.cpu(), minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True, eq=False)
class Evaluation:
    classes: tuple[str, ...]  # class names, in the model's order
    confusion: torch.Tensor  # int64 [K, K]: row = true class, column = predicted class
    loss: float  # mean cross-entropy in nats

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        return int(self.confusion.diagonal().sum()) / max(self.count, 1)

    @property
    def per_class(self) -> list[float | None]:
        """Accuracy on the images of each true class; None for a class with no images."""
        totals = self.confusion.sum(1)
        return [int(c) / int(t) if t else None for c, t in zip(self.confusion.diagonal(), totals)]

    def to_dict(self) -> dict:
        return {
            "images": self.count,
            "loss": round(self.loss, 6),
            "accuracy": round(self.accuracy, 6),
            "classes": list(self.classes),
            "per_class": {name: None if a is None else round(a, 6) for name, a in zip(self.classes, self.per_class)},
            "confusion": self.confusion.tolist(),
        }


def batch_logits(
    model: nn.Module, images: torch.Tensor, *, device: torch.device, batch_size: int
) -> Iterator[torch.Tensor]:
    """Logits [b, K] of uint8 images [N, C, H, W], batch by batch, without gradients."""
    with torch.no_grad():
        for batch in images.split(batch_size):
            yield model(to_floats(batch, device)).float()


def evaluate_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    *,
    device: torch.device,
    batch_size: int = 500,
) -> Evaluation:
    """Mean loss, accuracy and confusion of `model` on uint8 images [N, C, H, W] with labels [N]."""
    if len(images) == 0:
        raise DataError("there are no images to evaluate on")
    total, predictions = 0.0, []
    for logits, y in zip(batch_logits(model, images, device=device, batch_size=batch_size), labels.split(batch_size)):
        y = y.to(device)
        total += float(F.cross_entropy(logits, y, reduction="sum"))
        predictions.append(logits.argmax(1).cpu())
    confusion = confusion_matrix(torch.cat(predictions), labels.cpu(), len(classes))
    return Evaluation(tuple(classes), confusion, total / len(images))


def predict(
    model: nn.Module, images: torch.Tensor, *, device: torch.device, batch_size: int = 500
) -> Iterator[tuple[int, float]]:
    """(predicted class index, its softmax probability) for each image, in input order."""
    for logits in batch_logits(model, images, device=device, batch_size=batch_size):
        probability, index = logits.softmax(1).max(1)
        yield from zip(index.tolist(), probability.tolist())


def evaluate_images(
    model: nn.Module, classes: tuple[str, ...], images: ImageSet, *, device: torch.device, batch_size: int = 500
) -> Evaluation:
    """`evaluate_classifier` on a labelled ImageSet, after checking its image size and matching its class names."""
    check_shape(images, tuple(model.config.input_shape))
    return evaluate_classifier(
        model, images.images, align_labels(images, classes), classes, device=device, batch_size=batch_size
    )


def predict_images(
    model: nn.Module, images: ImageSet, *, device: torch.device, batch_size: int = 500
) -> Iterator[tuple[int, float]]:
    """`predict` on an ImageSet (labels not needed), after checking its image size."""
    check_shape(images, tuple(model.config.input_shape))
    return predict(model, images.images, device=device, batch_size=batch_size)


def evaluation_report(result: Evaluation, title: str) -> list[str]:
    """The evaluation as plain text: accuracy and loss, the per-class accuracy, the confusion matrix."""
    from nlm.io.tables import text_table

    per_class = [
        [name, f"{total:,}", "-" if accuracy is None else f"{accuracy:.2%}"]
        for name, total, accuracy in zip(result.classes, result.confusion.sum(1).tolist(), result.per_class)
    ]
    matrix = [[name, *row] for name, row in zip(result.classes, result.confusion.tolist())]
    return [
        f"{title}: accuracy {result.accuracy:.2%} ({result.count:,} images), loss {result.loss:.4f}",
        "",
        *text_table(["class", "images", "accuracy"], per_class),
        "",
        "confusion matrix (rows: true class, columns: predicted class)",
        *text_table(["", *result.classes], matrix),
    ]
