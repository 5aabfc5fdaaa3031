"""nlm: neural language modeling from the command line, and from Python.

    import nlm
    lm = nlm.load("runs/en")                      # a run folder or a .pt file, as `-m` takes it
    lm.score(["the cat sat", "cat the sat"])      # [SentenceScore(logprob=..., tokens=4, oovs=0, ...), ...]
    lm.perplexity("valid.txt").bits_per_byte
    lm.next_tokens("the cat", k=5)                # [("sat", -1.2), ...]
    lm.generate("the river", beam=4, num=2)
    nlm.train(train="train.txt", valid="valid.txt", output="runs/en", max_time=60)

`import nlm` loads no torch: the names below are imported on first use.  Every user error
raises `nlm.NlmError`, with the message and exit code the command line gives it.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from nlm.errors import NLMError as NlmError

__version__ = "0.1.0"

__all__ = [
    "Generation",
    "LanguageModel",
    "NextTokens",
    "NlmError",
    "Perplexity",
    "SentenceScore",
    "TokenScore",
    "TrainSummary",
    "__version__",
    "load",
    "train",
]

if TYPE_CHECKING:
    from nlm.api import (
        Generation,
        LanguageModel,
        NextTokens,
        Perplexity,
        SentenceScore,
        TokenScore,
        TrainSummary,
        load,
        train,
    )


class _Package(types.ModuleType):
    """`nlm` itself.  `nlm.train` is the API's function, though `nlm/train/` is also the trainer's package:
    importing that package sets `nlm.train` to it, and this setter lets it go (the package stays in
    `sys.modules`, so `from nlm.train.run import ...` works; `import nlm.train.run as x` does not)."""

    @property
    def train(self):
        from nlm.api import train

        return train

    @train.setter
    def train(self, package: types.ModuleType) -> None:
        pass


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """The API's names, imported (with torch) when first asked for."""
    if name in __all__:
        import nlm.api

        return getattr(nlm.api, name)
    raise AttributeError(f"module 'nlm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
