"""The next-token distribution after a context: the K most likely symbols and their log-probabilities.

The model reads `<start> c1 .. cn` (the start symbol `nlm score` puts before a sentence) or,
with `start=False`, the context alone, and the distribution over the symbol after cn is the
model's own normalised softmax over the whole vocabulary (full or adaptive head alike), the
special symbols included.  Contexts go through the model in batches, padded after their
end, so padding never changes a distribution.  For char and subword models the symbols
are pieces (a char, or a sentencepiece piece with `▁` marking a word's start).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from nlm.errors import DataError
from nlm.io.text import EmptyInputError
from nlm.lm.loading import LoadedLM
from nlm.lm.pools import fixed_pools
from nlm.text.symbols import PAD, UNK


@dataclass(frozen=True)
class NextTokens:
    """The most likely next symbols after one context, most likely first."""

    index: int  # 0-based position of the context in the input
    context: str
    oovs: int  # context symbols outside the vocabulary, read as <unk>
    tokens: tuple[tuple[str, float], ...]  # (symbol, natural log-prob)


def next_tokens(
    lm: LoadedLM, contexts: Iterable[str], *, k: int = 10, start: bool = True, batch_size: int = 64
) -> Iterator[NextTokens]:
    """The `k` most likely next symbols after each context, in input order; no context at all is a DataError."""
    index = 0
    for pool in fixed_pools(contexts, batch_size):
        encoded = [lm.vocab.encode(context) for context in pool]
        inputs = [[lm.start_id, *ids] if start else ids for ids in encoded]
        for offset, ids in enumerate(inputs):
            if not ids:
                raise DataError(
                    f"context {index + offset + 1} is empty: without the start symbol there is nothing to condition on"
                )
        values, symbols = top_next(lm, inputs, k)
        for context, ids, row_values, row_symbols in zip(pool, encoded, values, symbols):
            tokens = tuple((lm.vocab.symbol(s), v) for s, v in zip(row_symbols, row_values))
            yield NextTokens(index=index, context=context, oovs=ids.count(UNK), tokens=tokens)
            index += 1
    if index == 0:
        raise EmptyInputError("the input", "no context given: nothing to continue")


def top_next(lm: LoadedLM, inputs: list[list[int]], k: int) -> tuple[list[list[float]], list[list[int]]]:
    """The top-k log-probs and symbol ids after each id sequence, as one padded batch."""
    lengths = torch.tensor([len(ids) for ids in inputs])
    batch = torch.full((len(inputs), int(lengths.max())), PAD, dtype=torch.long)
    for row, ids in enumerate(inputs):
        batch[row, : len(ids)] = torch.tensor(ids)
    with torch.inference_mode(), lm.autocast():
        features, _ = lm.model(batch.to(lm.device))
        last = features[
            torch.arange(len(inputs), device=lm.device), lengths.to(lm.device) - 1
        ]  # each row's last real position
        logprobs = lm.model.log_probs(last)
        top = logprobs.topk(min(k, logprobs.size(-1)), dim=-1)
    return top.values.double().tolist(), top.indices.tolist()
