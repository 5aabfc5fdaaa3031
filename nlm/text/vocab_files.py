"""Reading and writing any vocabulary (word, char or sentencepiece), and rebuilding one from a checkpoint."""

from __future__ import annotations

from pathlib import Path

from nlm.errors import CheckpointError, DataError, InputMissingError
from nlm.io.atomic import write_bytes_atomic, write_text_atomic
from nlm.text.subword import SentencePieceVocab
from nlm.text.symbols import SYMBOL_LEVELS
from nlm.text.vocab import SymbolVocab, Vocabulary, parse_symbol_vocab


def load_vocab(path: str | Path) -> Vocabulary:
    """Load a vocabulary file: the text format above or a sentencepiece `.model`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputMissingError(f"{p}: no such vocabulary file") from None
    except OSError as e:
        raise InputMissingError(f"{p}: cannot read ({e.strerror})") from None
    if not data:
        raise DataError(f"{p} is empty; build a vocabulary with `nlm vocab build`")
    data = data.removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is not part of the first symbol
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
    try:
        if state["level"] in SYMBOL_LEVELS:
            return SymbolVocab(
                level=state["level"],
                symbols=list(state["symbols"]),
                counts=list(state["counts"]),
                lowercase=bool(state["lowercase"]),
            )
        return SentencePieceVocab.from_bytes(bytes(state["model"]), name="checkpoint", level=state["level"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's vocabulary is incomplete ({e})") from None


def save_vocab(vocab: Vocabulary, path: str | Path) -> None:
    """Write a word/char vocabulary as text, a subword one as its sentencepiece `.model`."""
    p = Path(path)
    if isinstance(vocab, SymbolVocab):
        write_text_atomic(p, vocab.to_text())
    else:
        write_bytes_atomic(p, vocab.to_state()["model"])
