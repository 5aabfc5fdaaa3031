"""Where training stands: the counters the trainer keeps and every checkpoint saves, so a resume continues exactly."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


@dataclass
class Progress:
    epoch: int = 0  # the current epoch, 0-based
    batch: int = 0  # batches done in the current epoch
    global_step: int = 0  # optimizer steps in all
    units: int = 0  # tokens or images trained on in all
    elapsed: float = 0.0  # seconds of training in all, earlier sessions included
    epoch_loss: float = 0.0  # sum of loss * count over the current epoch
    epoch_count: int = 0  # units trained on in the current epoch
    best_loss: float = math.inf  # the best evaluation loss so far
    best_epoch: int = -1
    bad_evals: int = 0  # evaluations since the last improvement

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Progress:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
