"""Building a vocabulary from training text, and measuring its coverage of other text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from nlm.config import Config, check
from nlm.errors import DataError
from nlm.io.text import TextFiles, line_batches, spooled
from nlm.text.subword import train_sentencepiece
from nlm.text.symbols import EOS, LEVELS, SPECIALS, SUBWORD_LEVELS, UNK
from nlm.text.vocab import SymbolVocab, Vocabulary


@dataclass(frozen=True)
class VocabConfig(Config):
    level: str = "word"  # word | char | bpe | unigram
    size: int | None = None  # keep the K most frequent symbols (besides the specials); required for subwords
    min_count: int = 1  # drop word/char symbols seen fewer times
    lowercase: bool = False  # fold case before counting and encoding
    character_coverage: float = 0.9995  # sentencepiece: share of characters its alphabet must cover
    # sentencepiece trains on a random sample of this many lines (0: all), so memory stays bounded
    # on big corpora (it warns above a million); coverage is still measured on every line
    sample_lines: int = 100_000

    def validate(self) -> None:
        check(self.level in LEVELS, f"--level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        check(self.size is None or self.size >= 1, f"--vocab-size must be at least 1, not {self.size}")
        check(self.min_count >= 1, f"--min-count must be at least 1, not {self.min_count}")
        check(0 < self.character_coverage <= 1, "--character-coverage must be in (0, 1]")
        check(self.sample_lines >= 0, f"--sample-lines must be 0 (every line) or more, not {self.sample_lines}")
        check(
            self.level not in SUBWORD_LEVELS or self.size is not None, f"a {self.level} vocabulary needs --vocab-size"
        )


@dataclass(frozen=True)
class Coverage:
    """How well a vocabulary covers some text.  `tokens` does not count <eos>: the corpus that
    training and perplexity read holds `tokens + lines` (one <eos> per line)."""

    tokens: int  # words, characters or pieces, <eos> not counted
    oov_tokens: int
    types: int
    oov_types: int
    lines: int = 0

    @property
    def tokens_with_eos(self) -> int:
        """The count `nlm train` reports for the same text: one <eos> per line included."""
        return self.tokens + self.lines

    @property
    def oov_rate(self) -> float:
        return self.oov_tokens / self.tokens if self.tokens else 0.0

    @property
    def coverage(self) -> float:
        return 1.0 - self.oov_rate

    def describe_oovs(self) -> str:
        """`1,481 tokens of 1,205 types`, `54,625 tokens of 1 type`."""
        tokens, types = self.oov_tokens, self.oov_types
        return f"{tokens:,} token{'s' * (tokens != 1)} of {types:,} type{'s' * (types != 1)}"


@dataclass(frozen=True)
class VocabReport:
    types_seen: (
        int  # distinct symbols in the training text (for subword levels: vocabulary pieces its segmentation uses)
    )
    types_kept: int  # symbols in the vocabulary besides the specials
    training: Coverage  # coverage of the training text itself
    sample: tuple[int, int] | None = None  # (lines sampled, lines read) when sentencepiece trained on a sample


def _keep(counts: Counter[str], config: VocabConfig) -> list[tuple[str, int]]:
    """Most frequent first; ties broken by the symbol's code points, so builds are deterministic."""
    ranked = sorted(((s, c) for s, c in counts.items() if s not in SPECIALS), key=lambda sc: (-sc[1], sc[0]))
    ranked = [(s, c) for s, c in ranked if c >= config.min_count]
    return ranked[: config.size] if config.size is not None else ranked


def build_vocab(lines: Iterable[str], *, config: VocabConfig) -> tuple[Vocabulary, VocabReport]:
    """Count the symbols of `lines` (training text only) and keep the top ones.

    Memory does not grow with the text.  Word and char levels read it once, counting
    types.  Subword levels read it twice: sentencepiece trains on a sample of
    `config.sample_lines` lines, then every line is encoded for the coverage.  Pass
    text that can be read twice as a list or `TextFiles`; a one-shot iterator (a
    generator, stdin) is first copied to a temporary file.
    """
    if config.level not in SUBWORD_LEVELS:
        return _build_symbols(lines, config)
    if _rereadable(lines):
        return _build_subword(lines, config)
    with spooled(lines) as copy:
        return _build_subword(copy, config)


