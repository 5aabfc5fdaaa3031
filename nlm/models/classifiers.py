"""Image classifiers, MLP and CNN, each built from a frozen config and returning logits.

    MLP: x [B, C, H, W] -> flatten [B, C*H*W] -> (Linear -> act -> dropout) * len(hidden) -> Linear
         -> logits [B, classes]
    CNN: x [B, C, H, W] -> (Conv2d -> ReLU -> pool) * len(conv) -> flatten -> the same dense head

The MLP's hidden layers have the shapes of an autoencoder's encoder layers, so a pretrained
encoder can initialise them (`MLPClassifier.init_from_encoder`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nlm.config import Config, check
from nlm.errors import ConfigError
from nlm.models.autoencoder import ACTIVATION_LAYERS
from nlm.models.choices import ACTIVATIONS, ARCHITECTURES, POOLS

ConvSpec = tuple[int, int, int, int]  # (out_channels, kernel, stride, padding)
LENET_CONV: tuple[ConvSpec, ...] = ((6, 5, 1, 2), (16, 5, 1, 0))  # 28 -> 28 -> pool 14 -> 10 -> pool 5
POOL_LAYERS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}  # keyed by nlm.models.choices.POOLS
CONV_FORMAT = "out:kernel:stride:padding, comma-separated, e.g. 32:3:1:1,64:3:1:1"


def parse_conv_layers(text: str) -> tuple[ConvSpec, ...]:
    """`"32:3:1:1,64:3"` -> ((32, 3, 1, 1), (64, 3, 1, 0)); stride defaults to 1, padding to 0."""
    layers = []
    for number, item in enumerate(text.split(","), start=1):
        try:
            values = [int(v) for v in item.strip().split(":")]
            if not 2 <= len(values) <= 4:
                raise ValueError
        except ValueError:
            raise ConfigError(f"conv layer {number} {item.strip()!r} is not {CONV_FORMAT}") from None
        out, kernel, stride, padding = values + [1, 0][len(values) - 2 :]
        layers.append((out, kernel, stride, padding))
    return tuple(layers)


def format_conv_layers(layers: tuple[ConvSpec, ...]) -> str:
    return ",".join(":".join(map(str, layer)) for layer in layers)


def conv_output_shapes(
    input_shape: tuple[int, int, int], layers: tuple[ConvSpec, ...], pool_size: int
) -> list[tuple[int, int, int]]:
    """(C, H, W) after each conv+pool block; ConfigError names the first layer that does not fit."""
    _, h, w = input_shape
    shapes = []
    for number, (out, kernel, stride, padding) in enumerate(layers, start=1):
        name = f"conv layer {number} ({out}:{kernel}:{stride}:{padding})"
        check(
            out >= 1 and kernel >= 1 and stride >= 1 and padding >= 0,
            f"{name} needs channels, kernel and stride >= 1 and padding >= 0",
        )
        check(
            kernel <= min(h, w) + 2 * padding,
            f"{name} has a {kernel}x{kernel} kernel but gets {h}x{w} inputs with padding {padding}; "
            "use a smaller kernel, more padding or fewer layers",
        )
        h, w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        check(
            h // pool_size >= 1 and w // pool_size >= 1,
            f"{name} leaves {h}x{w}, which pooling by {pool_size} shrinks to {h // pool_size}x{w // pool_size}; "
            "use fewer conv layers, more padding or a smaller pool size",
        )
        h, w = h // pool_size, w // pool_size
        shapes.append((out, h, w))
    return shapes


def _check_common(input_shape: tuple[int, ...], hidden: tuple[int, ...], dropout: float, num_classes: int) -> None:
    check(
        len(input_shape) == 3 and min(input_shape) >= 1,
        f"input shape must be three positive numbers C, H, W, not {input_shape}",
    )
    check(all(size >= 1 for size in hidden), f"hidden sizes must be positive, not {hidden}")
    check(0 <= dropout < 1, f"dropout must be in [0, 1), not {dropout}")
    check(num_classes >= 2, f"a classifier needs at least 2 classes, not {num_classes}")


@dataclass(frozen=True)
class MLPConfig(Config):
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of an image; the MLP sees C*H*W values
    hidden: tuple[int, ...] = (256,)  # hidden layer sizes from the input side; () is logistic regression
    activation: str = "relu"  # after each hidden layer; match the autoencoder's code activation when transferring
    dropout: float = 0.0  # after each hidden activation, in training only
    num_classes: int = 10  # number of logits

    def validate(self) -> None:
        _check_common(self.input_shape, self.hidden, self.dropout, self.num_classes)
        check(
            self.activation in ACTIVATIONS,
            f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}",
        )


@dataclass(frozen=True)
class CNNConfig(Config):
    input_shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W) of an image
    conv: tuple[ConvSpec, ...] = LENET_CONV  # conv layers (out_channels, kernel, stride, padding); a string is parsed
    pool: str = "max"  # pooling after every conv layer: one of POOLS
    pool_size: int = 2  # pooling window and stride; 1 means no pooling
    hidden: tuple[int, ...] = (120, 84)  # dense layer sizes between the conv stack and the logits
    dropout: float = 0.0  # after each hidden dense activation, in training only
    num_classes: int = 10  # number of logits

    def __post_init__(self) -> None:
        # from_dict and the CLI give lists or a string; the frozen config keeps tuples of ints
        conv = parse_conv_layers(self.conv) if isinstance(self.conv, str) else self.conv
        try:
            object.__setattr__(self, "conv", tuple(tuple(int(v) for v in layer) for layer in conv))
        except (TypeError, ValueError):
            raise ConfigError(f"conv layers must be {CONV_FORMAT}, not {self.conv!r}") from None
        check(all(len(layer) == 4 for layer in self.conv), f"each conv layer needs 4 numbers: {CONV_FORMAT}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        super().__post_init__()

    def validate(self) -> None:
        _check_common(self.input_shape, self.hidden, self.dropout, self.num_classes)
        check(len(self.conv) >= 1, "a CNN needs at least one conv layer")
        check(self.pool in POOLS, f"unknown pooling {self.pool!r}; choose one of {', '.join(POOLS)}")
        check(self.pool_size >= 1, f"pool size must be at least 1, not {self.pool_size}")
        conv_output_shapes(self.input_shape, self.conv, self.pool_size)


class DenseHead(nn.Module):
    """[B, in_features] -> (Linear -> act -> dropout) per hidden size -> Linear -> logits [B, classes]."""

    def __init__(
        self, in_features: int, hidden: tuple[int, ...], num_classes: int, activation: str, dropout: float
    ) -> None:
        super().__init__()
        sizes = (in_features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.activation = ACTIVATION_LAYERS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(sizes[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = self.dropout(self.activation(layer(x)))
        return self.out(x)


class MLPClassifier(nn.Module):
    config_class = MLPConfig

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = config.input_shape
        c, h, w = config.input_shape
        self.dense = DenseHead(c * h * w, config.hidden, config.num_classes, config.activation, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] (or already flat [B, C*H*W]) in [0, 1] -> logits [B, num_classes]."""
        return self.dense(x.flatten(1))

    @torch.no_grad()
    def init_from_encoder(self, encoder_state: Mapping[str, torch.Tensor], activation: str | None = None) -> int:
        """Copy a pretrained encoder into the first hidden layers; returns how many were copied.

        `encoder_state` is `Autoencoder.encoder_state()`: "k.weight" [sizes[k+1], sizes[k]] and
        "k.bias" go to `dense.hidden[k]` for each encoder layer k.  Deeper hidden layers and the
        output layer keep their fresh initialisation.  `activation`, the autoencoder's code
        activation, must equal this MLP's when given.
        """
        check(
            activation is None or activation == self.config.activation,
            f"the encoder was trained with {activation} codes but this MLP uses {self.config.activation}; "
            f"use --activation {activation}",
        )
        count = len({key.split(".")[0] for key in encoder_state})
        check(count >= 1, "the encoder state holds no layers; pass Autoencoder.encoder_state()")
        sizes = [self.dense.hidden[0].in_features, *self.config.hidden]
        want = [tuple(encoder_state[f"{k}.weight"].shape[::-1]) for k in range(count)]
        check(
            count <= len(self.dense.hidden) and all(want[k] == (sizes[k], sizes[k + 1]) for k in range(count)),
            f"the encoder's layers are {' -> '.join(str(a) for a, _ in want)} -> {want[-1][1]} but this MLP's are "
            f"{' -> '.join(map(str, sizes))}; use --hidden {','.join(str(b) for _, b in want)} "
            f"on images of {want[0][0]} values",
        )
        for k in range(count):
            self.dense.hidden[k].weight.copy_(encoder_state[f"{k}.weight"])
            self.dense.hidden[k].bias.copy_(encoder_state[f"{k}.bias"])
        return count


