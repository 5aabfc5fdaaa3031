"""Measures comparable across vocabularies: bits per byte and word perplexity.

A word, a subword and a character model of the same text have different token perplexities
because their tokens differ.  These two divide the same total, the text's negative
log-likelihood, by what the text itself holds, whatever the vocabulary:

    bits per byte    total -log2 P / bytes       bytes: the UTF-8 bytes of the text, each line's end
                                                 counted as one newline (a CRLF's CR and a leading
                                                 byte-order mark are not text)
    word perplexity  exp(total -ln P / words)    words: whitespace-separated words, plus one end per line

(lm-evaluation-harness reports WikiText with these two.)  The total is over the tokens the protocol
predicts, an OOV counted at P(<unk>) exactly as in the token perplexity.  When some tokens are context
only (the stream protocol: each row's first token and the tail that fills no row), their bytes and
words are left out, so the measures cover the predicted span: a token covers its own bytes and the
whitespace before it, `<eos>` the line's trailing whitespace and its newline; a token counts as a word
where it starts one (`Vocabulary.word_starts`; `<eos>` is the line's end).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlm.io.text import read_lines
from nlm.text.corpus import EncodedCorpus
from nlm.text.vocab import Vocabulary


@dataclass
class TextSize:
    """What a text holds, whatever the vocabulary: UTF-8 bytes (a newline per line) and words (an end per line)."""

    bytes: int = 0
    words: int = 0

    def add(self, line: str) -> None:
        self.bytes += len(line.encode("utf-8")) + 1
        self.words += len(line.split()) + 1

    def counting(self, lines: Iterable[str]) -> Iterator[str]:
        """`lines` passed through, each one counted as it goes by."""
        for line in lines:
            self.add(line)
            yield line


def predicted_span(path: str | Path, corpus: EncodedCorpus, vocab: Vocabulary, context_only: np.ndarray) -> TextSize:
    """The bytes and words of the text in `path` (the file `corpus` encodes), less those of the tokens at
    the stream positions `context_only`, which the protocol reads but never predicts."""
    line_starts = np.concatenate([[0], corpus.line_ends[:-1]])
    wanted: dict[int, list[int]] = defaultdict(list)  # line -> positions of its context-only tokens
    for index in context_only.tolist():
        line = int(np.searchsorted(corpus.line_ends, index, side="right"))
        wanted[line].append(index - int(line_starts[line]))
    size = TextSize()
    for number, text in enumerate(read_lines(path, allow_empty=True)):
        size.add(text)
        if number in wanted:
            spans = vocab.token_bytes(text)
            spans.append(len(text.encode("utf-8")) + 1 - sum(spans))  # <eos>: trailing whitespace and the newline
            starts = vocab.word_starts(corpus.line(number).tolist())
            for position in wanted[number]:
                size.bytes -= spans[position]
                size.words -= int(starts[position])
    return size
