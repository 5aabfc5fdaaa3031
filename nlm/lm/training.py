"""`nlm train` as a library call: the language model's part of the run recipe (vocabulary, corpus, model, task)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from nlm.errors import ConfigError
from nlm.io.text import STDIO, TextFiles, file_sha256, open_input
from nlm.lm.config import LMDataConfig
from nlm.lm.task import LMTask
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.text.build import VocabConfig, build_vocab, describe_build
from nlm.text.corpus import EncodedCorpus, encode_corpus
from nlm.text.vocab import Vocabulary
from nlm.text.vocab_files import load_vocab, vocab_from_state
from nlm.train.config import TrainConfig
from nlm.train.inputs import locate_file, record_file
from nlm.train.run import Job
from nlm.train.session import RunResult
from nlm.train.shard import SINGLE, Shard, current_world

# Learning rates that converge with the default clipping (0.25).  A plain RNN diverges at
# the LSTM's SGD rate of 20: its gradients are not gated, so it needs a far smaller step.
DEFAULT_LR = {
    "sgd": {"lstm": 20.0, "gru": 10.0, "rnn-tanh": 2.0, "rnn-relu": 1.0},
    "adam": {"lstm": 2e-3, "gru": 2e-3, "rnn-tanh": 1e-3, "rnn-relu": 5e-4},
    "adamw": {"lstm": 2e-3, "gru": 2e-3, "rnn-tanh": 1e-3, "rnn-relu": 5e-4},
}


@dataclass
class LMJob(Job):
    """One language-model run: its text, vocabulary and configs; `load` fills in the rest."""

    train: str  # training text, or "-" for stdin
    model: RNNConfig
    data: LMDataConfig
    valid: str | None = None  # validation text: picks best.pt, drives the LR schedule and early stopping
    vocab: str | None = None  # a vocabulary file; None builds one from the training text
    vocab_config: VocabConfig = field(default_factory=VocabConfig)
    cache_dir: Path | None = None  # where encoded corpora are cached
    console: Console | None = None  # where the vocabulary report goes (None: nowhere)
    vocabulary: Vocabulary | None = None  # given (a resumed run's), built or loaded by `load`
    records: dict[str, Any] = field(default_factory=dict)  # the input files as config.json records them
    corpora: tuple[EncodedCorpus, EncodedCorpus | None] | None = None

    kind = "lm"
    command = "nlm train"

    def default_lr(self, optimizer: str) -> float:
        return DEFAULT_LR[optimizer][self.model.cell]

    def load(self, run_dir: Path, train: TrainConfig) -> None:
        if self.train == STDIO and current_world() > 1:
            raise ConfigError("--train - (stdin) cannot be read by several processes; give the training text as a file")
        if self.train == STDIO:  # read once into a file: the vocabulary and the corpus both need it
            self.train = _spool_stdin()
            self.records.setdefault("train_file", record_file(STDIO, run_dir, sha256=file_sha256(self.train)))
        for name, path in (("train", self.train), ("valid", self.valid), ("vocab", self.vocab)):
            self.records.setdefault(f"{name}_file", record_file(path, run_dir))
        if self.vocabulary is None:
            self.vocabulary = load_vocab(self.vocab) if self.vocab is not None else self._build_vocabulary()
        self.model = self.model.replace(vocab_size=len(self.vocabulary))
        self.corpora = (
            encode_corpus(self.train, self.vocabulary, cache_dir=self.cache_dir),
            encode_corpus(self.valid, self.vocabulary, cache_dir=self.cache_dir) if self.valid else None,
        )

    def _build_vocabulary(self) -> Vocabulary:
        vocab, report = build_vocab(TextFiles((self.train,)), config=self.vocab_config)
        if self.console is not None:
            self.console.print(f"vocabulary: {describe_build(self.vocab_config, vocab, report)}")
        return vocab

    def build_model(self) -> RNNLM:
        return RNNLM(self.model)

    def build_task(self, model: RNNLM, device: torch.device, train: TrainConfig, shard: Shard = SINGLE) -> LMTask:
        train_corpus, valid_corpus = self.corpora
        return LMTask(
            model=model,
            vocab=self.vocabulary,
            train=train_corpus,
            valid=valid_corpus,
            data=self.data,
            device=device,
            seed=train.seed,
            shard=shard,
        )

    def run_config(self) -> dict[str, Any]:
        return {
            **self.records,
            "vocab": {"level": self.vocabulary.level, "size": len(self.vocabulary)},  # what the run uses
            "vocab_config": self.vocab_config.to_dict(),  # how it was built (without --vocab)
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
        }

    def describe(self, task: LMTask) -> list[str]:
        train, valid = task.train, task.valid
        counts = f"train {train.tokens:,} tokens with <eos> ({train.oovs:,} <unk>)"
        counts += f", valid {valid.tokens:,} ({valid.oovs:,} <unk>)" if valid else ", no validation text"
        return [f"model: {self.model.describe()}", f"data: {self.data.describe()}; {counts}"]

    def start(self, *, console: Console, quiet: bool = False, **options: Any) -> RunResult:
        """Train a new language model into the run folder `output` (the vocabulary report goes to `console`)."""
        self.console = None if quiet else console
        return super().start(console=console, quiet=quiet, **options)

    @classmethod
    def from_saved_run(cls, run_config: dict, checkpoint: dict, changes: dict[str, Any], *, run_dir: Path) -> LMJob:
        """The job of a saved run; `changes` loses the --train/--valid it relocates (the same files, moved)."""
        config = checkpoint["config"]
        records = {key: run_config.get(key) for key in ("train_file", "valid_file", "vocab_file")}
        if records["train_file"] is None:
            raise ConfigError(f"{run_dir}/config.json does not say what the run was trained on; it cannot be resumed")
        paths = {
            name: locate_file(
                records[f"{name}_file"], given=changes.pop(name, None), run_dir=run_dir, option=f"--{name}"
            )
            for name in ("train", "valid")
        }
        if (
            "vocab" in changes
        ):  # the run's vocabulary is in its checkpoint: a --vocab must be the file it was built from
            locate_file(records["vocab_file"], given=changes.pop("vocab"), run_dir=run_dir, option="--vocab")
        return cls(
            train=paths["train"],
            valid=paths["valid"],
            model=RNNConfig.from_dict(config["model"]),
            data=LMDataConfig.from_dict(config["data"]),
            cache_dir=changes.pop("cache_dir", None),
            vocabulary=vocab_from_state(checkpoint["vocab"]),
            records=records,
        )


def _spool_stdin() -> str:
    """Copy stdin into a temporary file, removed when the process ends, and return its path."""
    stream = open_input(STDIO)
    with tempfile.NamedTemporaryFile(prefix="nlm-stdin-", suffix=".txt", delete=False) as spool:
        shutil.copyfileobj(stream, spool)
    atexit.register(os.unlink, spool.name)
    return spool.name
