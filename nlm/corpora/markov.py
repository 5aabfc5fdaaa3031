"""Synthetic corpora from a first-order Markov source whose entropy rate is known exactly.

The language-model view of a corpus is one token stream with `<eos>` after every
sentence, and after `<eos>` the next word is drawn from `start` again.  Over the V
words plus `<eos>` that is a Markov chain of V+1 states, so its entropy rate (nats per
token, `<eos>` counted) is exact: H = sum_i pi_i H(row_i).  A language model trained
on the stream can do no better than that cross-entropy, and perplexity exp(H).

    nlm corpus markov -o corpora/markov --train-lines 5000 --valid-lines 1000
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from nlm.config import Config, check
from nlm.corpora.folder import prepare_corpus_folder
from nlm.errors import DataError
from nlm.io.atomic import write_text_atomic

WORD_PATTERN = re.compile(r"[a-z]+")  # plain letters: never `<eos>`, `<unk>` or a number
ROW_SUM_TOLERANCE = 1e-6
_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of `probs` (last axis), with 0 log 0 = 0."""
    logs = np.log(np.where(probs > 0, probs, 1.0))
    return -(probs * logs).sum(axis=-1)


def fake_words(count: int, rng: np.random.Generator) -> tuple[str, ...]:
    """`count` distinct pronounceable lowercase words of 2-3 consonant-vowel syllables."""
    words: list[str] = []
    while len(words) < count:
        syllables = rng.integers(2, 4)
        word = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        if word not in words:
            words.append(word)
    return tuple(words)


