"""`nlm train`: train an RNN, LSTM or GRU language model into a run folder, or resume one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nlm.cli.console import err_console
from nlm.cli.options import DATA, MODEL, RUN, TRAINING, Cell, Force, Level, Mode, Output, Quiet, Resume, given_options, report_run, resume_changes

VOCAB_BUILD_OPTIONS = ("level", "vocab_size", "min_count", "lowercase")


@TRAINING.with_defaults(helps={"lr": "Learning rate [default: SGD 20 lstm, 10 gru, 2 rnn-tanh, 1 rnn-relu; Adam 2e-3]."})
def train(
    ctx: typer.Context,
    train: Annotated[str | None, typer.Option("--train", help="Training text, one sentence per line ('-' for stdin).", rich_help_panel=DATA)] = None,
    valid: Annotated[str | None, typer.Option("--valid", help="Validation text: picks best.pt, drives the LR schedule and early stopping.", rich_help_panel=DATA)] = None,
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
    output: Output = None, resume: Resume = None, force: Force = False, quiet: Quiet = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Encoded-corpus cache [default: $NLM_CACHE_DIR or ~/.cache/nlm].", rich_help_panel=RUN)] = None,
    training=None,
) -> None:
    """Train a language model into a run folder; with --resume, continue one."""
    from nlm.errors import ConfigError
    from nlm.lm.config import LMDataConfig
    from nlm.lm.training import LMJob, resume_language_model, train_language_model
    from nlm.models.rnn import RNNConfig
    from nlm.text.build import VocabConfig

    if resume is not None:
        result = resume_language_model(run_dir=resume, changes=resume_changes(ctx, training), console=err_console, quiet=quiet)
        return report_run(err_console, result, quiet)
    if train is None or output is None:
        raise ConfigError("nlm train needs --train FILE and -o RUN_DIR (or --resume RUN_DIR)")
    if vocab is not None and (building := sorted(given_options(ctx) & set(VOCAB_BUILD_OPTIONS))):
        raise ConfigError(f"{', '.join('--' + n.replace('_', '-') for n in building)} build a vocabulary, "
                          f"but --vocab {vocab} gives one; leave one of them out")
    job = LMJob(train=train, valid=valid, vocab=vocab, cache_dir=cache_dir,
                vocab_config=VocabConfig(level=level.value, size=vocab_size, min_count=min_count, lowercase=lowercase),
                model=RNNConfig(cell=cell.value, layers=layers, emb=emb or hidden, hidden=hidden, dropout=dropout, tie=tie, init_range=init_range),
                data=LMDataConfig(mode=mode.value, batch_size=batch_size, bptt=bptt))
    result = train_language_model(job=job, output=output, train=training, force=force, console=err_console, quiet=quiet)
    report_run(err_console, result, quiet)


def register(app: typer.Typer) -> None:
    app.command()(train)
