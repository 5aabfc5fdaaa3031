"""The work behind `nlm vocab build` and `nlm vocab show`, as plain functions returning report lines."""

from __future__ import annotations

import itertools
from pathlib import Path

from nlm.io.atomic import check_distinct
from nlm.io.text import TextFiles, display_name, read_lines
from nlm.text.build import Coverage, VocabConfig, build_vocab, describe_build, measure_coverage
from nlm.text.symbols import SPECIALS
from nlm.text.vocab import SymbolVocab
from nlm.text.vocab_files import load_vocab, save_vocab


def _coverage_line(name: str, c: Coverage) -> str:
    return (
        f"{name}: {c.tokens:,} tokens without <eos> ({c.tokens_with_eos:,} with one <eos> per line, as train counts), "
        f"OOV rate {c.oov_rate:.2%} ({c.describe_oovs()}), coverage {c.coverage:.2%}"
    )


def build_vocabulary(*, files: list[str], output: Path, config: VocabConfig, check: list[str]) -> list[str]:
    """Build from `files`, write to `output`, and return the report lines for stderr."""
    check_distinct(output, [*files, *check])
    vocab, report = build_vocab(TextFiles(tuple(files)), config=config)  # read twice for subwords, never held
    save_vocab(vocab, output)
    lines = [f"wrote {output}: {describe_build(config, vocab, report)}"]
    if report.sample is not None:
        lines.append(
            f"sentencepiece trained on a random sample of {report.sample[0]:,} of {report.sample[1]:,} non-empty lines"
        )
    for name in check:
        lines.append(_coverage_line(display_name(name), measure_coverage(vocab, read_lines(name))))
    return lines


def describe_vocabulary(path: Path, *, top: int) -> list[str]:
    vocab = load_vocab(path)
    lines = [
        f"file: {path}",
        f"level: {vocab.level}",
        f"size: {len(vocab):,} symbols (ids 0-3: {' '.join(SPECIALS)})",
        f"fingerprint: {vocab.fingerprint()}",
    ]
    if isinstance(vocab, SymbolVocab):
        total = sum(vocab.counts[len(SPECIALS) :])
        lines.append(f"lowercase: {'yes' if vocab.lowercase else 'no'}")
        lines.append(
            f"training tokens counted: {total + vocab.counts[1]:,} ({vocab.counts[1]:,} mapped to <unk>), "
            f"lines: {vocab.counts[3]:,}"
        )
        rows = itertools.islice(zip(range(len(vocab)), vocab.symbols, vocab.counts), len(SPECIALS), len(SPECIALS) + top)
        lines += [f"{i}\t{s!r}\t{c}" if vocab.level == "char" else f"{i}\t{s}\t{c}" for i, s, c in rows]
    else:
        lines += [f"{i}\t{vocab.symbol(i)}" for i in range(len(SPECIALS), min(len(SPECIALS) + top, len(vocab)))]
    return lines
