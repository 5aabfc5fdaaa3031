"""`nlm train`: train an RNN, LSTM or GRU language model into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import Cell, Device, Level, Mode, Optimizer, Schedule

DATA = "Data"
MODEL = "Model"
OPTIM = "Optimization"
RUN = "Run"


def train(
    train: Annotated[str | None, typer.Option("--train", help="Training text, one sentence per line ('-' for stdin).", rich_help_panel=DATA)] = None,
    valid: Annotated[str | None, typer.Option(help="Validation text: picks best.pt, drives the LR schedule and early stopping.", rich_help_panel=DATA)] = None,
    vocab: Annotated[str | None, typer.Option(help="Vocabulary from `nlm vocab build`; without it one is built from --train.", rich_help_panel=DATA)] = None,
    level: Annotated[Level, typer.Option(help="Vocabulary level when building one.", rich_help_panel=DATA)] = Level.word,
    vocab_size: Annotated[int | None, typer.Option(help="Symbols to keep when building a vocabulary (required for bpe/unigram).", rich_help_panel=DATA)] = None,
    min_count: Annotated[int, typer.Option(help="Minimum count of a kept word/char when building.", rich_help_panel=DATA)] = 1,
    lowercase: Annotated[bool, typer.Option(help="Fold case when building the vocabulary.", rich_help_panel=DATA)] = False,
    mode: Annotated[Mode, typer.Option(help="stream: carried state over the whole text; sentence: each line from a zero state.", rich_help_panel=DATA)] = Mode.stream,
    batch_size: Annotated[int, typer.Option(help="Parallel rows (stream) or sentences (sentence) per batch.", rich_help_panel=DATA)] = 20,
    bptt: Annotated[int, typer.Option(help="Window length of truncated backpropagation through time.", rich_help_panel=DATA)] = 35,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell.", rich_help_panel=MODEL)] = Cell.lstm,
    layers: Annotated[int, typer.Option(help="Recurrent layers.", rich_help_panel=MODEL)] = 2,
    emb: Annotated[int | None, typer.Option(help="Embedding size [default: --hidden].", rich_help_panel=MODEL)] = None,
    hidden: Annotated[int, typer.Option(help="Hidden state size.", rich_help_panel=MODEL)] = 200,
    dropout: Annotated[float, typer.Option(help="Dropout on embeddings, between layers and before the output.", rich_help_panel=MODEL)] = 0.2,
    tie: Annotated[bool | None, typer.Option("--tie/--no-tie", help="Tie the input and output embeddings (needs --emb = --hidden) [default: tie when --emb = --hidden].", rich_help_panel=MODEL, show_default=False)] = None,
    init_range: Annotated[float, typer.Option(help="Uniform initialisation range.", rich_help_panel=MODEL)] = 0.1,
    optimizer: Annotated[Optimizer, typer.Option(help="Optimizer.", rich_help_panel=OPTIM)] = Optimizer.sgd,
    lr: Annotated[float | None, typer.Option(help="Learning rate [default: SGD 20 lstm, 10 gru, 2 rnn-tanh, 1 rnn-relu; Adam 2e-3].", rich_help_panel=OPTIM)] = None,
    momentum: Annotated[float, typer.Option(help="SGD momentum.", rich_help_panel=OPTIM)] = 0.0,
    weight_decay: Annotated[float, typer.Option(help="Weight decay.", rich_help_panel=OPTIM)] = 0.0,
    clip: Annotated[float, typer.Option(help="Clip the gradient norm to this (0: off).", rich_help_panel=OPTIM)] = 0.25,
    schedule: Annotated[Schedule, typer.Option(help="plateau: lr x factor when validation stalls; decay: every epoch after --decay-start.", rich_help_panel=OPTIM)] = Schedule.plateau,
    lr_factor: Annotated[float, typer.Option(help="LR multiplier of the schedule.", rich_help_panel=OPTIM)] = 0.25,
    decay_start: Annotated[int, typer.Option(help="decay: epochs at the full learning rate.", rich_help_panel=OPTIM)] = 4,
    epochs: Annotated[int | None, typer.Option(help="Epochs [default: 6].", rich_help_panel=RUN)] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.", rich_help_panel=RUN)] = None,
    max_time: Annotated[float | None, typer.Option(help="Stop after this many seconds of training.", rich_help_panel=RUN)] = None,
    patience: Annotated[int | None, typer.Option(help="Stop after this many epochs without a better validation loss.", rich_help_panel=RUN)] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Run folder: best.pt, last.pt, metrics.jsonl, config.json.", rich_help_panel=RUN)] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this folder exactly where it stopped.", rich_help_panel=RUN)] = None,
    force: Annotated[bool, typer.Option(help="Replace a run already in --output.", rich_help_panel=RUN)] = False,
    device: Annotated[Device, typer.Option(help="Where to train; auto picks CUDA, then MPS, then the CPU.", rich_help_panel=RUN)] = Device.auto,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast (CUDA).", rich_help_panel=RUN)] = False,
    seed: Annotated[int, typer.Option(help="Random seed.", rich_help_panel=RUN)] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.", rich_help_panel=RUN)] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Encoded-corpus cache [default: $NLM_CACHE_DIR or ~/.cache/nlm].", rich_help_panel=RUN)] = None,
) -> None:
    """Train a language model; with --resume, continue one."""
    options = dict(locals())
    result = _resume(options) if resume is not None else _train(options)
    if not quiet:
        err_console.print(f"stopped ({result.stop_reason}) after {result.progress.global_step:,} steps; "
                          f"best valid loss {result.progress.best_loss:.4f}; run in {result.run_dir}")


def _train(o: dict):
    from nlm.errors import ConfigError
    from nlm.lm.config import LMDataConfig
    from nlm.lm.training import LMRun, train_language_model
    from nlm.models.rnn import RNNConfig
    from nlm.text.build import VocabConfig
    from nlm.train.config import TrainConfig

    if o["train"] is None or o["output"] is None:
        raise ConfigError("nlm train needs --train FILE and -o RUN_DIR (or --resume RUN_DIR)")
    vocab_config = VocabConfig(level=o["level"].value, size=o["vocab_size"], min_count=o["min_count"],
                               lowercase=o["lowercase"])
    run = LMRun(train=o["train"], valid=o["valid"], vocab=o["vocab"], output=o["output"], vocab_config=vocab_config,
                force=o["force"], cache_dir=o["cache_dir"])
    model = RNNConfig(cell=o["cell"].value, layers=o["layers"], emb=o["emb"] or o["hidden"], hidden=o["hidden"], dropout=o["dropout"],
                      tie=o["tie"], init_range=o["init_range"])
    data = LMDataConfig(mode=o["mode"].value, batch_size=o["batch_size"], bptt=o["bptt"])
    train = TrainConfig(lr=o["lr"], optimizer=o["optimizer"].value, momentum=o["momentum"], weight_decay=o["weight_decay"],
                        clip=o["clip"], epochs=o["epochs"] or 6, max_steps=o["max_steps"], max_time=o["max_time"],
                        schedule=o["schedule"].value, lr_factor=o["lr_factor"], decay_start=o["decay_start"],
                        patience=o["patience"], device=o["device"].value, bf16=o["bf16"], seed=o["seed"])
    return train_language_model(run=run, model=model, data=data, train=train, console=err_console, quiet=o["quiet"])


def _resume(o: dict):
    from nlm.lm.training import resume_language_model

    overrides = {k: o[k] for k in ("epochs", "max_steps", "max_time", "patience")}
    return resume_language_model(run_dir=o["resume"], overrides=overrides, console=err_console, quiet=o["quiet"],
                                 train_file=o["train"], valid_file=o["valid"], cache_dir=o["cache_dir"])


def register(app: typer.Typer) -> None:
    app.command()(train)
