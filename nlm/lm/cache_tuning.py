"""`--tune-cache VALID_FILE`: the cache's theta and lambda chosen on validation text (AWD-LSTM tuned them per data set).

One pass over the validation text scores every (theta, lambda) of a small grid at once (nlm/lm/cache.py,
CacheGrid), under the protocol, rows and dynamic evaluation the text will then be scored with; the pair with
the lowest perplexity wins.  A theta or lambda given on the command line is kept, and only the other is
searched.  The window W is not searched: a larger one costs more and rarely hurts (AWD-LSTM: 500 on PTB,
3,785 on WikiText-2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from nlm.config import check
from nlm.io.text import display_name
from nlm.lm.adapt import adapted
from nlm.lm.adapt_config import Adaptation
from nlm.lm.loading import LoadedLM
from nlm.lm.perplexity import corpus_perplexity


@dataclass(frozen=True)
class CacheTuning:
    """The theta and lambda chosen, and what they gave on the validation text."""

    source: str  # the validation text's name
    window: int
    theta: float
    lam: float
    ppl: float  # with the cache at (theta, lam)
    plain_ppl: float  # without the cache (with dynamic evaluation, when it is on)
    tokens: int

    def describe(self) -> str:
        return (
            f"cache tuned on {self.source}: --cache-theta {self.theta:g} --cache-lambda {self.lam:g} "
            f"(window {self.window}; perplexity {self.ppl:.2f} there against {self.plain_ppl:.2f} without the cache, "
            f"{self.tokens:,} tokens)"
        )


def tune_cache(
    lm: LoadedLM,
    settings: Adaptation,
    source: str | PathLike | Iterable[str],
    *,
    protocol: str = "stream",
    rows: int | None = None,
    batch_size: int = 64,
    cache_dir: Path | None = None,
) -> CacheTuning:
    """Choose the cache's theta and lambda on `source` (a file, `-`, or lines) for `settings` (which need `cache`)."""
    check(settings.cache > 0, "tuning the cache needs its window: --cache W")
    grid_settings = settings.replace(tune_cache=None)
    with adapted(lm, grid_settings, cache_dir=cache_dir, grid=True) as adapter:
        corpus_perplexity(
            lm, source, protocol=protocol, batch_size=batch_size, cache_dir=cache_dir, rows=rows, adapter=adapter
        )
    grid = adapter.cache
    theta, lam, nats = grid.best()
    name = display_name(source) if isinstance(source, str | PathLike) else "the given lines"
    plain = math.exp(grid.plain / max(grid.tokens, 1))
    return CacheTuning(name, settings.cache, theta, lam, math.exp(nats), plain, grid.tokens)


def resolve_tuning(
    lm: LoadedLM,
    settings: Adaptation,
    *,
    protocol: str,
    rows: int | None = None,
    batch_size: int = 64,
    cache_dir: Path | None = None,
) -> tuple[Adaptation, CacheTuning | None]:
    """`settings` with `tune_cache` carried out: theta and lambda set to the values chosen on that text."""
    if settings.tune_cache is None:
        return settings, None
    tuning = tune_cache(
        lm, settings, settings.tune_cache, protocol=protocol, rows=rows, batch_size=batch_size, cache_dir=cache_dir
    )
    return settings.replace(tune_cache=None, cache_theta=tuning.theta, cache_lambda=tuning.lam), tuning
