"""A trained classifier from its checkpoint alone, ready for evaluation, prediction and attacks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from nlm.errors import ConfigError
from nlm.io.checkpoint import inconsistent_checkpoint, load_checkpoint, resolve_checkpoint
from nlm.models.classifiers import CLASSIFIER_CONFIGS, build_classifier
from nlm.runtime import check_model_fits


@dataclass(frozen=True, eq=False)
class LoadedClassifier:
    """A classifier ready for inference: `model` is in eval mode on `device`."""

    model: nn.Module
    arch: str  # "mlp" or "cnn"
    classes: tuple[str, ...]  # class names; the model's output i is classes[i]
    path: Path  # the checkpoint file
    device: torch.device

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.config.input_shape)


def load_classifier(path: str | Path, *, device: torch.device | None = None) -> LoadedClassifier:
    """A trained classifier from its checkpoint (or run folder) alone."""
    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path, kind="vision")
    try:
        arch = checkpoint["config"]["model_kind"]
        config = CLASSIFIER_CONFIGS[arch].from_dict(checkpoint["config"]["model"])
        network = check_model_fits(partial(build_classifier, arch, config))
        network.load_state_dict(checkpoint["model"])
        classes = tuple(checkpoint["classes"])
    except (KeyError, TypeError, ValueError, RuntimeError, ConfigError) as e:
        raise inconsistent_checkpoint(path, e) from None
    device = device or torch.device("cpu")
    return LoadedClassifier(network.to(device).eval(), arch, classes, path, device)
