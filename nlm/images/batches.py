"""Mini-batches of an image set: the same shuffle for the same (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch


def shuffled_batches(count: int, batch_size: int, *, seed: int, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Index batches [<= batch_size] of one epoch's shuffle, from batch `start` on.

    The order depends on (seed, epoch) only, so a resumed run sees the same batches."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
    yield from order.split(batch_size)[start:]


def batches_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)
