"""The one place that knows where a language model keeps its recurrent layers and how their parameters are named.

RNNLM holds one fused `nn.RNN`/`nn.LSTM`/`nn.GRU` as `model.rnn`, whose parameters are
`weight_ih_l{N}`, `weight_hh_l{N}`, `bias_ih_l{N}`, `bias_hh_l{N}`; a stack of one module per
layer (`rnn.{N}.weight_hh_l0`) is read the same way.  Gate order in an LSTM's biases is
input, forget, cell, output, each `hidden` long.
"""

from __future__ import annotations

import re

import torch
from torch import nn

STACK = "rnn"  # the attribute of the language model that holds the recurrent layers
_LAYER = re.compile(r"^(\d+)\.|_l(\d+)")


def recurrent_stack(model: nn.Module) -> nn.Module:
    return getattr(model, STACK)


def layer_name(parameter: str) -> str:
    """The part of the model a parameter belongs to: `embedding`, `rnn layer 1` (1-based), `decoder`..."""
    head, _, rest = parameter.partition(".")
    if head != STACK:
        return head
    match = _LAYER.search(rest)
    return f"{STACK} layer {int(next(g for g in match.groups() if g is not None)) + 1}" if match else STACK


@torch.no_grad()
def set_forget_bias(model: nn.Module, value: float) -> int:
    """Set every LSTM layer's forget-gate bias to `value` (its b_ih part; the b_hh part to 0); returns the layers set."""
    count = 0
    for lstm in (m for m in recurrent_stack(model).modules() if isinstance(m, nn.LSTM)):
        for name, bias in lstm.named_parameters():
            if name.startswith(("bias_ih", "bias_hh")):
                hidden = bias.shape[0] // 4  # gates i, f, g, o
                bias[hidden : 2 * hidden] = value if name.startswith("bias_ih") else 0.0
                count += name.startswith("bias_ih")
    return count
