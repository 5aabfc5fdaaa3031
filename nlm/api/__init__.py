"""nlm's Python API, the layer the `nlm` command is built on: cli -> api -> lm, train, text, io.

Its public names are `nlm`'s own (nlm/__init__.py lists them), imported here on first use so
that the command line can read `nlm.api.options` without loading torch; the rest of this
package is what the command line shares with them, internal by convention.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# Each public name and the module that defines it.
PUBLIC = {
    "Generation": "nlm.lm.generation",
    "LanguageModel": "nlm.api.model",
    "NextTokens": "nlm.lm.next_tokens",
    "Perplexity": "nlm.lm.perplexity",
    "SentenceScore": "nlm.lm.scoring",
    "TokenScore": "nlm.lm.scoring",
    "TrainSummary": "nlm.api.training",
    "load": "nlm.api.model",
    "train": "nlm.api.training",
}
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

if TYPE_CHECKING:
    from nlm.api.model import LanguageModel, load
    from nlm.api.training import TrainSummary, train
    from nlm.lm.generation import Generation
    from nlm.lm.next_tokens import NextTokens
    from nlm.lm.perplexity import Perplexity
    from nlm.lm.scoring import SentenceScore, TokenScore


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'nlm.api' has no attribute {name!r}")
