"""What every decoder shares (greedy, sampling, beam search): the symbols never generated and a decoded continuation."""

from __future__ import annotations

from typing import NamedTuple

import torch

from nlm.text.symbols import BOS, PAD

NEVER_GENERATED = (PAD, BOS)  # never a training target, so never an output


class Decoded(NamedTuple):
    """One decoded continuation, as ids."""

    ids: list[int]  # <eos> excluded
    ended: bool  # stopped at <eos>
    logprob: float  # natural log-prob of the ids under the model, and of <eos> when it ended


def never_generated(logprobs: torch.Tensor) -> torch.Tensor:
    """`logprobs` [N, V] as float32 with the symbols that are never generated at -inf."""
    never = torch.tensor(NEVER_GENERATED, device=logprobs.device)
    return logprobs.float().index_fill(-1, never, float("-inf"))
