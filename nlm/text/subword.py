"""Subword vocabularies: sentencepiece BPE or unigram models, trained through its Python API."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import sentencepiece as spm

from nlm.errors import ConfigError, DataError
from nlm.text.symbols import BOS, EOS, PAD, SPECIALS, SUBWORD_LEVELS, UNK

WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁", which marks a piece that starts a word


@dataclass
class SentencePieceVocab:
    """A sentencepiece model held as bytes, so it can live inside a checkpoint."""

    level: str
    model: bytes
    processor: spm.SentencePieceProcessor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.processor = spm.SentencePieceProcessor(model_proto=self.model)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str, level: str | None = None) -> SentencePieceVocab:
        try:
            processor = spm.SentencePieceProcessor(model_proto=data)
        except (RuntimeError, OSError, TypeError):
            raise DataError(
                f"{name} is neither an nlm vocabulary (lines of 'symbol<TAB>count' starting with <pad>) "
                "nor a sentencepiece model"
            ) from None
        pieces = tuple(processor.id_to_piece(i) for i in range(min(4, processor.get_piece_size())))
        if pieces != SPECIALS or processor.unk_id() != UNK:
            raise DataError(f"{name}: sentencepiece model must have {' '.join(SPECIALS)} as ids 0-3 (it has {' '.join(pieces)})")
        if level is None:
            from sentencepiece import sentencepiece_model_pb2 as model_pb2

            proto = model_pb2.ModelProto()
            proto.ParseFromString(data)
            level = "bpe" if proto.trainer_spec.model_type == model_pb2.TrainerSpec.BPE else "unigram"
        return cls(level=level, model=data)

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, line: str) -> list[int]:
        return self.processor.encode(line, out_type=int)

    def encode_lines(self, lines: list[str]) -> list[list[int]]:
        """Many lines in one call, which saves sentencepiece's per-call Python overhead (and may use its threads)."""
        return self.processor.encode(lines, out_type=int)

    def tokenize(self, line: str) -> list[str]:
        """The pieces `encode` gives ids to, as text (an unknown piece as its surface characters)."""
        return self.processor.encode(line, out_type=str)

    def decode(self, ids: Iterable[int]) -> str:
        return self.processor.decode([i for i in ids if i >= len(SPECIALS) or i == UNK])

    def symbol(self, index: int) -> str:
        return self.processor.id_to_piece(index)

    def word_starts(self, ids: Sequence[int]) -> list[bool]:
        return [i == EOS or self.processor.id_to_piece(i).startswith(WORD_BOUNDARY) for i in ids]

    def to_state(self) -> dict:
        return {"level": self.level, "model": self.model}

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model).hexdigest()[:12]


class _Feed:
    """The training lines as sentencepiece reads them, counted; an error while reading them is kept,
    since sentencepiece turns it into a RuntimeError."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines, self.count, self.error = lines, 0, None

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self.lines:
                if line and not line.isspace():  # sentencepiece drops the others
                    self.count += 1
                yield line
        except BaseException as e:  # a DataError from the reader, or Ctrl-C
            self.error = e
            raise


def train_sentencepiece(
    lines: Iterable[str], *, level: str, size: int, lowercase: bool = False, character_coverage: float = 0.9995,
    sample_lines: int = 0,
) -> tuple[SentencePieceVocab, int]:
    """Train a BPE or unigram model with `size` pieces besides the four special symbols.

    `lines` is read once, as a stream.  With `sample_lines` > 0, sentencepiece keeps a
    uniform random sample of that many lines (reservoir sampling with a fixed seed; all
    of them, in order, when there are no more), so its memory is bounded whatever the
    size of the text.  Returns the model and the number of lines with text it read.
    """
    if level not in SUBWORD_LEVELS:
        raise ConfigError(f"subword level must be bpe or unigram, not {level!r}")
    model, feed = io.BytesIO(), _Feed(lines)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(feed),
            model_writer=model,
            model_type=level,
            vocab_size=size + len(SPECIALS),
            character_coverage=character_coverage,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            pad_id=PAD, unk_id=UNK, bos_id=BOS, eos_id=EOS,
            pad_piece=SPECIALS[PAD], unk_piece=SPECIALS[UNK], bos_piece=SPECIALS[BOS], eos_piece=SPECIALS[EOS],
            input_sentence_size=sample_lines, shuffle_input_sentence=True,
            num_threads=1,  # one thread keeps unigram training deterministic
            minloglevel=2,
        )
    except RuntimeError as e:
        if feed.error is not None:
            raise feed.error from None
        if not feed.count:
            raise DataError("the training text has no symbols to build a vocabulary from") from None
        message = str(e).split("] ")[-1]
        raise ConfigError(f"sentencepiece could not train a {level} vocabulary of {size}: {message}") from None
    return SentencePieceVocab(level=level, model=model.getvalue()), feed.count