class CNNClassifier(nn.Module):
    config_class = CNNConfig

    def __init__(self, config: CNNConfig) -> None:
        super().__init__()
        self.config = config
        self.input_shape = config.input_shape
        blocks: list[nn.Module] = []
        channels = config.input_shape[0]
        for out, kernel, stride, padding in config.conv:
            blocks += [nn.Conv2d(channels, out, kernel, stride, padding), nn.ReLU()]
            if config.pool_size > 1:
                blocks.append(POOL_LAYERS[config.pool](config.pool_size))
            channels = out
        self.features = nn.Sequential(*blocks)
        c, h, w = conv_output_shapes(config.input_shape, config.conv, config.pool_size)[-1]
        self.dense = DenseHead(c * h * w, config.hidden, config.num_classes, "relu", config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] in [0, 1] -> logits [B, num_classes]."""
        return self.dense(self.features(x).flatten(1))


# keyed by nlm.models.choices.ARCHITECTURES
CLASSIFIERS: dict[str, type[MLPClassifier] | type[CNNClassifier]] = {"cnn": CNNClassifier, "mlp": MLPClassifier}
CLASSIFIER_CONFIGS: dict[str, type[MLPConfig] | type[CNNConfig]] = {
    name: model.config_class for name, model in CLASSIFIERS.items()
}


def build_classifier(kind: str, config: MLPConfig | CNNConfig) -> nn.Module:
    """The classifier of `kind` built from its config (a checkpoint stores both)."""
    check(kind in ARCHITECTURES, f"unknown classifier {kind!r}; choose one of {', '.join(ARCHITECTURES)}")
    model_class = CLASSIFIERS[kind]
    check(
        isinstance(config, model_class.config_class),
        f"a {kind} classifier needs a {model_class.config_class.__name__}, not {type(config).__name__}",
    )
    return model_class(config)
