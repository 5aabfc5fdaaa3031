"""Corpus perplexity under two protocols: the training-validation stream, or each line on its own.

    stream     the text as one id stream with <eos> after every line, cut into rows and
               BPTT windows with the hidden state carried across sentences: exactly how
               `nlm train` measured validation loss (a sentence-trained model is
               validated line by line from <bos>, so for it this is that protocol)
    sentence   each line from a fresh state, conditioned on the start symbol, <eos>
               scored: the `nlm score` protocol, so the two give the same number

What is counted: the text has words + one <eos> per line tokens (what `nlm train`
reports; `vocab build --check` counts words only).  Both protocols report the tokens they
predict: the sentence protocol predicts all of them; the stream protocol predicts all
but each row's first token and the tail of the stream that does not fill a row, so a
text of 4,215 tokens in 10 rows gives 4,200 predicted tokens.  An empty input is an
error (exit 65); a file of empty lines is a text of zero-word sentences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from nlm.errors import ConfigError, DataError
from nlm.io.text import EmptyInputError, display_name, read_lines
from nlm.lm.config import MODES
from nlm.lm.loading import LoadedLM
from nlm.lm.scoring import CorpusSummary, score_sentences
from nlm.lm.task import evaluate_corpus
from nlm.text.corpus import encode_corpus
from nlm.units import perplexity


@dataclass(frozen=True)
class PerplexityResult:
    protocol: str
    description: str  # the protocol in words, with its settings
    nats: float  # summed negative log-likelihood
    tokens: int  # predicted tokens, <eos> included
    oovs: int  # <unk> tokens in the text
    text_tokens: int  # tokens in the text: words (or pieces) + one <eos> per line

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per token, in nats."""
        return self.nats / self.tokens

    @property
    def ppl(self) -> float:
        return perplexity(self.loss)


def _stream_counts(text_tokens: int, rows: int, predicted: int) -> str:
    """Why a stream predicts fewer tokens than its text holds."""
    tail = text_tokens % rows
    skipped = (
        f"the first token of each of the {rows:,} rows and the {tail:,}-token tail that fills no row are"
        if tail
        else f"the first token of each of the {rows:,} rows is"
    )
    return f"{predicted:,} of the text's {text_tokens:,} tokens (one <eos> per line) predicted: {skipped} context only"


def _stream(lm: LoadedLM, path: str | Path, cache_dir: Path | None) -> PerplexityResult:
    corpus = encode_corpus(path, lm.vocab, cache_dir=cache_dir)
    if corpus.tokens < 2:  # one token predicts nothing in a stream
        raise DataError(
            f"{corpus.name} has {corpus.tokens} token(s), too few for the stream protocol; use --protocol sentence"
        )
    data = lm.data_config
    with torch.inference_mode():
        nats, tokens = evaluate_corpus(lm.model, corpus, data, lm.device)
    if data.mode == "sentence":
        words = (
            "training protocol of this sentence-trained model: each line from <bos>, "
            f"batches of {data.eval_batch_size}; "
            "every token predicted, one <eos> per line included"
        )
    else:
        rows = min(data.eval_batch_size, max(1, corpus.tokens // 2))  # as evaluate_corpus cuts the stream
        words = (
            f"training protocol: one stream, state carried across lines, {rows} rows, bptt {data.bptt}; "
            + _stream_counts(corpus.tokens, rows, tokens)
        )
    return PerplexityResult("stream", words, nats, tokens, corpus.oovs, corpus.tokens)


def _sentences(lm: LoadedLM, lines: Iterable[str], batch_size: int, name: str) -> PerplexityResult:
    summary = CorpusSummary()
    for score in score_sentences(lm, lines, batch_size=batch_size, name=name):
        summary.add(score)
    words = (
        f"each line from a fresh state, start {lm.start_symbol}, <eos> scored; "
        "every token predicted, one <eos> per line included"
    )
    return PerplexityResult("sentence", words, -summary.logprob, summary.tokens, summary.oovs, summary.tokens)


def corpus_perplexity(
    lm: LoadedLM, path: str | Path, *, protocol: str = "stream", batch_size: int = 64, cache_dir: Path | None = None
) -> PerplexityResult:
    """Perplexity of the text in `path` (`-` for stdin) under `protocol` (see the module docstring)."""
    if protocol not in MODES:  # a protocol reads the text as a model in that mode does
        raise ConfigError(f"--protocol must be one of {', '.join(MODES)}, not {protocol!r}")
    name = display_name(path)
    if protocol == "stream":
        try:
            return _stream(lm, path, cache_dir)
        except EmptyInputError:  # in the words `nlm score` uses
            raise EmptyInputError(name, f"{name} is empty: nothing to score") from None
    return _sentences(lm, read_lines(path, allow_empty=True), batch_size, name)
