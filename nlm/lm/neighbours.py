"""Nearest words by cosine similarity of a language model's input embeddings, and analogies (b - a + c).

A word's vector is the mean of its tokens' embedding rows: one row for a word model, the
pieces' rows for a subword model (`▁walk` + `ing`), the characters' rows for a char model.
Candidates are every symbol of the vocabulary except the four specials and the symbols
that make up the query, so a word is never its own neighbour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from nlm.config import check
from nlm.lm.loading import LoadedLM
from nlm.text.symbols import SPECIALS, UNK


@dataclass(frozen=True)
class Neighbours:
    query: str  # the word, or `b-a+c` for an analogy
    found: tuple[tuple[str, float], ...]  # (symbol, cosine), nearest first
    unknown: tuple[str, ...] = ()  # query words that are not in the vocabulary (then `found` is empty)


class EmbeddingSpace:
    """The input embeddings of a loaded language model, normalised once for cosine look-ups."""

    def __init__(self, lm: LoadedLM) -> None:
        self.vocab = lm.vocab
        self.vectors = lm.model.embedding.weight.detach().float().cpu()  # [V, E]
        self.unit = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def ids(self, word: str) -> list[int] | None:
        """The token ids of `word`, or None when it is empty or holds an unknown token."""
        ids = self.vocab.encode(word)
        return ids if ids and UNK not in ids else None

    def nearest(self, vector: torch.Tensor, *, top: int, exclude: Iterable[int]) -> tuple[tuple[str, float], ...]:
        cosines = self.unit @ (vector / vector.norm().clamp_min(1e-12))
        cosines[: len(SPECIALS)] = -torch.inf
        cosines[list(exclude)] = -torch.inf
        count = min(top, len(self.vocab) - len(SPECIALS))
        values, indices = cosines.topk(count)
        return tuple(
            (self.vocab.symbol(i), float(v)) for v, i in zip(values.tolist(), indices.tolist()) if v > -torch.inf
        )

    def vector(self, ids: list[int]) -> torch.Tensor:
        return self.vectors[ids].mean(dim=0)


def nearest_words(lm: LoadedLM, words: Iterable[str], *, top: int = 10) -> Iterator[Neighbours]:
    """The `top` nearest symbols of each word, in input order; an unknown word yields `unknown` and nothing found."""
    check(top >= 1, f"--top must be at least 1, not {top}")
    space = EmbeddingSpace(lm)
    for word in words:
        ids = space.ids(word)
        if ids is None:
            yield Neighbours(word, (), (word,))
        else:
            yield Neighbours(word, space.nearest(space.vector(ids), top=top, exclude=ids))


def analogy(lm: LoadedLM, a: str, b: str, c: str, *, top: int = 10) -> Neighbours:
    """`a` is to `b` as `c` is to ...: the symbols nearest to b - a + c, the three words themselves left out."""
    check(top >= 1, f"--top must be at least 1, not {top}")
    space = EmbeddingSpace(lm)
    query = f"{b}-{a}+{c}"
    ids = {word: space.ids(word) for word in (a, b, c)}
    unknown = tuple(word for word, found in ids.items() if found is None)
    if unknown:
        return Neighbours(query, (), unknown)
    vector = space.vector(ids[b]) - space.vector(ids[a]) + space.vector(ids[c])
    return Neighbours(query, space.nearest(vector, top=top, exclude=[i for found in ids.values() for i in found]))
