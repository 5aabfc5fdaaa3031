"""Word and character vocabularies: fixed special ids, a plain-text file format, loading.

The special symbols have the same ids at every level, sentencepiece models included:

    0 <pad>   padding, never predicted
    1 <unk>   any symbol outside the vocabulary (the OOV token)
    2 <bos>   start of a sentence (sentence-mode models and scoring)
    3 <eos>   end of a line

A word or char vocabulary file is UTF-8 text, one `symbol<TAB>count` per line, the
0-based line number being the id, so `cut -f1` and `diff` work on it.  Line 0 may carry
a third field with the settings (`level=char lowercase=0`); without it a file is read as
a word vocabulary, so a hand-made list of words works too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nlm.errors import CheckpointError, DataError, InputMissingError

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(4)
LEVELS = ("word", "char", "bpe", "unigram")
SYMBOL_LEVELS = ("word", "char")


class Vocabulary(Protocol):
    """What the rest of nlm needs from any vocabulary."""

    level: str

    def __len__(self) -> int: ...
    def encode(self, line: str) -> list[int]: ...
    def decode(self, ids: Iterable[int]) -> str: ...
    def symbol(self, index: int) -> str: ...
    def to_state(self) -> dict: ...
    def fingerprint(self) -> str: ...
    def word_starts(self, ids: Sequence[int]) -> list[bool]: ...


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
        index = self.index
        return [index.get(token, UNK) for token in self.tokenize(line)]

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

    def to_state(self) -> dict:
        return {"level": self.level, "symbols": list(self.symbols), "counts": list(self.counts), "lowercase": self.lowercase}

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
            raise DataError(f"{name}:{number + 1}: malformed vocabulary line (expected 'symbol<TAB>count'): {line[:40]!r}")
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


def load_vocab(path: str | Path) -> Vocabulary:
    """Load a vocabulary file: the text format above or a sentencepiece `.model`."""
    from nlm.text.subword import SentencePieceVocab

    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputMissingError(f"{p}: no such vocabulary file") from None
    except OSError as e:
        raise InputMissingError(f"{p}: cannot read ({e.strerror})") from None
    if not data:
        raise DataError(f"{p} is empty; build a vocabulary with `nlm vocab build`")
    if data.startswith(b"<pad>\t"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data[: e.start].count(b"\n") + 1
            raise DataError(f"{p}:{line}: not valid UTF-8") from None
        return parse_symbol_vocab(text, str(p))
    return SentencePieceVocab.from_bytes(data, name=str(p))


def vocab_from_state(state: dict) -> Vocabulary:
    """Rebuild a vocabulary stored inside a checkpoint."""
    from nlm.text.subword import SentencePieceVocab

    try:
        if state["level"] in SYMBOL_LEVELS:
            return SymbolVocab(level=state["level"], symbols=list(state["symbols"]), counts=list(state["counts"]), lowercase=bool(state["lowercase"]))
        return SentencePieceVocab.from_bytes(bytes(state["model"]), name="checkpoint", level=state["level"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's vocabulary is incomplete ({e})") from None


def save_vocab(vocab: Vocabulary, path: str | Path) -> None:
    """Write a word/char vocabulary as text, a subword one as its sentencepiece `.model`."""
    from nlm.io.text import write_bytes_atomic, write_text_atomic

    p = Path(path)
    if isinstance(vocab, SymbolVocab):
        write_text_atomic(p, vocab.to_text())
    else:
        write_bytes_atomic(p, vocab.to_state()["model"])