def _rereadable(lines: Iterable[str]) -> bool:
    if isinstance(lines, TextFiles):
        return lines.rereadable
    return iter(lines) is not lines  # an iterator returns itself


def _build_subword(lines: Iterable[str], config: VocabConfig) -> tuple[Vocabulary, VocabReport]:
    vocab, read = train_sentencepiece(
        lines,
        level=config.level,
        size=config.size,
        lowercase=config.lowercase,
        character_coverage=config.character_coverage,
        sample_lines=config.sample_lines,
    )
    training = measure_coverage(vocab, lines)
    used = training.types - training.oov_types
    sample = (config.sample_lines, read) if 0 < config.sample_lines < read else None
    return vocab, VocabReport(types_seen=used, types_kept=len(vocab) - len(SPECIALS), training=training, sample=sample)


def _build_symbols(lines: Iterable[str], config: VocabConfig) -> tuple[Vocabulary, VocabReport]:
    tokenizer = SymbolVocab(level=config.level, symbols=list(SPECIALS), counts=[0] * 4, lowercase=config.lowercase)
    counts: Counter[str] = Counter()
    lines_seen = 0
    for line in lines:
        counts.update(tokenizer.tokenize(line))
        lines_seen += 1
    if not counts:
        raise DataError("the training text has no symbols to build a vocabulary from")
    kept = _keep(counts, config)
    kept_set = {s for s, _ in kept}
    # Everything outside the kept symbols maps to <unk>, a literal "<unk>" in the text included.
    dropped = [s for s in counts if s not in kept_set and s not in SPECIALS or s == SPECIALS[UNK]]
    unknown = sum(counts[s] for s in dropped)
    special_counts = [counts.get(s, 0) for s in SPECIALS]
    special_counts[UNK] = unknown
    special_counts[EOS] += lines_seen
    vocab = SymbolVocab(
        level=config.level,
        symbols=list(SPECIALS) + [s for s, _ in kept],
        counts=special_counts + [c for _, c in kept],
        lowercase=config.lowercase,
    )
    total = sum(counts.values())
    training = Coverage(tokens=total, oov_tokens=unknown, types=len(counts), oov_types=len(dropped), lines=lines_seen)
    return vocab, VocabReport(types_seen=len(counts), types_kept=len(kept), training=training)


def measure_coverage(vocab: Vocabulary, lines: Iterable[str]) -> Coverage:
    """Tokens of `lines` that map to <unk> (a literal `<unk>` in the text counts too), read once, a batch at a time."""
    tokens = oov = count = 0
    known: set[int] = set()
    unknown: set[str] = set()  # the text of the tokens that became <unk>
    for batch in line_batches(lines):
        for line, ids in zip(batch, vocab.encode_lines(batch)):
            count += 1
            tokens += len(ids)
            known.update(ids)
            if UNK in ids:  # only then is the text of the tokens needed
                unknown.update(p for p, i in zip(vocab.tokenize(line), ids) if i == UNK)
                oov += ids.count(UNK)
    known.discard(UNK)
    types = {vocab.symbol(i) for i in known} | unknown
    return Coverage(tokens=tokens, oov_tokens=oov, types=len(types), oov_types=len(unknown), lines=count)


def describe_build(config: VocabConfig, vocab: Vocabulary, report: VocabReport) -> str:
    """What a build kept and how well it covers its own training text, in the words every command uses."""
    c = report.training
    if config.level in SUBWORD_LEVELS:
        kept = f"{report.types_kept:,} pieces, {report.types_seen:,} of them used by the training text"
    else:
        kept = f"{report.types_kept:,} of the {report.types_seen:,} types seen"
    return (
        f"{config.level}, {len(vocab):,} symbols ({len(SPECIALS)} special + {kept}); "
        f"training text: {c.tokens:,} tokens "
        f"without <eos> ({c.tokens_with_eos:,} with one <eos> per line), "
        f"OOV rate {c.oov_rate:.2%} ({c.describe_oovs()})"
    )
