"""What a loss in nats per token is reported as: a perplexity, or bits (per character, for char models)."""

from __future__ import annotations

import math
import sys

_LARGEST_EXPONENT = math.log(sys.float_info.max)  # exp() of anything larger overflows a float


def perplexity(nats: float) -> float:
    """exp(nats): the perplexity of a mean loss of `nats` per token; inf where that overflows a float."""
    return math.exp(nats) if nats <= _LARGEST_EXPONENT else math.inf


def bits(nats: float) -> float:
    return nats / math.log(2)
