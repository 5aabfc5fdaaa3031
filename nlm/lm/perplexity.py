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
text of 4,215 tokens in 10 rows gives 4,200 predicted tokens.  Bits per byte and word
perplexity (nlm/lm/measures.py) cover the same predicted tokens.  An empty input is an
error (exit 65); a file of empty lines is a text of zero-word sentences.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import torch

from nlm.errors import ConfigError, DataError
from nlm.io.text import STDIO, EmptyInputError, display_name, read_lines, spooled
from nlm.lm.config import MODES
from nlm.lm.loading import LoadedLM
from nlm.lm.measures import TextSize, predicted_span
from nlm.lm.scoring import CorpusSummary, score_sentences
from nlm.lm.task import evaluate_corpus
from nlm.text.batches import context_only, evaluation_rows
from nlm.text.corpus import encode_corpus
from nlm.units import bits, perplexity


@dataclass(frozen=True)
class Perplexity:
    """A corpus's perplexity, with what produced it and the measures comparable across vocabularies."""

    protocol: str
    description: str  # the protocol in words, with its settings
    nats: float  # summed negative log-likelihood of the predicted tokens
    tokens: int  # predicted tokens, <eos> included
    oovs: int  # <unk> tokens in the text
    text_tokens: int  # tokens in the text: words (or pieces) + one <eos> per line
    bytes: int  # UTF-8 bytes of the predicted span, a newline per line end
    words: int  # whitespace-separated words of the predicted span, an end per line
    signature: str  # the protocol, model and vocabulary: `protocol:stream|model:best.pt#...|vocab:...`

    @property
    def loss(self) -> float:
        """Mean negative log-likelihood per token, in nats."""
        return self.nats / self.tokens

    @property
    def ppl(self) -> float:
        return perplexity(self.loss)

    @property
    def bits_per_byte(self) -> float:
        """Total -log2 P over the UTF-8 bytes of the predicted span."""
        return bits(self.nats) / self.bytes if self.bytes else math.nan

    @property
    def word_ppl(self) -> float:
        """exp(total -ln P / words): comparable across word, subword and character models."""
        return perplexity(self.nats / self.words) if self.words else math.nan


def _stream_counts(text_tokens: int, rows: int, predicted: int) -> str:
    """Why a stream predicts fewer tokens than its text holds."""
    tail = text_tokens % rows
    skipped = (
        f"the first token of each of the {rows:,} rows and the {tail:,}-token tail that fills no row are"
        if tail
        else f"the first token of each of the {rows:,} rows is"
    )
    return f"{predicted:,} of the text's {text_tokens:,} tokens (one <eos> per line) predicted: {skipped} context only"


def _stream(lm: LoadedLM, path: str | Path, cache_dir: Path | None) -> Perplexity:
    corpus = encode_corpus(path, lm.vocab, cache_dir=cache_dir)
    if corpus.tokens < 2:  # one token predicts nothing in a stream
        raise DataError(
            f"{corpus.name} has {corpus.tokens} token(s), too few for the stream protocol; use --protocol sentence"
        )
    data = lm.data_config
    with torch.inference_mode(), lm.autocast():
        nats, tokens = evaluate_corpus(lm.model, corpus, data, lm.device)
    if data.mode == "sentence":
        skipped = np.zeros(0, dtype=np.int64)
        words = (
            "training protocol of this sentence-trained model: each line from <bos>, "
            f"batches of {data.eval_batch_size}; every token predicted, one <eos> per line included"
        )
    else:
        rows = evaluation_rows(corpus.tokens, data.eval_batch_size)
        skipped = context_only(corpus.tokens, rows)
        words = (
            f"training protocol: one stream, state carried across lines, {rows} rows, bptt {data.bptt}; "
            + _stream_counts(corpus.tokens, rows, tokens)
        )
    size = predicted_span(path, corpus, lm.vocab, skipped)
    return _result(lm, "stream", words, nats, tokens, corpus.oovs, corpus.tokens, size=size)


def _sentences(lm: LoadedLM, lines: Iterable[str], batch_size: int, name: str) -> Perplexity:
    summary, size = CorpusSummary(), TextSize()
    for score in score_sentences(lm, size.counting(lines), batch_size=batch_size, name=name):
        summary.add(score)
    words = (
        f"each line from a fresh state, start {lm.start_symbol}, <eos> scored; "
        "every token predicted, one <eos> per line included"
    )
    return _result(lm, "sentence", words, -summary.logprob, summary.tokens, summary.oovs, summary.tokens, size=size)


def _result(lm: LoadedLM, protocol: str, words: str, *counts, size: TextSize) -> Perplexity:
    signature = f"protocol:{protocol}|{lm.signature}"
    return Perplexity(protocol, words, *counts, bytes=size.bytes, words=size.words, signature=signature)


def corpus_perplexity(
    lm: LoadedLM,
    source: str | PathLike | Iterable[str],
    *,
    protocol: str = "stream",
    batch_size: int = 64,
    cache_dir: Path | None = None,
) -> Perplexity:
    """Perplexity of a text under `protocol` (see the module docstring): `source` is a file (`-` for stdin),
    or the lines themselves (any iterable of strings that is not a str)."""
    if protocol not in MODES:  # a protocol reads the text as a model in that mode does
        raise ConfigError(f"--protocol must be one of {', '.join(MODES)}, not {protocol!r}")
    is_path = isinstance(source, str | PathLike)
    name = display_name(source) if is_path else "the input"
    if protocol == "sentence":
        return _sentences(lm, read_lines(source, allow_empty=True) if is_path else source, batch_size, name)
    try:
        if is_path and str(source) != STDIO:
            return _stream(lm, source, cache_dir)
        with spooled(read_lines(source) if is_path else source) as spool, tempfile.TemporaryDirectory() as private:
            return _stream(lm, spool.path, Path(private))  # stdin or given lines: encoded privately, never cached
    except EmptyInputError:  # in the words `nlm score` uses
        raise EmptyInputError(name, f"{name} is empty: nothing to score") from None
