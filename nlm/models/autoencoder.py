"""Fully connected autoencoders on flattened images: undercomplete, sparse, denoising, stacked.

    x [B, D] -> encoder[0] -> act -> ... -> encoder[L-1] -> act = code [B, hidden[-1]]
    code     -> decoder[0] -> act -> ... -> decoder[L-1] -> output_act = reconstruction [B, D]

decoder[j] mirrors encoder[L-1-j], so layer k of a stacked autoencoder is the one-layer
denoising autoencoder (encoder[k], decoder[L-1-k]) that reconstructs the clean codes of
layers < k.  A task pretrains layer k = 0, 1, ... with `layer_loss` on `layer_parameters(k)`,
then fine-tunes the whole network with `loss`; this module holds no training loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nlm.config import Config, check
from nlm.models.choices import ACTIVATIONS, AUTOENCODER_KINDS, CORRUPTIONS, DENOISING_KINDS

ACTIVATION_LAYERS: dict[str, Callable[[], nn.Module]] = {  # keyed by nlm.models.choices.ACTIVATIONS
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def _gaussian(x: torch.Tensor, level: float, generator: torch.Generator | None) -> torch.Tensor:
    return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _mask(x: torch.Tensor, level: float, generator: torch.Generator | None) -> torch.Tensor:
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= level
    return x * keep


# name (nlm.models.choices.CORRUPTIONS) -> corrupt(x, level, generator): a new tensor, x itself is left alone
CORRUPTERS: dict[str, Callable[[torch.Tensor, float, torch.Generator | None], torch.Tensor]] = {
    "gaussian": _gaussian,  # add N(0, level^2) noise to every value
    "mask": _mask,  # zero each value with probability level
}


@dataclass(frozen=True)
class AutoencoderConfig(Config):
    kind: str = "undercomplete"  # one of AUTOENCODER_KINDS; stacked adds layer-wise pretraining
    input_size: int = 784  # values per flattened image, C*H*W
    hidden: tuple[int, ...] = (64,)  # encoder layer sizes from the input side; the last is the code
    code_activation: str = "sigmoid"  # after every encoder layer and every decoder layer but the last
    output_activation: str = "sigmoid"  # on the reconstruction: sigmoid for pixels in [0, 1], linear for any
    sparsity: float = 0.0  # weight of the L1 penalty mean|code|; must be > 0 for kind sparse
    corruption: str = "mask"  # for denoising and stacked: one of CORRUPTIONS
    noise: float = 0.25  # the corruption's level: gaussian std, or mask probability

    def validate(self) -> None:
        check(
            self.kind in AUTOENCODER_KINDS,
            f"unknown autoencoder kind {self.kind!r}; choose one of {', '.join(AUTOENCODER_KINDS)}",
        )
        check(self.input_size >= 1, f"input size must be at least 1, not {self.input_size}")
        check(
            len(self.hidden) >= 1 and min(self.hidden) >= 1,
            f"hidden sizes must be one or more positive numbers, not {self.hidden}",
        )
        for name in (self.code_activation, self.output_activation):
            check(name in ACTIVATIONS, f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
        check(self.sparsity >= 0, f"sparsity weight must be >= 0, not {self.sparsity}")
        check(
            self.kind != "sparse" or self.sparsity > 0, "a sparse autoencoder needs a sparsity weight > 0 (e.g. 1e-3)"
        )
        check(
            self.kind != "undercomplete" or self.hidden[-1] < self.input_size,
            f"an undercomplete code must be smaller than the input ({self.hidden[-1]} >= {self.input_size}); "
            "use kind sparse or denoising for a wider code",
        )
        check(
            self.kind != "stacked" or len(self.hidden) >= 2,
            "a stacked autoencoder needs two or more hidden sizes, e.g. 256,64",
        )
        check(
            self.corruption in CORRUPTIONS,
            f"unknown corruption {self.corruption!r}; choose one of {', '.join(CORRUPTIONS)}",
        )
        check(
            self.noise >= 0 and (self.corruption != "mask" or self.noise < 1),
            f"corruption level must be >= 0 (and < 1 for mask), not {self.noise}",
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """(input_size, *hidden): layer k maps sizes[k] -> sizes[k+1]."""
        return (self.input_size, *self.hidden)


def reconstruction_error(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per value (pixel), both [B, D]."""
    return F.mse_loss(reconstruction, target.flatten(1))


