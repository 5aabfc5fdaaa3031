"""How gradients flow back through a recurrent language model: by lag, and by layer before and after clipping.

Gradient by lag.  Each window of K + 2 tokens is read one step at a time from a zero
state; L_t is the loss of the last prediction (step t = K) and s_j the recurrent state
after step j (every layer's h, and c for an LSTM):

    norm(k) = mean over windows of || dL_t / ds_{t-k} ||,    k = 0 .. K

L_t depends on s_t only through the top layer's output, so norm(0) is the gradient with
respect to that output; for k >= 1 it flows back through k recurrent steps.  A tanh RNN's
norm shrinks geometrically with k (vanishing gradients); an LSTM's cell keeps it.

Gradient by layer.  The mean loss of every position of the windows, back-propagated once:
the gradient norm of each part of the model (embedding, each recurrent layer, decoder) and
of all of them, before and after `clip_grad_norm_` rescales the whole gradient to `clip`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nlm.errors import DataError
from nlm.models.rnn import layer_name


def sample_windows(ids: np.ndarray, *, count: int, length: int, seed: int) -> torch.Tensor:
    """`count` windows of `length` consecutive ids at random offsets of the stream: long [count, length]."""
    if len(ids) < length:
        raise DataError(
            f"the text has {len(ids):,} tokens, fewer than the {length} a window needs; give more text or fewer --lags"
        )
    generator = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - length + 1, (count,), generator=generator).tolist()
    return torch.stack([torch.from_numpy(np.asarray(ids[s : s + length], dtype=np.int64)) for s in starts])


def state_tensors(state) -> list[torch.Tensor]:
    """The tensors of a recurrent state (h [L, B, H]; (h, c); or a list of per-layer states), batch on dim 1."""
    if isinstance(state, torch.Tensor):
        return [state]
    return [t for part in state for t in state_tensors(part)]


def _row_norms_squared(gradient: torch.Tensor | None, batch_dim: int, rows: int) -> torch.Tensor:
    if gradient is None:  # a tensor the loss does not depend on
        return torch.zeros(rows)
    dims = [d for d in range(gradient.dim()) if d != batch_dim]
    return gradient.detach().float().pow(2).sum(dim=dims).cpu()


def lag_gradient_norms(model: nn.Module, windows: torch.Tensor) -> list[float]:
    """norm(k) for k = 0 .. K from windows [B, K + 2] (inputs are the first K + 1 tokens, the target the last)."""
    inputs, target = windows[:, :-1], windows[:, -1:]
    steps, rows = inputs.shape[1], inputs.shape[0]
    model.eval()  # no dropout: the same windows give the same numbers
    states = []
    with (
        torch.enable_grad(),
        torch.backends.cudnn.flags(enabled=False),
    ):  # cuDNN RNNs back-propagate only in training mode
        state = None
        for t in range(steps):
            features, state = model(inputs[:, t : t + 1], state)
            states.append(state_tensors(state))
        loss = model.nll(features, target).sum()  # window b's loss depends on row b alone
        earlier = [tensor for k in range(1, steps) for tensor in states[steps - 1 - k]]
        gradients = torch.autograd.grad(loss, [features, *earlier], allow_unused=True)
    per_state = len(states[0])
    norms = [_row_norms_squared(gradients[0], 0, rows)]
    for k in range(1, steps):
        chunk = gradients[1 + (k - 1) * per_state : 1 + k * per_state]
        norms.append(sum(_row_norms_squared(g, 1, rows) for g in chunk))
    return [float(n.sqrt().mean()) for n in norms]


@dataclass(frozen=True)
class LayerGradient:
    layer: str  # embedding, rnn layer N, decoder, or total
    before: float  # gradient norm before clipping
    after: float  # after clip_grad_norm_ (the same when clipping is off or the norm is under the limit)
    clipped: bool  # whether clipping scaled the gradient: the total norm was over the limit (every layer alike)


def _group_norms(named: list[tuple[str, nn.Parameter]]) -> dict[str, float]:
    squares: dict[str, float] = defaultdict(float)
    for name, parameter in named:
        if parameter.grad is not None:
            squares[layer_name(name)] += float(parameter.grad.detach().float().pow(2).sum())
    squares["total"] = sum(squares.values())
    return {layer: value**0.5 for layer, value in squares.items()}


def layer_gradient_norms(model: nn.Module, windows: torch.Tensor, *, clip: float) -> list[LayerGradient]:
    """Per-part gradient norms of the mean loss over windows [B, T + 1], before and after clipping to `clip`
    (0: off)."""
    model.eval()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        features, _ = model(windows[:, :-1])
        model.nll(features, windows[:, 1:]).mean().backward()
    before = _group_norms(named)
    if clip > 0:
        torch.nn.utils.clip_grad_norm_([p for _, p in named], clip)
    after = _group_norms(named)
    model.zero_grad(set_to_none=True)
    clipped = 0 < clip < before["total"]
    return [LayerGradient(layer, before[layer], after[layer], clipped) for layer in before]
