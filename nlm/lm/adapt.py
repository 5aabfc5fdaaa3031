"""Scoring that adapts to the text it scores: the cache pointer and dynamic evaluation around the scoring loops.

The loops that score lines (`score_ids`) and the stream (`evaluate_corpus`) hand each window they score to
an Adapter, in order: it returns the window's -log p under the cache's mixture (nlm/lm/cache.py) and then,
with dynamic evaluation, takes the gradient step on what was just scored (nlm/lm/dynamic.py).  The loops
score under inference mode, as plain scoring does, so an adaptation that changes nothing (`cache_lambda`
0, `dyn_lr` 0) gives plain scoring's numbers bit for bit; the step runs its own forward with gradients.

    lines    `nlm score`, `nlm perplexity --protocol sentence`: each line is its own document: its hidden
             state and its cache start fresh, and dynamic evaluation puts the trained weights back before
             it, unless `dyn_carry` says the lines are one document in order (the weights then carry from
             line to line; the state and the cache still start fresh).  Under dynamic evaluation the lines
             are scored one at a time, in input order, in segments of `dyn_segment` tokens.
    stream   `nlm perplexity` (the stream protocol): the text is one document, cut into rows as plain
             scoring cuts it; dynamic evaluation reads it as one row (as Krause et al. and AWD-LSTM's
             pointer do), in windows of `dyn_segment` tokens, unless `rows` is given.

When the adapter is done (`close`, or the end of `adapted`), the model holds its trained weights again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from nlm.errors import ConfigError
from nlm.io.text import EmptyInputError
from nlm.lm.adapt_config import Adaptation
from nlm.lm.cache import LAMBDAS, THETAS, CacheGrid, PointerCache
from nlm.lm.dynamic import DynamicEvaluator, gradient_statistics
from nlm.lm.loading import LoadedLM
from nlm.lm.scoring import SentenceScore, score_ids, score_sentences, sentence_score
from nlm.models.rnn import State


class Adapter:
    """What a scoring loop calls: `start` before a batch of new documents, `window` for each window scored."""

    def __init__(self, settings: Adaptation, cache: PointerCache | None, dynamic: DynamicEvaluator | None) -> None:
        self.settings, self.cache, self.dynamic = settings, cache, dynamic

    def start(self) -> None:
        if self.cache is not None:
            self.cache.start()

    def window(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        state: State | None,
        features: torch.Tensor,
        nll: torch.Tensor,
    ) -> torch.Tensor:
        """A window as the loop scored it (from `state`, under inference mode, exactly as plain scoring does):
        its -log p under the cache's mixture; then dynamic evaluation's step on it."""
        scored = nll if self.cache is None else self.cache.mix(features, targets, nll)
        if self.dynamic is not None:
            self.dynamic.learn(inputs, targets, state)
        return scored

    def new_document(self) -> None:
        """Before a line that is its own document: the trained weights again (unless the lines carry)."""
        if self.dynamic is not None and not self.settings.dyn_carry:
            self.dynamic.restore()

    def close(self) -> None:
        if self.dynamic is not None:
            self.dynamic.restore()

    @property
    def stream_rows(self) -> int | None:
        """The rows the stream is read in when none are asked for: one under dynamic evaluation."""
        return 1 if self.dynamic is not None else None

    @property
    def segment(self) -> int | None:
        """The window length dynamic evaluation scores and learns in (None: the loop's own)."""
        return self.settings.dyn_segment if self.dynamic is not None else None

    def describe(self) -> str:
        return self.settings.describe()


def build_adapter(
    lm: LoadedLM, settings: Adaptation, *, cache_dir: Path | None = None, grid: bool = False
) -> Adapter | None:
    """The Adapter of `settings` for `lm` (None when they adapt nothing); `grid` puts a CacheGrid in place of the
    cache, over the theta and lambda not given, for `--tune-cache`."""
    if not settings.active:
        return None
    cache = None
    if settings.cache and grid:
        thetas = THETAS if settings.cache_theta is None else (settings.cache_theta,)
        lams = LAMBDAS if settings.cache_lambda is None else (settings.cache_lambda,)
        cache = CacheGrid(settings.cache, thetas=thetas, lams=lams)
    elif settings.cache:
        cache = PointerCache(settings.cache, theta=settings.theta, lam=settings.lam)
    dynamic = None
    if settings.dynamic_eval:
        if lm.int8:
            raise ConfigError(
                "dynamic evaluation needs gradients through the recurrent layers, which an int8 export runs on "
                "ONNX Runtime without; use the run's own checkpoint (the cache works with int8)"
            )
        stats = None
        if settings.dyn_rule == "rms":
            stats = gradient_statistics(lm, settings.dyn_stats, segment=settings.dyn_segment, cache_dir=cache_dir)
        dynamic = DynamicEvaluator(lm.model, rule=settings.dyn_rule, lr=settings.lr, decay=settings.decay, stats=stats)
    return Adapter(settings, cache, dynamic)


@contextmanager
def adapted(lm: LoadedLM, settings: Adaptation | None, *, cache_dir: Path | None = None, grid: bool = False):
    """`build_adapter` for a block, the trained weights restored after it whatever happens (None: no adaptation)."""
    adapter = None if settings is None else build_adapter(lm, settings, cache_dir=cache_dir, grid=grid)
    try:
        yield adapter
    finally:
        if adapter is not None:
            adapter.close()


def adapted_scores(
    lm: LoadedLM,
    lines: Iterable[str],
    adapter: Adapter | None,
    *,
    batch_size: int = 64,
    bos_eos: bool = True,
    per_token: bool = False,
    eager: bool = False,
    name: str = "the input",
) -> Iterator[SentenceScore]:
    """`score_sentences` under `adapter`: batched with the cache alone; one line at a time, in input order,
    under dynamic evaluation (see the module docstring)."""
    if adapter is None or adapter.dynamic is None:
        yield from score_sentences(
            lm,
            lines,
            batch_size=batch_size,
            bos_eos=bos_eos,
            per_token=per_token,
            eager=eager,
            name=name,
            adapter=adapter,
        )
        return
    index = -1
    for index, text in enumerate(lines):
        ids = lm.vocab.encode(text)
        adapter.new_document()
        with lm.autocast():
            (values,) = score_ids(
                lm.model, [ids], start_id=lm.start_id, bos_eos=bos_eos, adapter=adapter, steps=adapter.segment
            )
        yield sentence_score(index, text, ids, values, bos_eos=bos_eos, per_token=per_token)
    if index < 0:
        raise EmptyInputError(name, f"{name} is empty: nothing to score")