class Autoencoder(nn.Module):
    """Encoder and mirrored decoder of nn.Linear layers, built from an AutoencoderConfig."""

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        pairs = list(zip(config.sizes, config.sizes[1:]))
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)  # encoder[k]: sizes[k] -> sizes[k+1]
        self.decoder = nn.ModuleList(nn.Linear(b, a) for a, b in reversed(pairs))  # decoder[j] undoes encoder[L-1-j]
        self.activation = ACTIVATION_LAYERS[config.code_activation]()
        self.output_activation = ACTIVATION_LAYERS[config.output_activation]()

    @property
    def num_layers(self) -> int:
        return len(self.encoder)

    @property
    def denoising(self) -> bool:
        """Whether training corrupts the input (kinds denoising and stacked)."""
        return self.config.kind in DENOISING_KINDS

    # --- the whole network -------------------------------------------------

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, D] or [B, C, H, W] -> code [B, hidden[-1]]."""
        h = x.flatten(1)
        for k in range(self.num_layers):
            h = self.encode_layer(h, k)
        return h

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """code [B, hidden[-1]] -> reconstruction [B, D] (flat; reshape to show it)."""
        h = code
        for k in reversed(range(self.num_layers)):
            h = self.decode_layer(h, k)
        return h

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, D] or [B, C, H, W] -> (reconstruction [B, D], code [B, hidden[-1]])."""
        code = self.encode(x)
        return self.decode(code), code

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A corrupted copy of x by the configured corruption; x is unchanged."""
        return CORRUPTERS[self.config.corruption](x, self.config.noise, generator)

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        """Sparsity penalty: weight * mean |code| over batch and units (0 when the weight is 0)."""
        return self.config.sparsity * code.abs().mean()

    def loss(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss of the whole network on clean x [B, D]: the input is corrupted for the
        denoising kinds while in training mode, the target never is; plus the sparsity penalty.
        Returns (loss, detached metrics {"mse", "sparsity"}) so a caller decides when to sync."""
        target = x.flatten(1)
        inputs = self.corrupt(target, generator) if self.denoising and self.training else target
        reconstruction, code = self(inputs)
        error = reconstruction_error(reconstruction, target)
        penalty = self.penalty(code)
        return error + penalty, {"mse": error.detach(), "sparsity": penalty.detach()}

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The encoder's weights as {"k.weight": [sizes[k+1], sizes[k]], "k.bias": [sizes[k+1]]}."""
        return {key: value.detach().clone() for key, value in self.encoder.state_dict().items()}

    # --- one layer at a time (stacked pretraining) ----------------------------

    def encode_layer(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """Layer k's code: [B, sizes[k]] -> [B, sizes[k+1]]."""
        return self.activation(self.encoder[k](h))

    def decode_layer(self, code: torch.Tensor, k: int) -> torch.Tensor:
        """Undo layer k: [B, sizes[k+1]] -> [B, sizes[k]]; layer 0 ends in the output activation."""
        h = self.decoder[self.num_layers - 1 - k](code)
        return self.output_activation(h) if k == 0 else self.activation(h)

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        """What pretraining layer k updates: encoder[k] and its mirror decoder[L-1-k]."""
        return [*self.encoder[k].parameters(), *self.decoder[self.num_layers - 1 - k].parameters()]

    @torch.no_grad()
    def layer_input(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The clean codes of layers < k for x, [B, sizes[k]]: what layer k learns to rebuild."""
        h = x.flatten(1)
        for j in range(k):
            h = self.encode_layer(h, j)
        return h

    def layer_loss(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pretraining loss of layer k on images x: rebuild clean layer_input(x, k) from a
        corrupted copy (denoising kinds, training mode), plus the sparsity penalty."""
        target = self.layer_input(x, k)
        inputs = self.corrupt(target, generator) if self.denoising and self.training else target
        code = self.encode_layer(inputs, k)
        error = reconstruction_error(self.decode_layer(code, k), target)
        penalty = self.penalty(code)
        return error + penalty, {"mse": error.detach(), "sparsity": penalty.detach()}
