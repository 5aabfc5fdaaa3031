"""`nlm train` as a library call: vocabulary, corpus, model and task, handed to the shared trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from nlm.io.text import display_name, read_lines
from nlm.lm.config import LMDataConfig
from nlm.lm.task import LMTask
from nlm.models.rnn import RNNLM, RNNConfig
from nlm.runtime import pick_device, seed_everything
from nlm.text.build import VocabConfig, build_vocab
from nlm.text.corpus import encode_corpus
from nlm.text.vocab import Vocabulary
from nlm.text.vocab_files import load_vocab, vocab_from_state
from nlm.train.config import TrainConfig
from nlm.train.run import (
    RunResult,
    load_resume_point,
    prepare_run_dir,
    resumed_train_config,
    run_training,
    write_run_config,
)

# Learning rates that converge with the default clipping (0.25).  A plain RNN diverges at
# the LSTM's SGD rate of 20: its gradients are not gated, so it needs a far smaller step.
DEFAULT_LR = {
    "sgd": {"lstm": 20.0, "gru": 10.0, "rnn-tanh": 2.0, "rnn-relu": 1.0},
    "adam": {"lstm": 2e-3, "gru": 2e-3, "rnn-tanh": 1e-3, "rnn-relu": 5e-4},
    "adamw": {"lstm": 2e-3, "gru": 2e-3, "rnn-tanh": 1e-3, "rnn-relu": 5e-4},
}


@dataclass(frozen=True)
class LMRun:
    """What `nlm train` was asked to do (everything but the hyperparameter configs)."""

    train: str  # training text, or "-" for stdin
    output: Path  # the run folder
    valid: str | None = None  # validation text: picks best.pt, drives the LR schedule and early stopping
    vocab: str | None = None  # a vocabulary file; None builds one from the training text
    vocab_config: VocabConfig = field(default_factory=VocabConfig)
    force: bool = False  # replace a run already in `output`
    cache_dir: Path | None = None  # where encoded corpora are cached


def _vocabulary(run: LMRun, console: Console, quiet: bool) -> Vocabulary:
    if run.vocab is not None:
        return load_vocab(run.vocab)
    vocab, report = build_vocab(read_lines(run.train), config=run.vocab_config)
    if not quiet:
        console.print(f"vocabulary: {run.vocab_config.level}, {report.types_kept:,} of {report.types_seen:,} types kept, "
                      f"training coverage {report.training.coverage:.2%}")
    return vocab


def train_language_model(*, run: LMRun, model: RNNConfig, data: LMDataConfig, train: TrainConfig,
                         console: Console, quiet: bool = False) -> RunResult:
    """Train a new language model into `run.output`."""
    device = pick_device(train.device)
    if train.lr is None:
        train = train.replace(lr=DEFAULT_LR[train.optimizer][model.cell])
    if train.bf16 and device.type != "cuda":
        console.print("[yellow]warning:[/] --bf16 applies on CUDA only; training in float32 on " + device.type, markup=True)
    run_dir = prepare_run_dir(run.output, force=run.force)
    vocab = _vocabulary(run, console, quiet)
    model = model.replace(vocab_size=len(vocab))
    train_corpus = encode_corpus(run.train, vocab, cache_dir=run.cache_dir)
    valid_corpus = encode_corpus(run.valid, vocab, cache_dir=run.cache_dir) if run.valid else None
    seed_everything(train.seed)
    network = RNNLM(model).to(device)
    task = LMTask(model=network, vocab=vocab, train=train_corpus, valid=valid_corpus, data=data, device=device, seed=train.seed)
    config = {"train_file": display_name(run.train), "valid_file": run.valid, "vocab_file": run.vocab,
              "model": model.to_dict(), "data": data.to_dict(), "train": train.to_dict()}
    write_run_config(run_dir, config)
    if not quiet:
        _announce(console, task, config, device)
    return run_training(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet)


def resume_language_model(*, run_dir: Path, overrides: dict, console: Console, quiet: bool = False,
                          train_file: str | None = None, valid_file: str | None = None,
                          cache_dir: Path | None = None) -> RunResult:
    """Continue the run in `run_dir` exactly where its last.pt stopped."""
    run_config, checkpoint = load_resume_point(run_dir, kind="lm")
    config = checkpoint["config"]
    train = resumed_train_config(config["train"], overrides)
    model, data = RNNConfig.from_dict(config["model"]), LMDataConfig.from_dict(config["data"])
    vocab = vocab_from_state(checkpoint["vocab"])
    device = pick_device(train.device)
    train_path = train_file or run_config.get("train_file")
    valid_path = valid_file or run_config.get("valid_file")
    network = RNNLM(model).to(device)
    network.load_state_dict(checkpoint["model"])
    task = LMTask(model=network, vocab=vocab, train=encode_corpus(train_path, vocab, cache_dir=cache_dir),
                  valid=encode_corpus(valid_path, vocab, cache_dir=cache_dir) if valid_path else None,
                  data=data, device=device, seed=train.seed)
    write_run_config(run_dir, {**run_config, "train": train.to_dict()})
    if not quiet:
        p = checkpoint["trainer"]["progress"]
        console.print(f"resuming {run_dir} at epoch {p['epoch'] + 1}, batch {p['batch']} (step {p['global_step']})")
    return run_training(task, train, run_dir=run_dir, device=device, console=console, quiet=quiet, resume_from=checkpoint)


def _announce(console: Console, task: LMTask, config: dict, device) -> None:
    parameters = sum(p.numel() for p in task.model.parameters())
    console.print(f"model: {config['model']}")
    console.print(f"data: {config['data']}; train {task.train.tokens:,} tokens ({task.train.oovs:,} <unk>)"
                  + (f", valid {task.valid.tokens:,} tokens ({task.valid.oovs:,} <unk>)" if task.valid else ""))
    console.print(f"train: {config['train']}")
    console.print(f"{parameters:,} parameters on {device}; {task.batches_per_epoch():,} batches per epoch")
