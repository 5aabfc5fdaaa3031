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
from nlm.lm.adapt import Adapter, adapted_scores
from nlm.lm.config import MODES
from nlm.lm.loading import LoadedLM
from nlm.lm.measures import TextSize, predicted_span
from nlm.lm.scoring import CorpusSummary
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
        f"the first token of {_each_row(rows)} and the {tail:,}-token tail that fills no row are"
        if tail
        else f"the first token of {_each_row(rows)} is"
    )
    return f"{predicted:,} of the text's {text_tokens:,} tokens (one <eos> per line) predicted: {skipped} context only"


def _each_row(rows: int) -> str:
    return "the one row" if rows == 1 else f"each of the {rows:,} rows"


def _stream(lm: LoadedLM, path: str | Path, cache_dir: Path | None, rows: int | None, adapter: Adapter | None):
    corpus = encode_corpus(path, lm.vocab, cache_dir=cache_dir)
    if corpus.tokens < 2:  # one token predicts nothing in a stream
        raise DataError(
            f"{corpus.name} has {corpus.tokens} token(s), too few for the stream protocol; use --protocol sentence"
        )
    data = lm.data_config
    if data.mode == "sentence" and adapter is not None:
        raise ConfigError(
            "this sentence-trained model reads each line alone, so there is no stream to adapt along: "
            "use --protocol sentence with --cache or --dynamic-eval"
        )
    rows = rows or (adapter and adapter.stream_rows)
    data = data.replace(eval_batch_size=rows or data.eval_batch_size, bptt=(adapter and adapter.segment) or data.bptt)
    with torch.inference_mode(), lm.autocast():
        nats, tokens = evaluate_corpus(lm.model, corpus, data, lm.device, adapter=adapter)
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
            f"training protocol: one stream, state carried across lines, {rows} row{'s' * (rows != 1)}, "
            f"{'segments' if adapter and adapter.segment else 'bptt'} {data.bptt}; "
            + _stream_counts(corpus.tokens, rows, tokens)
        )
    size = predicted_span(path, corpus, lm.vocab, skipped)
    return _result(lm, "stream", words, nats, tokens, corpus.oovs, corpus.tokens, size=size, adapter=adapter)


def _sentences(lm: LoadedLM, lines: Iterable[str], batch_size: int, name: str, adapter: Adapter | None):
    summary, size = CorpusSummary(), TextSize()
    for score in adapted_scores(lm, size.counting(lines), adapter, batch_size=batch_size, name=name):
        summary.add(score)
    words = (
        f"each line from a fresh state, start {lm.start_symbol}, <eos> scored; "
        "every token predicted, one <eos> per line included"
    )
    counts = (-summary.logprob, summary.tokens, summary.oovs, summary.tokens)
    return _result(lm, "sentence", words, *counts, size=size, adapter=adapter)


def _result(lm: LoadedLM, protocol: str, words: str, *counts, size: TextSize, adapter: Adapter | None) -> Perplexity:
    adapted = "" if adapter is None else f"{adapter.describe()}|"
    words += "" if adapter is None else f"; adapted: {adapter.describe()}"
    signature = f"protocol:{protocol}|{adapted}{lm.signature}"
    return Perplexity(protocol, words, *counts, bytes=size.bytes, words=size.words, signature=signature)


def corpus_perplexity(
    lm: LoadedLM,
    source: str | PathLike | Iterable[str],
    *,
    protocol: str = "stream",
    batch_size: int = 64,
    cache_dir: Path | None = None,
    rows: int | None = None,
    adapter: Adapter | None = None,
) -> Perplexity:
    """Perplexity of a text under `protocol` (see the module docstring): `source` is a file (`-` for stdin),
    or the lines themselves (any iterable of strings that is not a str).  `rows`: the stream's parallel
    rows (default: the model's validation rows; one under dynamic evaluation); `adapter`: the cache pointer
    and dynamic evaluation (nlm/lm/adapt.py)."""
    if protocol not in MODES:  # a protocol reads the text as a model in that mode does
        raise ConfigError(f"--protocol must be one of {', '.join(MODES)}, not {protocol!r}")
    if rows is not None and (rows < 1 or protocol != "stream"):
        raise ConfigError(f"--rows applies to --protocol stream and must be at least 1, not {rows}")
    is_path = isinstance(source, str | PathLike)
    name = display_name(source) if is_path else "the input"
    if protocol == "sentence":
        return _sentences(lm, read_lines(source, allow_empty=True) if is_path else source, batch_size, name, adapter)
    try:
        if is_path and str(source) != STDIO:
            return _stream(lm, source, cache_dir, rows, adapter)
        with spooled(read_lines(source) if is_path else source) as spool, tempfile.TemporaryDirectory() as private:
            return _stream(lm, spool.path, Path(private), rows, adapter)  # stdin or given lines: never cached
    except EmptyInputError:  # in the words `nlm score` uses
        raise EmptyInputError(name, f"{name} is empty: nothing to score") from None
