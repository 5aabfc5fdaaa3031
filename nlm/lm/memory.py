"""Accuracy on marked tokens: does the model predict the word after each `?` (a memory task's answer)?

Each line is read from a fresh state after the model's start symbol, as in scoring, and
the prediction at every position is the most likely next token given the true prefix.
A marked word counts as right when every one of its tokens is predicted exactly, so the
number means the same for word, char and subword models (a char model must also predict
the space that ends a word that is not the line's last).  See `nlm.corpora.memory`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nlm.errors import DataError
from nlm.io.text import read_lines
from nlm.lm.loading import LoadedLM
from nlm.text.batches import sentence_window
from nlm.text.symbols import UNK
from nlm.text.vocab import Vocabulary

DEFAULT_MARKER = "?"


@dataclass(frozen=True)
class MarkedAccuracy:
    source: str  # the text file read
    marked: int  # marked words (a word right after the marker)
    correct: int  # marked words predicted exactly
    chance: float | None  # 1/symbols from the task folder's task.json; None for a plain file
    signature: str  # which model and vocabulary produced the number

    @property
    def accuracy(self) -> float:
        return self.correct / self.marked

    def lines(self) -> list[str]:
        """`accuracy 0.9730`, then the counts and the chance level, one `name value` per line."""
        lines = [f"accuracy {self.accuracy:.4f}", f"marked {self.marked}", f"correct {self.correct}"]
        if self.chance is not None:
            lines.append(f"chance {self.chance:.4f}")
        return lines + [f"signature task:{self.source}|{self.signature}"]

    def to_dict(self) -> dict:
        return {
            "task": self.source,
            "accuracy": round(self.accuracy, 6),
            "marked": self.marked,
            "correct": self.correct,
            "chance": self.chance,
            "signature": self.signature,
        }


def task_file(path: str | Path) -> tuple[Path, str, float | None]:
    """(the text to read, the marker, the chance level): a task folder gives its test.txt and task.json."""
    path = Path(path)
    if not path.is_dir():
        return path, DEFAULT_MARKER, None
    info_path = path / "task.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else {}
    except (OSError, ValueError) as e:
        raise DataError(f"{info_path} is not a task description ({e})") from None
    return path / "test.txt", info.get("marker", DEFAULT_MARKER), info.get("chance")


def marked_spans(line: str, ids: list[int], vocab: Vocabulary, marker: str) -> list[tuple[int, int]]:
    """Token ranges [start, end) of `ids` (the encoded line) that spell each word right after `marker`."""
    words = line.split()
    wanted = [i + 1 for i, word in enumerate(words[:-1]) if word == marker]
    if not wanted:
        return []
    starts = [i for i, start in enumerate(vocab.word_starts(ids)) if start]
    if len(starts) != len(words):
        raise DataError(f"cannot find the words of {line[:60]!r} among its {vocab.level} tokens")
    bounds = starts + [len(ids)]
    return [(bounds[w], bounds[w + 1]) for w in wanted]


def marked_accuracy(lm: LoadedLM, path: str | Path, *, batch_size: int = 128) -> MarkedAccuracy:
    """How often `lm` predicts the word after each marker in `path` (a task folder's test.txt, or a text file)."""
    file, marker, chance = task_file(path)
    lines = list(read_lines(file))
    encoded = [lm.vocab.encode(line) for line in lines]
    spans = [marked_spans(line, ids, lm.vocab, marker) for line, ids in zip(lines, encoded)]
    marked = sum(map(len, spans))
    if not marked:
        raise DataError(
            f"{file} has no marked tokens (a word right after {marker!r}); "
            "write a task with `nlm corpus copy` or `nlm corpus recall`"
        )
    correct = 0
    model = lm.model.eval()
    with torch.inference_mode():
        for begin in range(0, len(lines), batch_size):
            rows = encoded[begin : begin + batch_size]
            window = sentence_window([np.asarray(ids, dtype=np.int64) for ids in rows], start_id=lm.start_id)
            features, _ = model(window.inputs.to(lm.device))
            predicted = model.log_probs(features).argmax(-1).cpu()  # [B, T]: predicted[r, j] is the guess for ids[j]
            for r in range(len(rows)):
                for start, end in spans[begin + r]:
                    want = window.targets[r, start:end]
                    correct += bool(torch.equal(predicted[r, start:end], want) and not (want == UNK).any())
    return MarkedAccuracy(source=str(file), marked=marked, correct=correct, chance=chance, signature=lm.signature)
