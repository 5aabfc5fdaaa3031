"""Subword vocabularies: sentencepiece BPE or unigram models, trained through its Python API.

sentencepiece is imported where a subword model is used, so commands that never meet one skip it."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nlm.errors import ConfigError, DataError
from nlm.text.symbols import BOS, EOS, PAD, SPECIALS, SUBWORD_LEVELS, UNK

if TYPE_CHECKING:
    import sentencepiece as spm

WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁", which marks a piece that starts a word


@dataclass
class SentencePieceVocab:
    """A sentencepiece model held as bytes, so it can live inside a checkpoint."""

    level: str
    model: bytes
    processor: spm.SentencePieceProcessor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import sentencepiece as spm

        self.processor = spm.SentencePieceProcessor(model_proto=self.model)

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str, level: str | None = None) -> SentencePieceVocab:
        import sentencepiece as spm

        try:
            processor = spm.SentencePieceProcessor(model_proto=data)
        except (RuntimeError, OSError, TypeError):
            raise DataError(
                f"{name} is neither an nlm vocabulary (lines of 'symbol<TAB>count' starting with <pad>) "
                "nor a sentencepiece model"
            ) from None
        pieces = tuple(processor.id_to_piece(i) for i in range(min(4, processor.get_piece_size())))
        if pieces != SPECIALS or processor.unk_id() != UNK:
            raise DataError(
                f"{name}: sentencepiece model must have {' '.join(SPECIALS)} as ids 0-3 (it has {' '.join(pieces)})"
            )
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

    def token_bytes(self, line: str) -> list[int]:
        """The UTF-8 bytes of `line` each piece of `encode(line)` covers: its own and the whitespace before it
        (sentencepiece reports where each piece lies in the text as it was given, before normalising it)."""
        try:
            pieces = self.processor.encode(line, return_type="proto").pieces
        except (TypeError, ValueError):  # sentencepiece before 0.2.1
            pieces = self.processor.encode(line, out_type="immutable_proto").pieces
        ends = [0, *(piece.end for piece in pieces)]
        return [end - begin for begin, end in zip(ends, ends[1:])]

    def to_state(self) -> dict:
        return {"level": self.level, "model": self.model}

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model).hexdigest()[:12]


def reservoir_sample(lines: Iterable[str], size: int, *, seed: int = 0) -> tuple[list[str], int]:
    """A uniform random sample of `size` of the non-empty lines (all of them, in order, when there
    are no more; every one when `size` is 0), and how many there were.

    Reservoir sampling (Vitter's algorithm R, seeded): one pass, holding only the sample.
    """
    rng = random.Random(seed)
    sample: list[str] = []
    seen = 0
    for line in lines:
        if not line:  # sentencepiece skips empty lines
            continue
        seen += 1
        if len(sample) < size or not size:
            sample.append(line)
        elif (slot := rng.randrange(seen)) < size:
            sample[slot] = line
    return sample, seen


def _handed_over(lines: list[str]) -> Iterator[str]:
    """The lines in order, each let go as sentencepiece copies it, so the sample is not held twice."""
    lines.reverse()
    while lines:
        yield lines.pop()


def train_sentencepiece(
    lines: Iterable[str],
    *,
    level: str,
    size: int,
    lowercase: bool = False,
    character_coverage: float = 0.9995,
    sample_lines: int = 0,
) -> tuple[SentencePieceVocab, int]:
    """Train a BPE or unigram model with `size` pieces besides the four special symbols.

    `lines` is read once, as a stream, keeping a random sample of `sample_lines` of them
    (0: all) for sentencepiece, so memory is bounded whatever the size of the text.  (We
    sample rather than sentencepiece's `input_sentence_size`, whose reservoir slots keep
    the capacity of the longest line they ever held, so its memory still grows with the
    text.)  Returns the model and the number of non-empty lines read.
    """
    if level not in SUBWORD_LEVELS:
        raise ConfigError(f"subword level must be bpe or unigram, not {level!r}")
    import sentencepiece as spm

    sample, read = reservoir_sample(lines, sample_lines)
    if all(line.isspace() for line in sample):
        raise DataError("the training text has no symbols to build a vocabulary from")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_handed_over(sample),
            model_writer=model,
            model_type=level,
            vocab_size=size + len(SPECIALS),
            character_coverage=character_coverage,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            pad_piece=SPECIALS[PAD],
            unk_piece=SPECIALS[UNK],
            bos_piece=SPECIALS[BOS],
            eos_piece=SPECIALS[EOS],
            num_threads=1,  # one thread keeps unigram training deterministic
            minloglevel=2,
        )
    except RuntimeError as e:
        message = str(e).split("] ")[-1]
        raise ConfigError(f"sentencepiece could not train a {level} vocabulary of {size}: {message}") from None
    return SentencePieceVocab(level=level, model=model.getvalue()), read
