"""The one place that knows where a language model keeps its recurrent layers and how their parameters are named.

RNNLM holds one fused `nn.RNN`/`nn.LSTM`/`nn.GRU` as `model.rnn`, whose parameters are
`weight_ih_l{N}`, `weight_hh_l{N}`, `bias_ih_l{N}`, `bias_hh_l{N}`, or a stack of one module per
layer as `model.stack` (`stack.layers.{N}.weight_hh_l0`); `RNNLM.recurrent` is whichever it has.
"""

from __future__ import annotations

import re

from torch import nn

BODIES = ("rnn", "stack")  # the attributes that hold the recurrent layers: fused, or one module per layer
_LAYER = re.compile(r"^layers\.(\d+)\.|_l(\d+)")


def recurrent_stack(model: nn.Module) -> nn.Module:
    return model.recurrent


def layer_name(parameter: str) -> str:
    """The part of the model a parameter belongs to: `embedding`, `rnn layer 1` (1-based), `decoder`..."""
    head, _, rest = parameter.partition(".")
    if head not in BODIES:
        return head
    match = _LAYER.search(rest)
    return f"rnn layer {int(next(g for g in match.groups() if g is not None)) + 1}" if match else "rnn"
