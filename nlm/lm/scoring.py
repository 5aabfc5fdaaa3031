"""Scoring sentences: log P(w1 .. wn <eos> | start) of each line from a fresh state, in length-sorted batches.

Every line is its own sentence.  The model reads `<start> w1 .. wn` and is scored on
`w1 .. wn <eos>`, where `<start>` is what the model saw before every sentence in
training (`<eos>` for a stream-trained model, `<bos>` for a sentence-trained one):

    inputs   <start>  w1   w2   ..  wn
    targets   w1      w2   w3   ..  <eos>      tokens = n + 1

Without bos/eos the first word is context only and no end symbol is scored (n - 1
tokens).  Lines are read in pools, sorted by length within a pool so each batch pads
little, scored, and yielded back in input order; padding sits after each sentence, so
it never changes a score.  Log-probabilities are natural logs.

A batch runs through the model in time windows of at most LOGIT_BUDGET logits, the
hidden state carried from window to window, so the scores are those of one pass while
a line of millions of tokens costs memory for its ids and scores only, never for
length x vocabulary logits.  An input without a single line is an error (exit 65); an
empty line is a sentence of zero words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nlm import __version__
from nlm.io.text import EmptyInputError
from nlm.lm.config import LOG_BASES
from nlm.lm.loading import LoadedLM
from nlm.lm.pools import fixed_pools, waiting_pools
from nlm.models.rnn import RNNLM
from nlm.text.symbols import EOS, PAD, UNK
from nlm.text.vocab import Vocabulary
from nlm.units import perplexity as nats_perplexity

POOL_BATCHES = 16  # batches' worth of lines read and length-sorted together
LOGIT_BUDGET = 1 << 25  # at most this many logits (rows x steps x vocabulary) in one forward pass


@dataclass(frozen=True)
class SentenceScore:
    """The score of one input line; `token_ids`/`token_logprobs` only when asked for."""

    index: int  # 0-based position in the input
    text: str
    logprob: float  # natural log, summed over the scored tokens
    tokens: int  # scored tokens, the end symbol included
    oovs: int  # scored tokens that are <unk>
    oov_logprob: float  # the part of logprob that comes from <unk> tokens
    token_ids: tuple[int, ...] = ()
    token_logprobs: tuple[float, ...] = ()

    @property
    def ppl(self) -> float:
        """exp(-logprob / tokens); NaN for a line with nothing scored (possible only without bos/eos)."""
        return perplexity(self.logprob, self.tokens)


def perplexity(logprob: float, tokens: int) -> float:
    """exp(-logprob / tokens): NaN for no tokens, inf where it overflows a float."""
    if not tokens:
        return math.nan
    return nats_perplexity(-logprob / tokens)


@dataclass
class CorpusSummary:
    """Corpus totals, with KenLM's definitions: perplexity is exp(-total log-prob / total tokens)."""

    sentences: int = 0
    tokens: int = 0
    oovs: int = 0
    logprob: float = 0.0  # natural log
    oov_logprob: float = 0.0

    def add(self, score: SentenceScore) -> None:
        self.sentences += 1
        self.tokens += score.tokens
        self.oovs += score.oovs
        self.logprob += score.logprob
        self.oov_logprob += score.oov_logprob

    @property
    def ppl(self) -> float:
        return perplexity(self.logprob, self.tokens)

    @property
    def ppl_without_oovs(self) -> float:
        """Perplexity with the <unk> tokens' log-probs dropped and divided by tokens - OOVs."""
        return perplexity(self.logprob - self.oov_logprob, self.tokens - self.oovs)

    def describe(self, *, base: str, signature: str) -> list[str]:
        """The summary for people, KenLM's numbers with the log base stated."""
        if self.tokens:
            ppl = f"perplexity: {self.ppl:.4f} including OOVs, {self.ppl_without_oovs:.4f} excluding OOVs"
        else:  # possible only without bos/eos, where a one-word line scores nothing
            ppl = "perplexity: none, no token was scored (without --bos-eos a line's first token is only context)"
        return [
            f"sentences: {self.sentences:,}  scored tokens: {self.tokens:,}  OOVs: {self.oovs:,}",
            f"log-prob (base {base}): {self.logprob / LOG_BASES[base]:.4f}",
            ppl,
            f"signature: {signature}|base:{base}",
        ]


