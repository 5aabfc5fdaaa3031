"""Corpus perplexity under two protocols: the training-validation stream, or each line on its own.

    stream     the text as one id stream with <eos> after every line, cut into rows and
               BPTT windows with the hidden state carried across sentences: exactly how
               `nlm train` measured validation loss (a sentence-trained model is
               validated line by line from <bos>, so for it this is that protocol)
    sentence   each line from a fresh state, conditioned on the start symbol, <eos>
               scored: the `nlm score` protocol, so the two give the same number
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from nlm.errors import ConfigError, DataError
from nlm.io.text import read_lines
from nlm.lm.loading import LoadedLM
from nlm.lm.scoring import CorpusSummary, score_sentences
from nlm.lm.task import evaluate_corpus
from nlm.text.corpus import encode_corpus

PROTOCOLS = ("stream", "sentence")


@dataclass(frozen=True)
class PerplexityResult:
    protocol: str
    description: str  # the protocol in words, with its settings
    nats: float  # summed negative log-likelihood
    tokens: int  # predicted tokens, <eos> included
    oovs: int  # <unk> tokens in the text

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per token, in nats."""
        return self.nats / self.tokens

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))


def _stream(lm: LoadedLM, path: str | Path, cache_dir: Path | None) -> PerplexityResult:
    corpus = encode_corpus(path, lm.vocab, cache_dir=cache_dir)
    if corpus.tokens < 2:  # one token predicts nothing in a stream
        raise DataError(f"{corpus.name} has {corpus.tokens} token(s), too few for the stream protocol; "
                        "use --protocol sentence")
    data = lm.data_config
    with torch.inference_mode():
        nats, tokens = evaluate_corpus(lm.model, corpus, data, lm.device)
    if data.mode == "sentence":
        words = f"training protocol of this sentence-trained model: each line from <bos>, batches of {data.eval_batch_size}"
    else:
        words = f"training protocol: one stream, state carried across lines, {data.eval_batch_size} rows, bptt {data.bptt}"
    return PerplexityResult("stream", words, nats, tokens, corpus.oovs)


def _sentences(lm: LoadedLM, lines: Iterable[str], batch_size: int) -> PerplexityResult:
    summary = CorpusSummary()
    for score in score_sentences(lm, lines, batch_size=batch_size):
        summary.add(score)
    words = f"each line from a fresh state, start {lm.start_symbol}, <eos> scored"
    return PerplexityResult("sentence", words, -summary.logprob, summary.tokens, summary.oovs)


def corpus_perplexity(lm: LoadedLM, path: str | Path, *, protocol: str = "stream", batch_size: int = 64,
                      cache_dir: Path | None = None) -> PerplexityResult:
    """Perplexity of the text in `path` (`-` for stdin) under `protocol` (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if protocol == "stream":
        return _stream(lm, path, cache_dir)
    result = _sentences(lm, read_lines(path), batch_size)
    if result.tokens == 0:
        raise DataError(f"{path} has no tokens to score")
    return result
