"""Word and character vocabularies, and the plain-text file format they are stored in.

The special symbols (`nlm.text.symbols`) come first, ids 0-3.  A word or char vocabulary file
is UTF-8 text, one `symbol<TAB>count` per line, the 0-based line number being the id, so
`cut -f1` and `diff` work on it.  Line 0 may carry a third field with the settings
(`level=char lowercase=0`); without it a file is read as a word vocabulary, so a hand-made
list of words works too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Protocol

from nlm.errors import DataError
from nlm.text.symbols import EOS, SPECIALS, SYMBOL_LEVELS, UNK

_WORD = re.compile(r"\S+")  # what str.split() keeps: both split on the characters str.isspace() names


class Vocabulary(Protocol):
    """What the rest of nlm needs from any vocabulary."""

    level: str

    def __len__(self) -> int: ...
    def tokenize(self, line: str) -> list[str]: ...
    def encode(self, line: str) -> list[int]: ...
    def encode_lines(self, lines: list[str]) -> list[list[int]]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def symbol(self, index: int) -> str: ...
    def to_state(self) -> dict: ...
    def fingerprint(self) -> str: ...
    def word_starts(self, ids: Sequence[int]) -> list[bool]: ...
    def token_bytes(self, line: str) -> list[int]: ...


@dataclass
class SymbolVocab:
    """A word (whitespace tokens) or char (code points, space included) vocabulary."""

    level: str
    symbols: list[str]
    counts: list[int]
    lowercase: bool = False
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.level not in SYMBOL_LEVELS:
            raise DataError(f"a symbol vocabulary is word or char, not {self.level!r}")
        self.index = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def tokenize(self, line: str) -> list[str]:
        if self.lowercase:
            line = line.lower()
        return line.split() if self.level == "word" else list(line)

    def encode(self, line: str) -> list[int]:
        return list(
            map(self.index.get, self.tokenize(line), repeat(UNK))
        )  # index.get(token, UNK), without a Python loop

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        return [self.encode(line) for line in lines]

    def decode(self, ids: Iterable[int]) -> str:
        joiner = " " if self.level == "word" else ""
        return joiner.join(self.symbols[i] for i in ids if i >= len(SPECIALS) or i == UNK)

    def symbol(self, index: int) -> str:
        return self.symbols[index]

    def word_starts(self, ids: Sequence[int]) -> list[bool]:
        """Which tokens begin a word: every token for word level; after a space for chars."""
        if self.level == "word":
            return [True] * len(ids)
        starts, previous_space = [], True
        for i in ids:
            is_space = self.symbols[i].isspace()
            starts.append(previous_space and not is_space or i == EOS)
            previous_space = is_space
        return starts

    def token_bytes(self, line: str) -> list[int]:
        """The UTF-8 bytes of `line` each token of `encode(line)` covers: its own and the whitespace before it."""
        if self.level == "char":
            return [len(token.encode("utf-8")) for token in self.tokenize(line)]
        ends = [0, *(match.end() for match in _WORD.finditer(line))]
        return [len(line[begin:end].encode("utf-8")) for begin, end in zip(ends, ends[1:])]

    def to_state(self) -> dict:
        return {
            "level": self.level,
            "symbols": list(self.symbols),
            "counts": list(self.counts),
            "lowercase": self.lowercase,
        }

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.level}|{int(self.lowercase)}\n".encode())
        digest.update("\n".join(self.symbols).encode())
        return digest.hexdigest()[:12]

    def to_text(self) -> str:
        settings = f"level={self.level} lowercase={int(self.lowercase)}"
        lines = [f"{s}\t{c}" for s, c in zip(self.symbols, self.counts)]
        lines[0] += f"\t{settings}"
        return "\n".join(lines) + "\n"


def parse_symbol_vocab(text: str, name: str) -> SymbolVocab:
    """Parse the text format above; any malformed line is a DataError naming file and line."""
    symbols: list[str] = []
    counts: list[int] = []
    settings: dict[str, str] = {}
    seen: set[str] = set()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines):
        fields = line.split("\t")
        if number == 0 and len(fields) == 3:
            settings = dict(item.partition("=")[::2] for item in fields.pop().split())
        if len(fields) != 2 or not fields[0] or not fields[1].isdigit():
            raise DataError(
                f"{name}:{number + 1}: malformed vocabulary line (expected 'symbol<TAB>count'): {line[:40]!r}"
            )
        if fields[0] in seen:
            raise DataError(f"{name}:{number + 1}: symbol {fields[0]!r} appears twice")
        seen.add(fields[0])
        symbols.append(fields[0])
        counts.append(int(fields[1]))
    if tuple(symbols[: len(SPECIALS)]) != SPECIALS:
        raise DataError(f"{name}: a vocabulary must start with the special symbols {' '.join(SPECIALS)} on lines 1-4")
    level = settings.get("level", "word")
    if level not in SYMBOL_LEVELS:
        raise DataError(f"{name}:1: unknown level {level!r} (expected word or char)")
    return SymbolVocab(level=level, symbols=symbols, counts=counts, lowercase=settings.get("lowercase") == "1")
