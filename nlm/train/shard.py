"""One process's share of every batch when several train together (torchrun), and the sums across them.

The recipe gives each task a `Shard(rank, world)`: the task trains on its block of every global
batch, weights its loss by its share (`weight`), sums its evaluation across the processes
(`sum`), and gathers what a checkpoint needs from all of them (`gather`).  With one process
(`SINGLE`) every method leaves things exactly as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nlm.errors import ConfigError


def current_world() -> int:
    """How many processes train this run: the process group's size, or 1 without one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@dataclass(frozen=True)
class Shard:
    """This process's part of every batch: rank `rank` of `world` takes its contiguous block."""

    rank: int = 0
    world: int = 1

    def block(self, n: int) -> slice:
        """This rank's block of n items (rows, lines, images); the blocks differ in size by at most one."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def check_batch(self, batch_size: int) -> None:
        if batch_size < self.world:
            raise ConfigError(
                f"--batch-size {batch_size} is smaller than the {self.world} processes that share every batch "
                f"(it is the batch of all of them together); give --batch-size {self.world} or more"
            )

    def part(self, batch):
        """This rank's block of a batch (an index tensor or array) and its size; a rank with none of it gets the
        batch's first item, to be weighted 0 (it must still compute a loss and take part in DDP's all-reduce)."""
        mine = batch[self.block(len(batch))]
        return (mine, len(mine)) if len(mine) else (batch[:1], 0)

    def weight(self, loss: torch.Tensor, local: int, total: int) -> torch.Tensor:
        """A mean loss over `local` of the global batch's `total` units, weighted so that the ranks' mean
        (the loss whose gradient DDP's average is) equals the global batch's mean: uneven blocks count
        as much as they hold, and a rank with nothing of a batch (local 0) adds nothing."""
        if local * self.world == total:
            return loss
        return loss * (local * self.world / total)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (on the CPU: gloo, never waiting for a GPU)."""
        if self.world == 1:
            return list(values)
        total = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(total)
        return total.tolist()

    def max(self, value: float) -> float:
        if self.world == 1:
            return value
        largest = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        return largest.item()

    def gather(self, tensor: torch.Tensor, total: int, dim: int) -> torch.Tensor:
        """Every rank's block of `tensor` along `dim`, in rank order: the tensor one process would hold."""
        if self.world == 1:
            return tensor
        width = -(-total // self.world)
        shape = list(tensor.shape)
        shape[dim] = width - tensor.size(dim)
        padded = torch.cat([tensor, tensor.new_zeros(shape)], dim).contiguous()
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(parts, padded)
        sizes = [len(range(total)[Shard(r, self.world).block(total)]) for r in range(self.world)]
        return torch.cat([part.narrow(dim, 0, size) for part, size in zip(parts, sizes)], dim)


SINGLE = Shard()