def protocol_signature(lm: LoadedLM, *, bos_eos: bool, adapted: str = "") -> str:
    """The model's signature plus how sentences were scored (and adapted: the cache, dynamic evaluation)."""
    ends = f"start:{lm.start_symbol}|eos:yes" if bos_eos else "start:none|eos:no"
    adapted = f"|{adapted}" if adapted else ""
    return f"nlm-score|{lm.signature}|{ends}|state:fresh-per-line{adapted}|nlm:{__version__}"


def _pairs(ids: Sequence[int], *, start_id: int, bos_eos: bool) -> tuple[list[int], list[int]]:
    """The inputs and targets of one sentence."""
    if bos_eos:
        return [start_id, *ids], [*ids, EOS]
    return list(ids[:-1]), list(ids[1:])


def window_steps(rows: int, vocab_size: int, logit_budget: int = LOGIT_BUDGET) -> int:
    """Time steps per forward pass so that rows x steps x vocabulary stays within the budget (at least 1)."""
    return max(1, logit_budget // (rows * vocab_size))


def score_ids(
    model: RNNLM,
    sentences: Sequence[Sequence[int]],
    *,
    start_id: int,
    bos_eos: bool = True,
    logit_budget: int = LOGIT_BUDGET,
    adapter=None,
    steps: int | None = None,
) -> list[np.ndarray]:
    """The natural log-prob of every scored token of each sentence, as one padded batch.

    The batch goes through the model window by window (`window_steps`, or `steps`), the state
    carried across windows: the same numbers as one pass, in memory bounded by `logit_budget`.
    An `adapter` (nlm/lm/adapt.py) turns each window's scores into adapted ones, in order."""
    pairs = [_pairs(ids, start_id=start_id, bos_eos=bos_eos) for ids in sentences]
    lengths = [len(targets) for _, targets in pairs]
    results = [np.zeros(0, dtype=np.float64) for _ in pairs]
    rows = [i for i, n in enumerate(lengths) if n > 0]
    if not rows:
        return results
    device = next(model.parameters()).device
    width = max(lengths)
    inputs = torch.full((len(rows), width), PAD, dtype=torch.long)
    targets = torch.full((len(rows), width), PAD, dtype=torch.long)
    for r, i in enumerate(rows):
        inputs[r, : lengths[i]] = torch.tensor(pairs[i][0])
        targets[r, : lengths[i]] = torch.tensor(pairs[i][1])
    logprobs = torch.empty(len(rows), width, dtype=torch.float64)  # positions past a sentence's end are padding
    steps, state = steps or window_steps(len(rows), model.config.vocab_size, logit_budget), None
    with torch.inference_mode():
        if adapter is not None:
            adapter.start()
        for begin in range(0, width, steps):
            # the first window starts from a zero state, every later one from the state the last one left
            window = inputs[:, begin : begin + steps].to(device), targets[:, begin : begin + steps].to(device)
            features, next_state = model(window[0], state)
            nll = model.nll(features, window[1])
            if adapter is not None:
                nll = adapter.window(*window, state, features, nll)
            logprobs[:, begin : begin + steps], state = -nll.double().cpu(), next_state
    logprobs = logprobs.numpy()
    for r, i in enumerate(rows):
        results[i] = logprobs[r, : lengths[i]]
    return results


def length_batches(
    lengths: Sequence[int], *, batch_size: int, vocab_size: int, logit_budget: int = LOGIT_BUDGET
) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most `batch_size` sentences and `logit_budget` logits."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        width = lengths[i] + 1  # sorted, so the longest sentence of the batch so far
        current = batches[-1] if batches else None
        if current is None or len(current) >= batch_size or (len(current) + 1) * width * vocab_size > logit_budget:
            batches.append([i])
        else:
            current.append(i)
    return batches


def sentence_score(
    index: int, text: str, ids: list[int], logprobs: np.ndarray, *, bos_eos: bool, per_token: bool
) -> SentenceScore:
    targets = [*ids, EOS] if bos_eos else ids[1:]
    unk = np.array([t == UNK for t in targets], dtype=bool)
    return SentenceScore(
        index=index,
        text=text,
        logprob=float(logprobs.sum()),
        tokens=len(targets),
        oovs=int(unk.sum()),
        oov_logprob=float(logprobs[unk].sum()),
        token_ids=tuple(targets) if per_token else (),
        token_logprobs=tuple(logprobs.tolist()) if per_token else (),
    )


def score_sentences(
    lm: LoadedLM,
    lines: Iterable[str],
    *,
    batch_size: int = 64,
    bos_eos: bool = True,
    per_token: bool = False,
    eager: bool = False,
    name: str = "the input",
    logit_budget: int = LOGIT_BUDGET,
    adapter=None,
) -> Iterator[SentenceScore]:
    """Score each line as an independent sentence; yields in input order as each pool is done.

    `batch_size` 1 scores one sentence at a time.  `eager` never waits for more input than
    is already there: a pool is whatever lines are waiting (at least one), so an interactive
    pipe gets each answer as soon as its line arrives.  No line at all is a DataError
    naming the input (`name`); `logit_budget` bounds the logits of one forward pass; an `adapter`
    (the cache pointer: nlm/lm/adapt.py) sees every batch as new documents.
    """
    pool_lines = waiting_pools if eager else fixed_pools
    index = 0
    for pool in pool_lines(lines, batch_size * POOL_BATCHES):
        encoded = [lm.vocab.encode(line) for line in pool]
        logprobs: list[np.ndarray] = [np.zeros(0)] * len(pool)
        lengths = [len(ids) for ids in encoded]
        for batch in length_batches(
            lengths, batch_size=batch_size, vocab_size=len(lm.vocab), logit_budget=logit_budget
        ):
            with lm.autocast():
                scored = score_ids(
                    lm.model,
                    [encoded[i] for i in batch],
                    start_id=lm.start_id,
                    bos_eos=bos_eos,
                    logit_budget=logit_budget,
                    adapter=adapter,
                )
            for i, values in zip(batch, scored):
                logprobs[i] = values
        for text, ids, values in zip(pool, encoded, logprobs):
            yield sentence_score(index, text, ids, values, bos_eos=bos_eos, per_token=per_token)
            index += 1
    if index == 0:
        raise EmptyInputError(name, f"{name} is empty: nothing to score")


@dataclass(frozen=True)
class TokenScore:
    """One row of the surprisal table: a token (or a word of pieces) and its log-prob."""

    position: int  # 1-based among the sentence's tokens (or words); <eos> is the last
    token: str
    logprob: float


def token_rows(
    score: SentenceScore, vocab: Vocabulary, *, bos_eos: bool = True, words: bool = False
) -> list[TokenScore]:
    """The per-token log-probs of a scored sentence; with `words`, pieces summed into the words they spell."""
    first = 1 if bos_eos else 2  # without bos/eos, token 1 is context only
    if not words:
        return [
            TokenScore(first + k, vocab.symbol(t), lp)
            for k, (t, lp) in enumerate(zip(score.token_ids, score.token_logprobs))
        ]
    groups: list[tuple[list[int], float]] = []
    for t, lp, starts in zip(score.token_ids, score.token_logprobs, vocab.word_starts(score.token_ids)):
        if starts or not groups:
            groups.append(([], 0.0))
        ids, total = groups[-1]
        ids.append(t)
        groups[-1] = (ids, total + lp)
    return [TokenScore(k + 1, _word_text(vocab, ids), total) for k, (ids, total) in enumerate(groups)]


def _word_text(vocab: Vocabulary, ids: list[int]) -> str:
    if ids == [EOS]:
        return vocab.symbol(EOS)
    return vocab.decode(i for i in ids if i != EOS).strip() or vocab.decode(ids)
