"""One recurrent module per layer: layers of different sizes, dropout between them, weight drop.

RNNLM uses this stack in place of PyTorch's fused multi-layer module when its config asks
for weight drop, locked dropout or a last layer of its own size (AWD-LSTM: 400 -> 1150 ->
1150 -> 400, the last size equal to the tied embedding).  Each layer is still a fused
one-layer `nn.LSTM`/`nn.GRU`/`nn.RNN`, so CUDA runs cuDNN kernels.

Weight drop (DropConnect on the hidden-to-hidden matrix, Wan et al. 2013) calls the layer
through `torch.func.functional_call` with a dropped copy of `weight_hh_l0`: the layer keeps
its raw parameter, which the optimizer updates and the checkpoint stores, and the gradient
reaches it through the dropout.  PyTorch's RNN modules notice the swapped weight at the
start of every forward and rebuild their flat weight list, so nothing goes stale (the
parametrize route once did: pytorch/pytorch#65688).  A new mask per forward in training;
none in evaluation.

The state is a list with one entry per layer: h [1, B, H_l], or (h, c) for the LSTM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call

from nlm.models.regularisers import drop_weights, dropout

HIDDEN_WEIGHTS = ("weight_hh_l0",)  # what weight drop drops in each one-layer module

LayerState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RecurrentStack(nn.Module):
    """`forward(x [B, T, sizes[0]], state) -> (last layer's output [B, T, sizes[-1]], state)`."""

    def __init__(
        self,
        make_layer: Callable[..., nn.RNNBase],
        sizes: Sequence[int],
        *,
        dropout: float,
        locked: bool,
        weight_drop: float,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            make_layer(n_in, n_out, 1, batch_first=True) for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        self.dropout, self.locked, self.weight_drop = dropout, locked, weight_drop

    def forward(self, x: torch.Tensor, state: list[LayerState] | None = None) -> tuple[torch.Tensor, list[LayerState]]:
        states = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = dropout(x, self.dropout, training=self.training, locked=self.locked)
            x, layer_state = self._run(layer, x, None if state is None else state[i])
            states.append(layer_state)
        return x, states

    def _run(self, layer: nn.RNNBase, x: torch.Tensor, state: LayerState | None):
        if self.training and self.weight_drop > 0:
            return functional_call(layer, drop_weights(layer, HIDDEN_WEIGHTS, self.weight_drop), (x, state))
        return layer(x, state)


@torch.no_grad()
def set_forget_bias(body: nn.Module, value: float) -> int:
    """Set every LSTM layer's forget-gate bias in `body` to `value` (its b_ih part; b_hh's to 0); returns the
    layers set.

    Gate order in an LSTM's biases is input, forget, cell, output, each `hidden` long."""
    count = 0
    for lstm in (m for m in body.modules() if isinstance(m, nn.LSTM)):
        for name, bias in lstm.named_parameters():
            if name.startswith(("bias_ih", "bias_hh")):
                hidden = bias.shape[0] // 4
                bias[hidden : 2 * hidden] = value if name.startswith("bias_ih") else 0.0
                count += name.startswith("bias_ih")
    return count