@dataclasses.dataclass(frozen=True)
class MarkovSource(Config):
    """Sentences from a first-order Markov chain over `words`, ended by an `<eos>` event.

    Probabilities are stored as tuples (hashable, comparable, JSON-able); the numpy
    views `start_probs` and `trans_probs` are derived once on first use.
    """

    words: tuple[str, ...]  # the V word types
    start: tuple[float, ...]  # (V,): P(first word of a sentence)
    trans: tuple[tuple[float, ...], ...]  # (V, V+1): row i = P(next | word i), last column P(<eos> | word i)

    def __post_init__(self) -> None:
        # from_dict and callers may pass lists or arrays; freeze them into float tuples.
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "start", tuple(float(p) for p in self.start))
        object.__setattr__(self, "trans", tuple(tuple(float(p) for p in row) for row in self.trans))
        super().__post_init__()

    def validate(self) -> None:
        v = len(self.words)
        check(v >= 1, "a Markov source needs at least one word")
        check(len(set(self.words)) == v, "the words of a Markov source must be distinct")
        bad = [w for w in self.words if not WORD_PATTERN.fullmatch(w)]
        check(not bad, f"words must be plain lowercase ASCII letters, not {bad[:3]}")
        check(len(self.start) == v, f"start has {len(self.start)} probabilities for {v} words")
        check(
            len(self.trans) == v and all(len(r) == v + 1 for r in self.trans),
            f"trans must be {v} rows of {v + 1} probabilities (the last one for <eos>)",
        )
        rows = {"start": self.start, **{f"the row of {w!r}": r for w, r in zip(self.words, self.trans)}}
        for name, row in rows.items():
            check(all(p >= 0 for p in row), f"{name} has a negative probability")
            check(abs(sum(row) - 1.0) < ROW_SUM_TOLERANCE, f"{name} sums to {sum(row):.6g}, not 1")
        stuck = [w for w, ends in zip(self.words, self._can_reach_eos()) if not ends]
        check(not stuck, f"{stuck[:3]} can never reach <eos>; every sentence must be able to end")

    def _can_reach_eos(self) -> np.ndarray:
        """(V,) bools: which words have a path to `<eos>`; needed for I - Q to be invertible."""
        v = len(self.words)
        follows = self.trans_probs[:, :v] > 0  # follows[i, j]: word j can follow word i
        can = self.trans_probs[:, v] > 0
        while not np.array_equal(grown := can | (follows & can).any(axis=1), can):
            can = grown
        return can

    @classmethod
    def random(
        cls, *, num_words: int = 20, concentration: float = 0.3, mean_length: float = 8.0, seed: int = 0
    ) -> MarkovSource:
        """A random source: Dirichlet(concentration) rows, sentences of `mean_length` words on average.

        Each row's end probability is 1/mean_length, so sentence lengths are geometric
        with exactly that mean; small concentrations give peaked, low-entropy rows.
        """
        check(num_words >= 1, f"num_words must be at least 1, not {num_words}")
        check(math.isfinite(concentration) and concentration > 0, f"concentration must be > 0, not {concentration}")
        check(math.isfinite(mean_length) and mean_length >= 1, f"mean_length must be >= 1 word, not {mean_length}")
        rng = np.random.default_rng(seed)
        words = fake_words(num_words, rng)
        alpha = np.full(num_words, concentration)
        start = rng.dirichlet(alpha)
        p_end = 1.0 / mean_length
        next_word = rng.dirichlet(alpha, size=num_words) * (1.0 - p_end)  # (V, V)
        trans = np.concatenate([next_word, np.full((num_words, 1), p_end)], axis=1)
        return cls(words=words, start=tuple(start), trans=tuple(map(tuple, trans)))

    @classmethod
    def load(cls, path: str | Path) -> MarkovSource:
        """Read the source back from a `source.json` written by `write_corpus`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls.from_dict({key: data[key] for key in ("words", "start", "trans")})
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}: not a Markov source file ({e})") from None

    # -- the exact quantities --------------------------------------------------

    @functools.cached_property
    def start_probs(self) -> np.ndarray:
        return np.array(self.start)

    @functools.cached_property
    def trans_probs(self) -> np.ndarray:
        return np.array(self.trans).reshape(len(self.words), len(self.words) + 1)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def chain_matrix(self) -> np.ndarray:
        """(V+1, V+1) transition matrix of the token stream; state V is `<eos>`, which restarts."""
        eos_row = np.append(self.start_probs, 0.0)
        return np.vstack([self.trans_probs, eos_row])

    def expected_visits(self) -> np.ndarray:
        """(V,): expected occurrences of each word in one sentence, start @ (I - Q)^-1."""
        v = len(self.words)
        return np.linalg.solve((np.eye(v) - self.trans_probs[:, :v]).T, self.start_probs)

    def mean_sentence_length(self) -> float:
        """Expected number of words per sentence (not counting `<eos>`)."""
        return float(self.expected_visits().sum())

    def stationary(self) -> np.ndarray:
        """(V+1,): stationary distribution of `chain_matrix()`, `<eos>` last.

        Each sentence is one renewal cycle with one `<eos>`, so pi is the expected
        visits per cycle divided by the expected cycle length (words + 1).
        """
        visits = np.append(self.expected_visits(), 1.0)
        return visits / visits.sum()

    def entropy_rate(self) -> float:
        """Exact entropy rate in nats per token, `<eos>` counted as a token."""
        return float(self.stationary() @ _entropy(self.chain_matrix()))

    def entropy_rate_bits(self) -> float:
        return self.entropy_rate() / math.log(2)

    def ideal_perplexity(self) -> float:
        """exp(H): the per-token perplexity of the true model, the best any LM can reach."""
        return math.exp(self.entropy_rate())

    # -- scoring -----------------------------------------------------------------

    def token_logprobs(self, sentence: str | list[str]) -> list[float]:
        """ln P of each of w1 .. wn and the final `<eos>` (n+1 terms); -inf where P is 0."""
        words = sentence.split() if isinstance(sentence, str) else list(sentence)
        if not words:
            raise DataError("an empty sentence has probability 0 under a Markov source; give at least one word")
        unknown = [w for w in words if w not in self._index]
        if unknown:
            raise DataError(f"word {unknown[0]!r} is not in this Markov source's vocabulary")
        ids = [self._index[w] for w in words]
        probs = [self.start[ids[0]]]
        probs += [self.trans[prev][nxt] for prev, nxt in zip(ids, ids[1:])]
        probs.append(self.trans[ids[-1]][len(self.words)])
        return [math.log(p) if p > 0 else -math.inf for p in probs]

    def sentence_logprob(self, sentence: str | list[str]) -> float:
        """ln P(w1 .. wn <eos>), the first word drawn from `start`."""
        return math.fsum(self.token_logprobs(sentence))

    # -- sampling and writing ----------------------------------------------------

    def sample(self, num_sentences: int, *, seed: int | np.random.SeedSequence = 0) -> list[str]:
        """`num_sentences` sentences as space-separated words; deterministic for a seed."""
        check(num_sentences >= 0, f"num_sentences must be >= 0, not {num_sentences}")
        rng = np.random.default_rng(seed)
        return [" ".join(self.words[i] for i in ids) for ids in self._sample_ids(num_sentences, rng)]

    def _sample_ids(self, num_sentences: int, rng: np.random.Generator) -> list[list[int]]:
        # A Python loop with bisect on cumulative rows beats rng.choice per token by ~20x.
        eos = len(self.words)
        start_cum = np.cumsum(self.start_probs).tolist()
        trans_cum = np.cumsum(self.trans_probs, axis=1).tolist()

        def draw(cum: list[float]) -> int:
            # u < cum[-1] makes the index valid, and zero-probability states unreachable.
            return bisect.bisect_right(cum, rng.random() * cum[-1])

        sentences = []
        for _ in range(num_sentences):
            ids = [draw(start_cum)]
            while (nxt := draw(trans_cum[ids[-1]])) != eos:
                ids.append(nxt)
            sentences.append(ids)
        return sentences

    def write_corpus(
        self, directory: str | Path, *, train_lines: int, valid_lines: int, seed: int = 0, overwrite: bool = False
    ) -> dict[str, Any]:
        """Write train.txt, valid.txt (one sentence per line) and source.json; return the JSON."""
        check(train_lines >= 1 and valid_lines >= 1, "train_lines and valid_lines must be at least 1")
        directory = prepare_corpus_folder(directory, ["train.txt", "valid.txt", "source.json"], overwrite=overwrite)
        train_seed, valid_seed = np.random.SeedSequence(seed).spawn(2)  # valid does not shift with train_lines
        for name, lines, split_seed in [("train.txt", train_lines, train_seed), ("valid.txt", valid_lines, valid_seed)]:
            write_text_atomic(directory / name, "".join(s + "\n" for s in self.sample(lines, seed=split_seed)))
        info = {
            **self.to_dict(),
            "entropy_rate_nats": self.entropy_rate(),
            "entropy_rate_bits": self.entropy_rate_bits(),
            "ideal_perplexity": self.ideal_perplexity(),
            "mean_sentence_length": self.mean_sentence_length(),
            "sample_seed": seed,
            "note": "entropy per token of the stream with <eos> after each line; perplexity = exp(nats)",
        }
        write_text_atomic(directory / "source.json", json.dumps(info, indent=1) + "\n")
        return info
