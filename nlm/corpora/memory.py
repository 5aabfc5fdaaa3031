"""Long-range memory corpora: predicting the marked token needs a symbol seen `lag` steps earlier.

Each line shows one symbol, then `lag - 1` tokens, then the query mark `?`, then the
symbol again; the token after `?` is the *marked* token:

    copy     a7 x  x  x  ... x  ? a7        the tokens between are a constant filler `x`
    recall   a7 a2 a5 a0 ... a3 ? a7        they are random symbols: distractors to ignore
             ^ read at step 0    ^ read at step `lag`: the model must still know a7

A model that has forgotten the first symbol can do no better than chance, 1/symbols, on the
marked tokens; `nlm.lm.memory.marked_accuracy` measures how often it gets them right.
The train, valid and test files have their own seed streams, so valid.txt and test.txt do
not change when --lines does.  task.json records the settings, the marker and the chance level,
and the commands that train a model on the task and measure it.

Training needs its own recipe: `nlm train`'s defaults read the text as one stream in windows of
35 steps, which cut the symbol off from its mark, and leave even an LSTM at chance.  Each line
must be one sequence from a zero state (`--mode sentence`), with weights wide enough to carry
a memory (`--init-range 1`) and Adam at 0.005.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlm.config import Config, check
from nlm.corpora.folder import prepare_corpus_folder
from nlm.io.atomic import write_text_atomic

MARKER = "?"  # the query mark: the token after it is the marked token
FILLER = "x"  # what stands between the symbol and the mark in the copy task
SPLITS = ("train", "valid", "test")
# The recipe that learns these tasks (README, "Long-range memory"): whole lines, wide weights, Adam.
TRAINING_OPTIONS = (
    "--mode sentence --cell lstm --layers 1 --hidden 64 --dropout 0 --init-range 1 --optimizer adam --lr 0.005 "
    "--clip 1 --batch-size 32 --max-steps 300 --schedule none"
)
TRAINING_REASON = (
    "each line read whole from a zero state (--mode sentence), wide weights (--init-range 1), Adam at 0.005: "
    "nlm train's defaults cut the lines into windows of 35 steps, which part the symbol from its mark"
)


def training_commands(directory: str | Path) -> tuple[str, str]:
    """The `nlm train` that learns the task written in `directory`, and the `nlm evaluate` that measures it."""
    run = shlex.quote(f"{directory}-lstm")
    folder = shlex.quote(str(directory))
    train = f"nlm train --train {shlex.quote(str(Path(directory) / 'train.txt'))} -o {run} {TRAINING_OPTIONS}"
    return train, f"nlm evaluate -m {run} --task {folder}"


def symbol_names(count: int) -> tuple[str, ...]:
    """`a0`, `a1`, ...: never the marker, the filler or a special symbol."""
    return tuple(f"a{i}" for i in range(count))


def _copy_middle(rng: np.random.Generator, lines: int, task: MemoryTask) -> np.ndarray:
    return np.full((lines, task.lag - 1), -1)  # -1 stands for the filler


def _recall_middle(rng: np.random.Generator, lines: int, task: MemoryTask) -> np.ndarray:
    return rng.integers(0, task.symbols, size=(lines, task.lag - 1))


MIDDLES = {"copy": _copy_middle, "recall": _recall_middle}  # what fills the lag - 1 steps between symbol and mark


@dataclass(frozen=True)
class MemoryTask(Config):
    kind: str = "copy"  # copy (filler between) or recall (random distractor symbols between)
    lag: int = 30  # steps from reading the symbol to reading the mark that asks for it
    symbols: int = 8  # distinct symbols to remember; chance is 1/symbols
    lines: int = 2000  # training lines
    eval_lines: int | None = None  # lines of valid.txt and of test.txt; None: lines // 10, at least 1
    seed: int = 0  # seeds the three files' separate random streams

    def validate(self) -> None:
        check(self.kind in MIDDLES, f"the memory task must be one of {', '.join(MIDDLES)}, not {self.kind!r}")
        check(self.lag >= 1, f"--lag must be at least 1, not {self.lag}")
        check(2 <= self.symbols <= 100_000, f"--symbols must be between 2 and 100000, not {self.symbols}")
        check(self.lines >= 1, f"--lines must be at least 1, not {self.lines}")
        check(
            self.eval_lines is None or self.eval_lines >= 1, f"--eval-lines must be at least 1, not {self.eval_lines}"
        )

    @property
    def split_lines(self) -> dict[str, int]:
        held_out = self.eval_lines or max(1, self.lines // 10)
        return {"train": self.lines, "valid": held_out, "test": held_out}

    @property
    def chance(self) -> float:
        return 1.0 / self.symbols

    def sample(self, lines: int, rng: np.random.Generator) -> list[str]:
        """`lines` lines of this task; every one has exactly lag + 2 tokens."""
        names = symbol_names(self.symbols)
        first = rng.integers(0, self.symbols, size=lines)
        middle = MIDDLES[self.kind](rng, lines, self)
        words = [FILLER if i < 0 else names[i] for i in middle.ravel()]
        width = self.lag - 1
        return [
            " ".join([names[s], *words[r * width : (r + 1) * width], MARKER, names[s]]) for r, s in enumerate(first)
        ]


def write_memory_corpus(task: MemoryTask, directory: str | Path, *, overwrite: bool = False) -> dict:
    """Write train.txt, valid.txt, test.txt and task.json into `directory`; return task.json's content."""
    names = [f"{split}.txt" for split in SPLITS] + ["task.json"]
    train_command, evaluate_command = training_commands(directory)
    directory = prepare_corpus_folder(directory, names, overwrite=overwrite)
    seeds = np.random.SeedSequence(task.seed).spawn(len(SPLITS))
    for split, seed in zip(SPLITS, seeds):
        lines = task.sample(task.split_lines[split], np.random.default_rng(seed))
        write_text_atomic(directory / f"{split}.txt", "".join(line + "\n" for line in lines))
    info = {
        **task.to_dict(),
        "marker": MARKER,
        "filler": FILLER if task.kind == "copy" else None,
        "chance": task.chance,
        "split_lines": task.split_lines,
        "note": f"the token after {MARKER!r} repeats the line's first symbol, read {task.lag} steps before the mark",
        "train_command": train_command,
        "train_reason": TRAINING_REASON,
        "evaluate_command": evaluate_command,
    }
    write_text_atomic(directory / "task.json", json.dumps(info, indent=1) + "\n")
    return info
