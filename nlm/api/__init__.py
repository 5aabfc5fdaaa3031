"""nlm's Python API, the layer the `nlm` command is built on: cli -> api -> lm, train, text, io.

Its public names are `nlm`'s own (nlm/__init__.py lists them); the rest of this package is
what the command line shares with them, internal by convention.
"""

from __future__ import annotations

from nlm.api.model import LanguageModel, load
from nlm.api.training import TrainSummary, train
from nlm.lm.generation import Generation
from nlm.lm.next_tokens import NextTokens
from nlm.lm.perplexity import Perplexity
from nlm.lm.scoring import SentenceScore, TokenScore

__all__ = [
    "Generation",
    "LanguageModel",
    "NextTokens",
    "Perplexity",
    "SentenceScore",
    "TokenScore",
    "TrainSummary",
    "load",
    "train",
]
