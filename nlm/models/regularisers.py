"""The AWD-LSTM regularisers (Merity et al. 2017), as plain functions of tensors.

Each is the identity outside training and scales what it keeps by 1 / (1 - p), so the
expected activation is the same in training and evaluation:

    embedding_dropout   whole word types vanish from the embedding matrix for one batch
                        (Gal & Ghahramani 2016): every occurrence of a dropped word is zero
    locked_dropout      one mask per sequence and feature, shared by every time step
                        (variational dropout, Gal & Ghahramani 2016)
    drop_weights        DropConnect (Wan et al. 2013) on named weight matrices: a fresh mask
                        per call, handed to `torch.func.functional_call` so the module keeps
                        its raw weights (what the optimizer updates and the checkpoint stores)
    activation_penalty  AR, alpha * mean(dropped^2), and TAR, beta * mean((h_t - h_{t-1})^2)
                        on the undropped outputs (Merity et al. 2017, section 4.6)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _keep_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """Bernoulli(1 - p) scaled by 1 / (1 - p), of `like`'s dtype and device."""
    return like.new_empty(shape).bernoulli_(1 - p) / (1 - p)


def embedding_dropout(embedding: nn.Embedding, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """embedding(x) [B, T, E] with a random p of the V word types zeroed (all their occurrences)."""
    vectors = embedding(x)
    if not training or p == 0:
        return vectors
    # Masking the looked-up rows by their type's mask equals masking the matrix, without a V x E product.
    keep = _keep_mask((embedding.num_embeddings,), p, vectors)
    return vectors * keep[x].unsqueeze(-1)


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x [B, T, H] times one [B, 1, H] mask: the same units dropped at every step of a sequence."""
    if not training or p == 0:
        return x
    return x * _keep_mask((x.size(0), 1, x.size(2)), p, x)


def drop_weights(module: nn.Module, names: tuple[str, ...], p: float) -> dict[str, torch.Tensor]:
    """{name: dropped copy} for `torch.func.functional_call(module, ...)`; the gradient flows to the raw weights."""
    return {name: F.dropout(getattr(module, name), p, training=True) for name in names}


def activation_penalty(dropped: torch.Tensor, raw: torch.Tensor | None, *, ar: float, tar: float) -> torch.Tensor:
    """alpha * AR + beta * TAR from the last layer's outputs [B, T, H], dropped (AR) and not (TAR)."""
    penalty = dropped.new_zeros((), dtype=torch.float32)
    if ar:
        penalty = penalty + ar * dropped.float().pow(2).mean()
    if tar and raw is not None and raw.size(1) > 1:
        penalty = penalty + tar * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
    return penalty


def dropout(x: torch.Tensor, p: float, *, training: bool, locked: bool) -> torch.Tensor:
    """Dropout of x [B, T, H]: locked (one mask per sequence) or standard (one draw per element)."""
    return locked_dropout(x, p, training) if locked else F.dropout(x, p, training)
